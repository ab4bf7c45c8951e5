package main

// What the commands that call a server's API share: the --url and
// --api-key flags, and saving a task's media.

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/tunehook/tunehook"
)

// defaultURL is the server the client commands call without --url and
// TUNEHOOK_URL: tunehook serve's default address.
const defaultURL = "http://127.0.0.1:8080"

// apiFlags are the flags that say which server to call, with which key.
type apiFlags struct {
	url, key *string
}

// addAPIFlags adds --url and --api-key to fs.
func addAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{
		url: fs.String("url", "", "base `URL` of the server (default env TUNEHOOK_URL, else "+defaultURL+")"),
		// Read from the environment after parsing, not made the default:
		// -h would print it.
		key: fs.String("api-key", "", "API `key` (default env TUNEHOOK_API_KEY)"),
	}
}

// client returns a client of the server the flags or the environment name.
func (f apiFlags) client(getenv func(string) string) (*tunehook.Client, error) {
	base := cmp.Or(*f.url, getenv("TUNEHOOK_URL"), defaultURL)
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q is not an http or https URL", base)
	}
	key := cmp.Or(*f.key, getenv("TUNEHOOK_API_KEY"))
	if key == "" {
		return nil, errors.New("no API key: pass --api-key or set TUNEHOOK_API_KEY (tunehook serve prints its key at first start)")
	}
	return tunehook.NewClient(base, key), nil
}

// parseFlags parses args into fs and returns the positional arguments,
// checking there are want of them. On a bad command line the flag set has
// shown the error and the usage; the error is then errUsage.
func parseFlags(fs *flag.FlagSet, args []string, want int, stderr io.Writer) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, errUsage
	}
	if fs.NArg() != want {
		fmt.Fprintf(stderr, "%s: want %d argument(s), got %d\n", fs.Name(), want, fs.NArg())
		fs.Usage()
		return nil, errUsage
	}
	return fs.Args(), nil
}

// saveTracks downloads the audio and the cover of each track of a finished
// task into dir, as TASK-N.wav and TASK-N.jpeg (the extensions of the
// URLs), and prints each file it saves. It returns the paths.
func saveTracks(ctx context.Context, c *tunehook.Client, rec *tunehook.RecordInfo, dir string, out io.Writer) ([]string, error) {
	if rec.Response == nil || len(rec.Response.SunoData) == 0 {
		return nil, fmt.Errorf("task %s has no tracks to save", rec.TaskID)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var saved []string
	for i, tr := range rec.Response.SunoData {
		for _, media := range []struct{ url, ext string }{{tr.AudioURL, ".mp3"}, {tr.ImageURL, ".jpeg"}} {
			name := fmt.Sprintf("%s-%d%s", rec.TaskID, i+1, extension(media.url, media.ext))
			p := filepath.Join(dir, name)
			n, err := saveFile(ctx, c, media.url, p)
			if err != nil {
				return saved, err
			}
			fmt.Fprintf(out, "saved %s (%s)\n", p, byteSize(n))
			saved = append(saved, p)
		}
	}
	return saved, nil
}

// extension is the extension of a media URL's path, or def without one.
func extension(mediaURL, def string) string {
	u, err := url.Parse(mediaURL)
	if err != nil {
		return def
	}
	return cmp.Or(path.Ext(u.Path), def)
}

// saveFile downloads mediaURL into a temporary file next to p and renames
// it to p once complete, so that p is never a partial file.
func saveFile(ctx context.Context, c *tunehook.Client, mediaURL, p string) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(p), filepath.Base(p)+".part-*")
	if err != nil {
		return 0, err
	}
	n, err := c.Download(ctx, mediaURL, f)
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp's 0600 is for secrets
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
		return 0, err
	}
	return n, nil
}

// byteSize formats n bytes for people: "5.3 MB".
func byteSize(n int64) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d bytes", n)
}

// msTime formats epoch milliseconds of the API as a UTC time.
func msTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05 UTC")
}
