package media

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestDirPutOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := NewDir(filepath.Join(t.TempDir(), "media"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "task1/track1.wav", func(w io.Writer) error {
		_, err := io.WriteString(w, "RIFF....")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	obj, err := d.Open(ctx, "task1/track1.wav")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil || string(b) != "RIFF...." || obj.Size != 8 || obj.ModTime.IsZero() {
		t.Errorf("got %q size %d modtime %v (%v), want RIFF.... size 8", b, obj.Size, obj.ModTime, err)
	}
	// Nothing of the temporary file is left behind.
	entries, err := os.ReadDir(filepath.Join(d.root, "task1"))
	if err != nil || len(entries) != 1 {
		t.Errorf("task dir holds %v (%v), want only the object", entries, err)
	}
}

// A write that fails leaves the old object as it was and no debris.
func TestDirPutFailureKeepsOld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(s string, fail error) error {
		return d.Put(ctx, "a/b.jpeg", func(w io.Writer) error {
			io.WriteString(w, s)
			return fail
		})
	}
	if err := put("old", nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk on fire")
	if err := put("new but broken", boom); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the writer's error", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Put(canceled, "a/b.jpeg", func(w io.Writer) error { _, err := io.WriteString(w, "late"); return err }); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	obj, err := d.Open(ctx, "a/b.jpeg")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if b, _ := io.ReadAll(obj); string(b) != "old" {
		t.Errorf("got %q, want the old object", b)
	}
	entries, _ := os.ReadDir(filepath.Join(d.root, "a"))
	if len(entries) != 1 {
		t.Errorf("dir holds %d entries, want 1: temporary files left behind", len(entries))
	}
}

func TestDirRejectsKeysOutsideIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	d, err := NewDir(filepath.Join(root, "media"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "secret"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../secret", "a/../../secret", "/etc/passwd", "", ".hidden", "a//b", "a/./b", `a\b`, "a/b/", "a b"} {
		if _, err := d.Open(ctx, key); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Open(%q): got %v, want ErrInvalidKey and fs.ErrNotExist", key, err)
		}
		if err := d.Put(ctx, key, func(io.Writer) error { return nil }); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q): got %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := d.Open(ctx, "missing/file.wav"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing object: got %v, want fs.ErrNotExist", err)
	}
	if err := os.MkdirAll(filepath.Join(d.root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(ctx, "dir"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a directory: got %v, want fs.ErrNotExist", err)
	}
}
