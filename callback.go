package tunehook

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// CallbackType is the stage a callback reports.
type CallbackType string

// The callback types of the seed. A successful task sends text, first and
// complete, in that order; a failed task sends error. Receivers must not rely
// on seeing text or first before complete.
const (
	CallbackText     CallbackType = "text"
	CallbackFirst    CallbackType = "first"
	CallbackComplete CallbackType = "complete"
	CallbackError    CallbackType = "error"
)

// The codes of callbacks, as the seed documents them. CodeSuccess comes
// with text, first and complete; the others with error.
const (
	CodeSuccess          = 200
	CodeCopyright        = 400
	CodeTimeout          = 408
	CodeExistingWork     = 413
	CodeServerError      = 500
	CodeGenerationFailed = 501
	CodeRefunded         = 531
)

// codeMeanings is the seed's table of callback codes.
var codeMeanings = map[int]string{
	CodeSuccess:          "success",
	CodeCopyright:        "lyrics contained copyrighted material",
	CodeTimeout:          "rate limited: timeout",
	CodeExistingWork:     "uploaded audio matches an existing work of art",
	CodeServerError:      "unexpected server error",
	CodeGenerationFailed: "audio generation failed",
	CodeRefunded:         "generation failed, credits refunded: try again",
}

// CodeMeaning returns what the seed says a callback code means, or
// "undocumented code" for a code it does not list.
func CodeMeaning(code int) string {
	if m, ok := codeMeanings[code]; ok {
		return m
	}
	return "undocumented code"
}

// CreateTimeLayout is the layout of CallbackTrack.CreateTime, in UTC.
const CreateTimeLayout = "2006-01-02 15:04:05"

// Callback is the JSON body POSTed to a task's callBackUrl.
type Callback struct {
	// Code is 200 for text, first and complete, and the failure's code
	// (400, 408, 413, 500, 501, 531) for error.
	Code int          `json:"code"`
	Msg  string       `json:"msg"`
	Data CallbackData `json:"data"`
}

// CallbackData is the data member of a Callback.
type CallbackData struct {
	CallbackType CallbackType `json:"callbackType"`
	TaskID       string       `json:"task_id"`
	// Data is empty (not nil) for text, one track for first, both for
	// complete, and nil (JSON null) for error.
	Data []CallbackTrack `json:"data"`
}

// CallbackTrack is one generated track as callbacks carry it.
type CallbackTrack struct {
	ID             string  `json:"id"`
	AudioURL       string  `json:"audio_url"`
	StreamAudioURL string  `json:"stream_audio_url"`
	ImageURL       string  `json:"image_url"`
	Prompt         string  `json:"prompt"` // the lyrics
	ModelName      string  `json:"model_name"`
	Title          string  `json:"title"`
	Tags           string  `json:"tags"`
	CreateTime     string  `json:"createTime"` // CreateTimeLayout, UTC
	Duration       float64 `json:"duration"`   // seconds
}

// CreatedAt returns CreateTime as a time, in UTC.
func (t CallbackTrack) CreatedAt() (time.Time, error) {
	at, err := time.Parse(CreateTimeLayout, t.CreateTime)
	if err != nil {
		return time.Time{}, fmt.Errorf("track %s createTime: %w", t.ID, err)
	}
	return at, nil
}

// Length returns Duration, in seconds on the wire, as a time.Duration.
func (t CallbackTrack) Length() time.Duration {
	return time.Duration(math.Round(t.Duration * float64(time.Second)))
}

// Failed reports whether the callback reports a failed task. Handlers that
// only look at the success path miss these; check it first, or use Err.
func (c *Callback) Failed() bool {
	return c.Code != CodeSuccess || c.Data.CallbackType == CallbackError
}

// Err returns a *TaskError when the callback reports a failed task (an
// error callback, or any code other than 200), and nil otherwise.
func (c *Callback) Err() error {
	if !c.Failed() {
		return nil
	}
	return &TaskError{Code: c.Code, Msg: c.Msg, TaskID: c.Data.TaskID}
}

// TaskError is a task's failure, as its callback or record-info reports
// it. (The name CallbackError is the constant of the error stage.)
type TaskError struct {
	Code   int    // the seed's code: 400, 408, 413, 500, 501, 531
	Msg    string // the sender's message
	TaskID string
}

// Error returns the task, the code with its meaning, and the message.
func (e *TaskError) Error() string {
	return fmt.Sprintf("task %s failed: code %d (%s): %s", e.TaskID, e.Code, CodeMeaning(e.Code), e.Msg)
}

// ErrInvalidCallback is wrapped by the errors of ParseCallback.
var ErrInvalidCallback = errors.New("invalid callback")

// ParseCallback decodes a callback body and checks its shape: a code, a
// known callbackType, a task_id, and for a successful stage (code 200, not
// error) a data.data array, empty for text. Unknown fields are ignored, so
// that additions by a provider do not break receivers. The error wraps
// ErrInvalidCallback.
func ParseCallback(body []byte) (*Callback, error) {
	var wire struct {
		Code *int   `json:"code"`
		Msg  string `json:"msg"`
		Data *struct {
			CallbackType CallbackType    `json:"callbackType"`
			TaskID       string          `json:"task_id"`
			Data         json.RawMessage `json:"data"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &wire); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCallback, err)
	}
	switch {
	case wire.Code == nil:
		return nil, fmt.Errorf("%w: no code", ErrInvalidCallback)
	case wire.Data == nil:
		return nil, fmt.Errorf("%w: no data", ErrInvalidCallback)
	case !wire.Data.CallbackType.Known():
		return nil, fmt.Errorf("%w: unknown callbackType %.40q", ErrInvalidCallback, wire.Data.CallbackType)
	case wire.Data.TaskID == "":
		return nil, fmt.Errorf("%w: no data.task_id", ErrInvalidCallback)
	}
	cb := &Callback{
		Code: *wire.Code,
		Msg:  wire.Msg,
		Data: CallbackData{CallbackType: wire.Data.CallbackType, TaskID: wire.Data.TaskID},
	}
	// An absent member leaves Data nil and JSON null decodes to nil too.
	if len(wire.Data.Data) > 0 {
		if err := json.Unmarshal(wire.Data.Data, &cb.Data.Data); err != nil {
			return nil, fmt.Errorf("%w: data.data: %w", ErrInvalidCallback, err)
		}
	}
	if !cb.Failed() && cb.Data.Data == nil {
		return nil, fmt.Errorf("%w: a %s callback without data.data", ErrInvalidCallback, cb.Data.CallbackType)
	}
	return cb, nil
}
