package httpapi

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// maxWait is the longest record-info long-poll.
const maxWait = 30 * time.Second

// Changes tells the requests waiting for a task (record-info with wait,
// event streams) that it changed, so that they answer at once. The Runner
// of the same process reports its commits through Notify; changes made by
// other instances sharing a PostgreSQL database are found by polling. A nil
// *Changes is valid and never wakes anyone.
type Changes struct {
	mu    sync.Mutex
	tasks map[string]*change
}

// change is the wake-up of the requests waiting for one task: ch is closed
// at the task's next change.
type change struct {
	ch      chan struct{}
	waiters int
}

// NewChanges returns a Changes with no one waiting.
func NewChanges() *Changes { return &Changes{tasks: map[string]*change{}} }

// Notify wakes the requests waiting for task taskID. It never blocks.
func (c *Changes) Notify(taskID string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.tasks[taskID]; ch != nil {
		close(ch.ch)
		delete(c.tasks, taskID)
	}
}

// subscribe returns a channel closed at the next Notify of taskID, and
// the function that gives it up.
func (c *Changes) subscribe(taskID string) (<-chan struct{}, func()) {
	if c == nil {
		return nil, func() {}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.tasks[taskID]
	if ch == nil {
		ch = &change{ch: make(chan struct{})}
		c.tasks[taskID] = ch
	}
	ch.waiters++
	return ch.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if ch.waiters--; ch.waiters == 0 && c.tasks[taskID] == ch {
			delete(c.tasks, taskID)
		}
	}
}

// waiters runs the requests that wait for a task to change, at most as
// many at once as it has slots: each one reads its task every poll, and
// whenever changes wakes it.
type waiters struct {
	store   task.Store
	changes *Changes
	poll    time.Duration
	slots   chan struct{}
	stop    <-chan struct{}
}

// acquire takes a slot, or returns false when every one is taken.
func (w *waiters) acquire() bool {
	select {
	case w.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// release gives back a slot that acquire took.
func (w *waiters) release() { <-w.slots }

// writeBusy answers a wait when every slot is taken: the client is told to
// come back in a second, like a client that calls too often.
func writeBusy(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	w.Header().Set("Retry-After", "1")
	writeError(w, r, log, task.Errorf(task.CodeRateLimited, msgRateLimited))
}

// until returns task id once its status is no longer from. When done
// fires or the server stops first, it returns the task as last read, its
// status still from.
func (w *waiters) until(ctx context.Context, id string, from task.Status, done <-chan time.Time) (*task.Task, error) {
	tick := time.NewTicker(w.poll)
	defer tick.Stop()
	for {
		// Subscribed before the read, so that a change committed between
		// the two is not missed.
		woken, unsubscribe := w.changes.subscribe(id)
		t, err := w.store.Task(ctx, id)
		if err != nil || t.Status != from {
			unsubscribe()
			return t, err
		}
		select {
		case <-woken:
		case <-tick.C:
		case <-done:
			unsubscribe()
			return t, nil
		case <-w.stop:
			unsubscribe()
			return t, nil
		case <-ctx.Done():
			unsubscribe()
			return nil, ctx.Err()
		}
		unsubscribe()
	}
}

// stopping reports whether the server is shutting down.
func (w *waiters) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// parseWait reads record-info's wait: whole or decimal seconds ("10",
// "2.5") or a Go duration ("10s", "1500ms"), from 0 to 30 seconds; empty
// is 0, no wait.
func parseWait(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if secs, ferr := strconv.ParseFloat(v, 64); ferr == nil && !math.IsNaN(secs) && !math.IsInf(secs, 0) {
		d, err = time.Duration(secs*float64(time.Second)), nil
		if secs > maxWait.Seconds() {
			d = maxWait + 1 // out of range, without overflowing
		}
	}
	if err != nil || d < 0 || d > maxWait {
		return 0, task.Errorf(task.CodeInvalid, "wait must be from 0 to 30 seconds, as a number of seconds (10) or a duration (10s).")
	}
	return d, nil
}
