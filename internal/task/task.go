// Package task is tunehook's domain: generation tasks, their stages and
// callbacks, the validation of client requests, the error vocabulary, and the
// Store that persists all of it. It imports only the standard library.
package task

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Status is a task's generation status as record-info reports it.
type Status string

// The statuses of the reference. CALLBACK_EXCEPTION is part of the wire
// vocabulary but tunehook never sets it: delivery failure does not change a
// task's generation status.
const (
	StatusPending             Status = "PENDING"
	StatusTextSuccess         Status = "TEXT_SUCCESS"
	StatusFirstSuccess        Status = "FIRST_SUCCESS"
	StatusSuccess             Status = "SUCCESS"
	StatusCreateTaskFailed    Status = "CREATE_TASK_FAILED"
	StatusGenerateAudioFailed Status = "GENERATE_AUDIO_FAILED"
	StatusCallbackException   Status = "CALLBACK_EXCEPTION"
	StatusSensitiveWordError  Status = "SENSITIVE_WORD_ERROR"
)

// Final reports whether no further stage follows s.
func (s Status) Final() bool {
	switch s {
	case StatusPending, StatusTextSuccess, StatusFirstSuccess:
		return false
	}
	return true
}

// Stage names a step of generation; its value is the callbackType of the
// callback the step sends.
type Stage string

// The callback types of the seed, in the order a successful task sends them.
const (
	StageText     Stage = "text"
	StageFirst    Stage = "first"
	StageComplete Stage = "complete"
	StageError    Stage = "error"
)

// NextStage returns the stage that moves a task on from status s, and the
// status the task has once that stage is done. ok is false for final
// statuses.
func NextStage(s Status) (stage Stage, to Status, ok bool) {
	switch s {
	case StatusPending:
		return StageText, StatusTextSuccess, true
	case StatusTextSuccess:
		return StageFirst, StatusFirstSuccess, true
	case StatusFirstSuccess:
		return StageComplete, StatusSuccess, true
	}
	return "", "", false
}

// TracksPerTask is how many tracks every generation task produces.
const TracksPerTask = 2

// Task is one generation request and everything it has produced so far.
type Task struct {
	ID    string
	Owner string // Owner identifies the API key that created the task; see OwnerOf.
	Model Model
	// Param is the client's request as canonical JSON: record-info shows it
	// as "param", and Request decodes it.
	Param       string
	CallbackURL string
	Status      Status
	Text        Text    // set once the text stage is done
	Tracks      []Track // finished tracks, by Index
	Failure     *Failure
	// RunAt is when the next stage is due; zero once the task is final.
	RunAt time.Time
	// StageAttempts counts the claims of the current stage, so a stage that
	// keeps killing its runner is failed instead of retried for ever.
	StageAttempts int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Request decodes the task's Param.
func (t *Task) Request() (Request, error) {
	var r Request
	if err := unmarshalStrict([]byte(t.Param), &r); err != nil {
		return Request{}, fmt.Errorf("task %s: decode param: %w", t.ID, err)
	}
	return r, nil
}

// Text is what the text stage writes: the words of the song.
type Text struct {
	Title  string
	Lyrics string // empty for instrumental tasks
	Tags   string
}

// Track is one finished piece of audio with its cover.
type Track struct {
	ID        string
	TaskID    string
	Index     int    // 0 or 1: the order in which the tracks finish
	AudioKey  string // media key of the audio file
	ImageKey  string // media key of the cover image
	Duration  float64
	CreatedAt time.Time
}

// Failure is why a task failed, in the seed's codes (see failures.go).
type Failure struct {
	Code    int
	Message string
}

func (f *Failure) Error() string { return fmt.Sprintf("generation failed (%d): %s", f.Code, f.Message) }

// NewTaskID returns a fresh task ID: 32 hex digits, as the reference's
// providers use.
func NewTaskID() string { return randomHex(16) }

// NewCallbackID returns a fresh callback ID, which is also the webhook-id the
// callback is signed with.
func NewCallbackID() string { return "msg_" + randomHex(16) }

// TrackID returns the ID of track index of task taskID. It is derived, not
// random, so a stage that is redone after a crash produces the same track.
func TrackID(taskID string, index int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "track:%s:%d", taskID, index))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// OwnerOf returns the owner identity stored for tasks created with key. The
// store never holds the key itself.
func OwnerOf(key string) string {
	sum := sha256.Sum256([]byte("tunehook-owner:" + key))
	return hex.EncodeToString(sum[:16])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
