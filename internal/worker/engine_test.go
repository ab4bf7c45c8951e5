package worker_test

import (
	"context"
	"sync"

	"github.com/tunehook/tunehook/internal/task"
)

// testEngine is a deterministic Engine: fixed words, and tracks derived
// from the task. hook, when set, runs first in every stage with the stage's
// context and track index (-1 for text) and the number of earlier calls of
// that stage; an error it returns is the stage's, and it may block.
type testEngine struct {
	hook func(ctx context.Context, index, calls int) error

	mu    sync.Mutex
	calls map[int]int
}

// The words every task of testEngine gets.
var testText = task.Text{
	Title:  "Iron Man",
	Lyrics: "[Verse] Night city lights shining bright",
	Tags:   "electrifying, rock",
}

// testDurations are the durations of the two tracks; unrounded, so that the
// callbacks show the rounding.
var testDurations = [task.TracksPerTask]float64{198.444, 228.276}

func (e *testEngine) Text(ctx context.Context, t *task.Task, req task.Request) (task.Text, error) {
	if err := e.before(ctx, -1); err != nil {
		return task.Text{}, err
	}
	return testText, nil
}

func (e *testEngine) Render(ctx context.Context, t *task.Task, req task.Request, index int) (task.Track, error) {
	if err := e.before(ctx, index); err != nil {
		return task.Track{}, err
	}
	id := task.TrackID(t.ID, index)
	return task.Track{
		ID:       id,
		TaskID:   t.ID,
		Index:    index,
		AudioKey: t.ID + "/" + id + ".wav",
		ImageKey: t.ID + "/" + id + ".jpeg",
		Duration: testDurations[index],
	}, nil
}

func (e *testEngine) before(ctx context.Context, index int) error {
	e.mu.Lock()
	if e.calls == nil {
		e.calls = map[int]int{}
	}
	n := e.calls[index]
	e.calls[index]++
	e.mu.Unlock()
	if e.hook == nil {
		return nil
	}
	return e.hook(ctx, index, n)
}

// Calls returns how often the stage of track index (-1: text) ran.
func (e *testEngine) Calls(index int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[index]
}
