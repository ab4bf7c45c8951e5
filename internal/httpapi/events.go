package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/task"
)

// handleEvents serves GET /api/v1/generate/events?taskId=ID: the task's
// statuses as Server-Sent Events, starting with its current one, or with
// the one after the Last-Event-ID of a client that reconnects. Each is
// an event "status" with the status as its id and the record-info data of
// the task at that status; after a final status, an event "end" closes the
// stream. A comment line every keepAlive keeps proxies from timing the
// stream out. Errors found before the stream starts are envelopes.
//
// Every status the task reaches is sent, even when two stages commit
// between two reads of the task: the statuses skipped are rebuilt from the
// later one (see reached and asOf). When the server shuts down, the stream
// ends without "end", and the client reconnects (to another instance).
func handleEvents(store task.Store, links payload.Links, waits *waiters, keepAlive time.Duration, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSpace(r.URL.Query().Get("taskId"))
		log := log.With("task_id", id)
		t, err := ownTask(r.Context(), store, id)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		if !waits.acquire() {
			writeBusy(w, r, log)
			return
		}
		defer waits.release()

		rc := http.NewResponseController(w)
		// A server's WriteTimeout would cut the stream short; keep-alives
		// and the client's disconnection bound it instead. (Its
		// ReadTimeout does not apply once the handler runs.)
		_ = rc.SetWriteDeadline(time.Time{})
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
		w.WriteHeader(http.StatusOK)

		stream := eventStream{w: w, rc: rc}
		// A client that reconnects names the last status it got: it
		// gets the statuses the task reached since, none twice.
		// Otherwise, or for an ID of no status the task went through,
		// the stream starts with the current status.
		path := reached(t)
		if last := slices.Index(path, task.Status(r.Header.Get("Last-Event-ID"))); last >= 0 {
			path = path[last+1:]
		} else {
			path = path[len(path)-1:]
		}
		for _, s := range path {
			stream.status(t, s, links)
		}
		sent := t.Status
		keep := time.NewTicker(keepAlive)
		defer keep.Stop()
		for !sent.Final() && stream.err == nil {
			next, err := waits.until(r.Context(), id, sent, keep.C)
			switch {
			case r.Context().Err() != nil:
				return // the client left
			case err != nil:
				// The stream has started: all the client can be told is
				// that it ended; it reconnects.
				log.ErrorContext(r.Context(), "event stream: load task failed", "error", err)
				return
			case waits.stopping():
				return
			case next.Status == sent:
				stream.comment("keep-alive")
				continue
			}
			path := reached(next)
			i := slices.Index(path, sent)
			for _, s := range path[i+1:] {
				stream.status(next, s, links)
			}
			sent = next.Status
		}
		if stream.err == nil {
			stream.event("end", "", []byte("{}"))
		}
	})
}

// eventStream writes Server-Sent Events and flushes each; err keeps the
// first write error (the client went away), after which nothing is
// written.
type eventStream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

// status sends the event of task t at status s, which t has reached.
func (e *eventStream) status(t *task.Task, s task.Status, links payload.Links) {
	b, err := json.Marshal(payload.RecordInfo(asOf(t, s), links))
	if err != nil {
		panic("httpapi: marshal record: " + err.Error()) // as in writeJSON
	}
	e.event("status", string(s), b)
}

// event sends one event; data must hold no newline (JSON from Marshal
// holds none).
func (e *eventStream) event(name, id string, data []byte) {
	if id != "" {
		e.write(fmt.Sprintf("event: %s\nid: %s\ndata: %s\n\n", name, id, data))
		return
	}
	e.write(fmt.Sprintf("event: %s\ndata: %s\n\n", name, data))
}

// comment sends a comment line, which clients ignore.
func (e *eventStream) comment(text string) { e.write(": " + text + "\n\n") }

func (e *eventStream) write(s string) {
	if e.err != nil {
		return
	}
	if _, e.err = e.w.Write([]byte(s)); e.err == nil {
		e.err = e.rc.Flush()
	}
}

// successPath is the statuses of a task that succeeds, in order.
var successPath = []task.Status{task.StatusPending, task.StatusTextSuccess, task.StatusFirstSuccess, task.StatusSuccess}

// reached returns the statuses task t has gone through, in order, ending
// with its current one. Stages run in one order (text, first, complete),
// and a failure can end a task after any of them; which ones it came after
// shows in what t holds: its text once the text stage is done, a track per
// track stage.
func reached(t *task.Task) []task.Status {
	if i := slices.Index(successPath, t.Status); i >= 0 {
		return successPath[:i+1]
	}
	done := 1 // PENDING
	if t.Text != (task.Text{}) || len(t.Tracks) > 0 {
		done = 2
	}
	if len(t.Tracks) > 0 {
		done = 3
	}
	return append(slices.Clone(successPath[:done]), t.Status)
}

// asOf returns task t as it was when it had status s, one of reached(t):
// with the text and tracks of the stages done by then, and no failure.
func asOf(t *task.Task, s task.Status) *task.Task {
	if s == t.Status {
		return t
	}
	v := *t
	v.Status, v.Failure = s, nil
	stages := slices.Index(successPath, s) // 0 at PENDING, 1 after text, 2 after first
	if stages < 1 {
		v.Text = task.Text{}
	}
	v.Tracks = v.Tracks[:min(len(v.Tracks), max(stages-1, 0))]
	return &v
}
