package tunehook

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

// Failed reports whether the callback reports a failed task. Handlers that
// only look at the success path miss these; check it first.
func (c *Callback) Failed() bool {
	return c.Code != 200 || c.Data.CallbackType == CallbackError
}
