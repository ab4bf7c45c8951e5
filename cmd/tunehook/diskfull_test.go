package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
)

// The data dir fills up while the server runs (a small tmpfs): submissions
// fail with a clear error or are accepted, nothing accepted is lost or
// corrupted, and once space returns every accepted task completes with
// whole media files.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	dir := smallTmpfs(t, "48m")
	rcv := newReceiver(t, nil)
	srv := startServer(t, dir, "TUNEHOOK_SYNTH_DELAYS=0s,1500ms,1500ms", "TUNEHOOK_SYNTH_DURATION=10s")
	ids := []string{srv.submit(generateBody(rcv.URL))}
	waitUntil(t, 30*time.Second, "a task completes before the disk fills", func() bool { return rcv.count("complete") == 1 })
	// Tasks accepted now render their tracks after the disk is full.
	for range 3 {
		ids = append(ids, srv.submit(generateBody(rcv.URL)))
	}
	waitUntil(t, 30*time.Second, "their text callbacks", func() bool { return rcv.count("text") == len(ids) })

	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	for range 10 {
		env, _, err := call("POST", srv.URL+"/api/v1/generate", testKey, generateBody(rcv.URL))
		switch {
		case err != nil:
			t.Fatalf("submit with the disk full: %v", err)
		case env.Code == 200:
			var created tunehook.TaskCreated
			if err := json.Unmarshal(env.Data, &created); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, created.TaskID)
		case env.Code != 500 || !strings.Contains(env.Msg, "storage"):
			t.Errorf("submit with the disk full: code %d %q, want 200, or 500 saying the server is out of storage", env.Code, env.Msg)
		}
	}
	if got := srv.recordInfo(ids[0]); got.Status != tunehook.StatusSuccess {
		t.Errorf("record-info of a finished task with the disk full: %s", got.Status)
	}
	time.Sleep(2 * time.Second) // stages of the accepted tasks fail meanwhile
	if !strings.Contains(srv.stderr.String(), "no space left on device") && !strings.Contains(srv.stderr.String(), "database or disk is full") {
		t.Errorf("the logs do not say the disk is full:\n%s", srv.stderr)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 90*time.Second, "every accepted task completes once space returns", func() bool {
		return deliveredAll(rcv, ids, []tunehook.CallbackType{"text", "first", "complete"})
	})
	t.Logf("%d tasks accepted, %d of them with the disk full", len(ids), len(ids)-4)
	for _, id := range ids {
		ri := srv.recordInfo(id)
		if ri.Status != tunehook.StatusSuccess {
			t.Errorf("task %s: %s, want SUCCESS", id, ri.Status)
			continue
		}
		for _, tr := range ri.Response.SunoData {
			checkWAVLength(t, mustDownload(t, tr.AudioURL), tr.Duration)
		}
	}
}

// smallTmpfs mounts a tmpfs of the given size on a temporary directory for
// the test, or skips the test, saying why, where that is not allowed.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root: the disk-full test is skipped")
	}
	dir, err := os.MkdirTemp("", "tunehook-full-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		t.Skipf("cannot mount a tmpfs here (%v: %s): the disk-full test is skipped", err, out)
	}
	t.Cleanup(func() {
		// Cleanups run last-in first-out: the server, registered later, is
		// gone by now.
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
		os.Remove(dir)
	})
	return dir
}

// fill writes to path until the filesystem is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			return
		}
	}
}
