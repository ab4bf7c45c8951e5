package bench

import (
	"context"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// benchKey is the API key of the bench's tasks.
const benchKey = "tunehook-bench"

// callbacksPerTask is how many callbacks a successful task sends: text,
// first and complete.
const callbacksPerTask = 3

// stages are the stages of a successful task, in order.
var stages = [callbacksPerTask]task.Stage{task.StageText, task.StageFirst, task.StageComplete}

// lyrics are the words of every bench song: long enough that a complete
// callback, which carries them once per track, weighs about 1.5 KB, as a
// real one does.
const lyrics = `[Verse]
Night city lights shining bright
Engines humming through the night
Every window tells a story
Every street a road to glory
[Chorus]
We run, we run, we never stop
From the basement to the top
[Verse]
Morning comes with silver rain
Washing off the dust again`

// instantEngine is the bench's worker.Engine: it answers at once with a
// fixed text and with tracks whose media it never renders nor writes, so
// that the bench measures the queue, the store and the delivery. Rendering
// is measured on its own by the synth benchmarks.
type instantEngine struct{}

// Text returns the fixed words of every bench song.
func (instantEngine) Text(context.Context, *task.Task, task.Request) (task.Text, error) {
	return task.Text{Title: "Night City", Lyrics: lyrics, Tags: "electrifying, rock"}, nil
}

// Render returns track index of t as the synth engine names it, three
// minutes long, without rendering it.
func (instantEngine) Render(_ context.Context, t *task.Task, _ task.Request, index int) (task.Track, error) {
	id := task.TrackID(t.ID, index)
	return task.Track{
		ID:       id,
		TaskID:   t.ID,
		Index:    index,
		AudioKey: t.ID + "/" + id + ".wav",
		ImageKey: t.ID + "/" + id + ".jpeg",
		Duration: 180,
	}, nil
}

// newRequest returns a valid generate request, as a client sends it,
// whose callbacks go to callbackURL.
func newRequest(callbackURL, prompt string) task.Request {
	no := false
	return task.Request{
		CustomMode:   &no,
		Instrumental: &no,
		Model:        "V5",
		CallBackURL:  callbackURL,
		Prompt:       prompt,
	}
}

// newTask returns the task the API stores for req, due at once.
func newTask(req task.Request, now time.Time) *task.Task {
	return &task.Task{
		ID:          task.NewTaskID(),
		Owner:       task.OwnerOf(benchKey),
		Model:       req.Model,
		Param:       req.Param(),
		CallbackURL: req.CallBackURL,
		Status:      task.StatusPending,
		RunAt:       now,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
}
