// Package worker holds tunehook's background services: the Runner, which
// moves tasks through their stages with an Engine, and the Dispatcher, which
// delivers the callbacks those stages leave behind. Each is built from a
// Config and blocks in Run(ctx) until ctx is cancelled.
package worker

import (
	"context"

	"github.com/tunehook/tunehook/internal/task"
)

// Engine produces the content of a task's stages. It must be deterministic
// per task: a stage redone after a crash yields the same text and tracks.
// An error that is a *task.Failure fails the task with the failure's code;
// any other error is transient and the stage is retried later.
type Engine interface {
	// Text writes the words of t's song: lyrics (none for instrumental
	// tasks), title and tags.
	Text(ctx context.Context, t *task.Task, req task.Request) (task.Text, error)
	// Render renders track index (0 or 1) of t, whose Text is set, stores
	// its audio and cover, and returns the track with every field but
	// CreatedAt filled in. Its ID is task.TrackID(t.ID, index).
	Render(ctx context.Context, t *task.Task, req task.Request, index int) (task.Track, error)
}
