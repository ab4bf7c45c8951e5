package tunehook

// Status is a task's status as record-info reports it.
type Status string

// The statuses of record-info.
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

// TaskCreated is the data of the answer to POST /api/v1/generate.
type TaskCreated struct {
	TaskID string `json:"taskId"`
}

// RecordInfo is the data of GET /api/v1/generate/record-info.
type RecordInfo struct {
	TaskID        string `json:"taskId"`
	ParentMusicID string `json:"parentMusicId"`
	// Param is the request the task was created with, as a JSON string.
	Param string `json:"param"`
	// Response is nil while the task is PENDING.
	Response      *RecordResponse `json:"response"`
	Status        Status          `json:"status"`
	Type          string          `json:"type"` // the model's chirp name
	OperationType string          `json:"operationType"`
	ErrorCode     *int            `json:"errorCode"`
	ErrorMessage  *string         `json:"errorMessage"`
	CreateTime    int64           `json:"createTime"` // epoch milliseconds
}

// RecordResponse holds the tracks finished so far.
type RecordResponse struct {
	TaskID   string        `json:"taskId"`
	SunoData []RecordTrack `json:"sunoData"`
}

// RecordTrack is one generated track as record-info shows it.
type RecordTrack struct {
	ID             string  `json:"id"`
	AudioURL       string  `json:"audioUrl"`
	StreamAudioURL string  `json:"streamAudioUrl"`
	ImageURL       string  `json:"imageUrl"`
	Prompt         string  `json:"prompt"`
	ModelName      string  `json:"modelName"`
	Title          string  `json:"title"`
	Tags           string  `json:"tags"`
	CreateTime     int64   `json:"createTime"` // epoch milliseconds
	Duration       float64 `json:"duration"`
}

// Final reports whether s ends a task: SUCCESS or one of the failure
// statuses. Nothing changes after a final status.
func (s Status) Final() bool { return s == StatusSuccess || s.Failed() }

// Failed reports whether s is one of the failure statuses.
func (s Status) Failed() bool {
	switch s {
	case StatusCreateTaskFailed, StatusGenerateAudioFailed, StatusCallbackException, StatusSensitiveWordError:
		return true
	}
	return false
}

// Err returns a *TaskError when the task has failed, with the code and
// message of errorCode and errorMessage, and nil otherwise.
func (r *RecordInfo) Err() error {
	if !r.Status.Failed() {
		return nil
	}
	e := &TaskError{TaskID: r.TaskID, Msg: string(r.Status)}
	if r.ErrorCode != nil {
		e.Code = *r.ErrorCode
	}
	if r.ErrorMessage != nil {
		e.Msg = *r.ErrorMessage
	}
	return e
}
