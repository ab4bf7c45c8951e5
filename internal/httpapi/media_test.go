package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tunehook/tunehook/internal/task"
)

// putMedia stores content under key in the test server's media store.
func (s *testServer) putMedia(t *testing.T, key string, content []byte) {
	t.Helper()
	err := s.media.Put(context.Background(), key, func(w io.Writer) error {
		_, err := w.Write(content)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testContent returns n bytes in which every offset has a telling value.
func testContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/256)
	}
	return b
}

func TestMedia(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	content := testContent(1000)
	tests := []struct {
		key      string
		wantType string
	}{
		{"task1/track1.wav", "audio/wav"},
		{"task1/track1.mp3", "audio/mpeg"},
		{"task1/track1.jpeg", "image/jpeg"},
		{"task1/track1.jpg", "image/jpeg"},
		{"task1/track1.png", "image/png"},
		{"task1/track1.bin", "application/octet-stream"},
		{"task1/notes", "application/octet-stream"},
	}
	for _, tt := range tests {
		s.putMedia(t, tt.key, content)
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			t.Parallel()
			a := s.do(t, http.MethodGet, "/media/"+tt.key, "", nil)
			if a.status != http.StatusOK {
				t.Fatalf("got status %d (%s), want 200", a.status, a.body)
			}
			wantHeaders := map[string]string{
				"Content-Type":   tt.wantType,
				"Content-Length": "1000",
				"Accept-Ranges":  "bytes",
			}
			for name, want := range wantHeaders {
				if got := a.header.Get(name); got != want {
					t.Errorf("%s: got %q, want %q", name, got, want)
				}
			}
			if cc := a.header.Get("Cache-Control"); !strings.HasPrefix(cc, "public, max-age=") {
				t.Errorf("Cache-Control: got %q, want public with a max-age", cc)
			}
			if !bytes.Equal(a.body, content) {
				t.Errorf("got %d bytes that differ from the %d stored", len(a.body), len(content))
			}
		})
	}
}

// Range, HEAD and conditional requests work as http.ServeContent serves
// them.
func TestMediaRequests(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	content := testContent(1000)
	const key = "task1/track1.wav"
	s.putMedia(t, key, content)
	full := s.do(t, http.MethodGet, "/media/"+key, "", nil)
	lastModified := full.header.Get("Last-Modified")
	if lastModified == "" {
		t.Fatal("got no Last-Modified")
	}

	tests := []struct {
		name       string
		method     string
		header     http.Header
		wantStatus int
		wantBody   []byte
		wantHeader map[string]string
	}{
		{
			name: "range", method: http.MethodGet, header: http.Header{"Range": {"bytes=100-199"}},
			wantStatus: http.StatusPartialContent, wantBody: content[100:200],
			wantHeader: map[string]string{"Content-Range": "bytes 100-199/1000", "Content-Length": "100", "Content-Type": "audio/wav"},
		},
		{
			name: "suffix range", method: http.MethodGet, header: http.Header{"Range": {"bytes=-10"}},
			wantStatus: http.StatusPartialContent, wantBody: content[990:],
			wantHeader: map[string]string{"Content-Range": "bytes 990-999/1000"},
		},
		{
			name: "open range", method: http.MethodGet, header: http.Header{"Range": {"bytes=995-"}},
			wantStatus: http.StatusPartialContent, wantBody: content[995:],
			wantHeader: map[string]string{"Content-Range": "bytes 995-999/1000"},
		},
		{
			name: "unsatisfiable range", method: http.MethodGet, header: http.Header{"Range": {"bytes=5000-6000"}},
			wantStatus: http.StatusRequestedRangeNotSatisfiable,
			wantHeader: map[string]string{"Content-Range": "bytes */1000"},
		},
		{
			name: "head", method: http.MethodHead, wantStatus: http.StatusOK, wantBody: []byte{},
			wantHeader: map[string]string{"Content-Length": "1000", "Content-Type": "audio/wav"},
		},
		{
			name: "not modified", method: http.MethodGet, header: http.Header{"If-Modified-Since": {lastModified}},
			wantStatus: http.StatusNotModified, wantBody: []byte{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := s.doHeader(t, tt.method, "/media/"+key, tt.header, nil)
			if a.status != tt.wantStatus {
				t.Fatalf("got status %d, want %d", a.status, tt.wantStatus)
			}
			if tt.wantBody != nil && !bytes.Equal(a.body, tt.wantBody) {
				t.Errorf("got body of %d bytes %x, want %d bytes %x", len(a.body), a.body, len(tt.wantBody), tt.wantBody)
			}
			for name, want := range tt.wantHeader {
				if got := a.header.Get(name); got != want {
					t.Errorf("%s: got %q, want %q", name, got, want)
				}
			}
		})
	}
}

// Keys that do not exist, or that try to leave the media directory, answer
// 404 and never serve what lies outside it.
func TestMediaNotFound(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	secret := []byte("SECRET-OUTSIDE-MEDIA")
	secretPath := filepath.Join(s.dir, "secret.wav")
	if err := os.WriteFile(secretPath, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	s.putMedia(t, "task1/track1.wav", testContent(10))
	if err := os.WriteFile(filepath.Join(s.mediaDir, ".hidden.wav"), secret, 0o644); err != nil {
		t.Fatal(err)
	}
	paths := []string{
		"/media/",
		"/media/task1",
		"/media/task1/",
		"/media/task1/missing.wav",
		"/media/task2/track1.wav",
		"/media/.hidden.wav",
		"/media/../secret.wav",
		"/media/task1/../../secret.wav",
		"/media/%2e%2e/secret.wav",
		"/media/%2E%2E/secret.wav",
		"/media/..%2fsecret.wav",
		"/media/%2e%2e%2fsecret.wav",
		"/media/..%5csecret.wav",
		"/media/" + secretPath,
		"/media/" + strings.ReplaceAll(secretPath, "/", "%2f"),
		"/media//" + secretPath,
		"/media/task1/track1.wav%00",
		"/media/task1/track1.wav/",
		"/media/" + strings.Repeat("a/", 400) + "x.wav",
		"/stream/%2e%2e/secret.wav",
	}
	for _, p := range paths {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			a := s.do(t, method, p, "", nil)
			if a.status != http.StatusNotFound {
				t.Errorf("%s %s: got status %d, want 404", method, p, a.status)
			}
			if bytes.Contains(a.body, secret) || strings.Contains(a.header.Get("Content-Length"), strconv.Itoa(len(secret))) {
				t.Errorf("%s %s: got the secret file (%d bytes), want it never served", method, p, len(a.body))
			}
			if method == http.MethodGet {
				wantError(t, a, http.StatusNotFound, task.CodeNotFound, "Not found")
			}
		}
	}
}

// The stream URL of a track serves the bytes of its audio URL.
func TestStream(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.createTask(t, testKey, validBody)
	s.commit(t, id, task.StageCommit{Text: &task.Text{Title: "T", Lyrics: "la", Tags: "rock"}})
	tr := s.testTrack(id, 0)
	audio := testContent(4096)
	s.putMedia(t, tr.AudioKey, audio)
	s.putMedia(t, tr.ImageKey, testContent(64))
	s.commit(t, id, task.StageCommit{Track: tr})

	stream := "/stream/" + id + "/" + tr.ID
	fromMedia := s.do(t, http.MethodGet, "/media/"+tr.AudioKey, "", nil)
	fromStream := s.do(t, http.MethodGet, stream, "", nil)
	if fromStream.status != http.StatusOK || !bytes.Equal(fromStream.body, audio) || !bytes.Equal(fromMedia.body, audio) {
		t.Errorf("got stream %d with %d bytes and media %d with %d bytes, want both 200 with the %d stored",
			fromStream.status, len(fromStream.body), fromMedia.status, len(fromMedia.body), len(audio))
	}
	for _, h := range []string{"Content-Type", "Content-Length"} {
		if got, want := fromStream.header.Get(h), fromMedia.header.Get(h); got != want || got == "" {
			t.Errorf("%s: got %q from the stream, want %q as from the media URL", h, got, want)
		}
	}
	ranged := s.doHeader(t, http.MethodGet, stream, http.Header{"Range": {"bytes=1000-1999"}}, nil)
	if ranged.status != http.StatusPartialContent || !bytes.Equal(ranged.body, audio[1000:2000]) {
		t.Errorf("got range status %d with %d bytes, want 206 with bytes 1000-1999", ranged.status, len(ranged.body))
	}

	for _, p := range []string{
		"/stream/" + id + "/" + task.TrackID(id, 1), // not finished yet
		"/stream/" + id + "/" + tr.ImageKey,
		"/stream/" + task.NewTaskID() + "/" + tr.ID,
		"/stream/" + id + "/",
	} {
		wantError(t, s.do(t, http.MethodGet, p, "", nil), http.StatusNotFound, task.CodeNotFound, "Not found")
	}
}
