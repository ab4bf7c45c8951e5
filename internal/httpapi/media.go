package httpapi

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path"

	"github.com/tunehook/tunehook/internal/media"
	"github.com/tunehook/tunehook/internal/task"
)

// contentTypes maps the extensions of the media tunehook writes to their
// types. An explicit table, not the system's mime database, so that the
// answer does not depend on the machine the server runs on.
var contentTypes = map[string]string{
	".wav":  "audio/wav",
	".mp3":  "audio/mpeg",
	".jpeg": "image/jpeg",
	".jpg":  "image/jpeg",
	".png":  "image/png",
}

// mediaMaxAge is how long clients and proxies may cache a media file. A key
// always names the same content (stages are deterministic), and providers'
// files expire after two weeks, so a day is safe.
const mediaMaxAge = "public, max-age=86400"

// errMediaNotFound is the answer for a media key or track that does not
// exist, whatever the reason.
var errMediaNotFound = task.Errorf(task.CodeNotFound, "Not found.")

// handleMedia serves GET /media/{key...}: the media object under key, with
// Range and conditional requests. Media are public, like a provider's CDN:
// their keys hold 128-bit random task IDs.
func handleMedia(store media.Store, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serveObject(w, r, store, r.PathValue("key"), log)
	})
}

// handleStream serves GET /stream/{taskID}/{trackID}: the audio of a
// finished track, the same bytes as its audio URL.
func handleStream(tasks task.Store, store media.Store, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		taskID, trackID := r.PathValue("taskID"), r.PathValue("trackID")
		t, err := tasks.Task(r.Context(), taskID)
		if errors.Is(err, task.ErrNotFound) {
			writeError(w, r, log, errMediaNotFound)
			return
		}
		if err != nil {
			writeError(w, r, log.With("task_id", taskID), fmt.Errorf("load task %s: %w", taskID, err))
			return
		}
		for _, tr := range t.Tracks {
			if tr.ID == trackID {
				serveObject(w, r, store, tr.AudioKey, log.With("task_id", taskID))
				return
			}
		}
		writeError(w, r, log, errMediaNotFound)
	})
}

// serveObject answers with the media object under key. http.ServeContent
// handles Range, HEAD and If-Modified-Since.
func serveObject(w http.ResponseWriter, r *http.Request, store media.Store, key string, log *slog.Logger) {
	obj, err := store.Open(r.Context(), key)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, media.ErrInvalidKey) {
		writeError(w, r, log, errMediaNotFound)
		return
	}
	if err != nil {
		writeError(w, r, log, fmt.Errorf("open media %s: %w", key, err))
		return
	}
	defer obj.Close()
	ct, ok := contentTypes[path.Ext(key)]
	if !ok {
		ct = "application/octet-stream" // set, so that ServeContent does not sniff
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", mediaMaxAge)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", obj.ModTime, obj)
}
