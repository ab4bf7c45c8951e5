// Package media stores generated files (audio and covers) under keys such as
// "TASKID/TRACKID.wav". Callers use the Store interface, so an object store
// can replace the filesystem without touching them.
package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Store holds media objects.
type Store interface {
	// Put stores what write produces under key. Readers see either the old
	// object or the whole new one, and once Put returns the object survives
	// a crash.
	Put(ctx context.Context, key string, write func(io.Writer) error) error
	// Open opens the object under key; it returns an error matching
	// fs.ErrNotExist when there is none.
	Open(ctx context.Context, key string) (*Object, error)
}

// Object is an open media object.
type Object struct {
	io.ReadSeekCloser
	Size    int64
	ModTime time.Time
}

// validKey admits the keys tunehook writes: path segments of letters,
// digits, '-', '_' and '.', never starting with a dot.
var validKey = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$`)

// ErrInvalidKey is returned for keys outside the store's alphabet, such as
// ones that try to climb out of it.
var ErrInvalidKey = errors.New("invalid media key")

// Dir is a Store in a directory of the filesystem. Several tunehook
// instances may share one directory (a network filesystem).
type Dir struct {
	root string
}

// NewDir returns a Store rooted at root, creating the directory if needed.
func NewDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create media dir: %w", err)
	}
	return &Dir{root: root}, nil
}

func (d *Dir) path(key string) (string, error) {
	if len(key) > 512 || !validKey.MatchString(key) {
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Put writes to a temporary file beside the target, syncs it and renames it
// into place, then syncs the directory so the rename is durable too.
func (d *Dir) Put(ctx context.Context, key string, write func(io.Writer) error) (err error) {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	f, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Open opens the file under key.
func (d *Dir) Open(_ context.Context, key string) (*Object, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, fmt.Errorf("%w (%w)", err, fs.ErrNotExist)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", key, fs.ErrNotExist)
	}
	return &Object{ReadSeekCloser: f, Size: st.Size(), ModTime: st.ModTime()}, nil
}
