package tunehook

// DeliveryState is where the delivery of one callback stands.
type DeliveryState string

// The states of a callback's delivery.
const (
	// DeliveryPending: an attempt is due, now or after a retry delay.
	DeliveryPending DeliveryState = "pending"
	// DeliveryDelivered: an attempt got a 2xx answer.
	DeliveryDelivered DeliveryState = "delivered"
	// DeliveryExhausted: every attempt of the retry schedule failed.
	DeliveryExhausted DeliveryState = "exhausted"
)

// CallbackLog is the data of GET /api/v1/callbacks?taskId=: the task's
// callbacks, oldest first, each with every attempt to deliver it.
type CallbackLog struct {
	TaskID    string             `json:"taskId"`
	Callbacks []CallbackDelivery `json:"callbacks"`
}

// CallbackDelivery is one callback of a task and its delivery, as the
// delivery log shows it and POST /api/v1/callbacks/{id}/redeliver answers.
// Times are epoch milliseconds, like record-info's.
type CallbackDelivery struct {
	ID           string        `json:"id"`
	TaskID       string        `json:"taskId"`
	CallbackType CallbackType  `json:"callbackType"`
	CallBackURL  string        `json:"callBackUrl"`
	State        DeliveryState `json:"state"`
	// Attempts counts the attempts of the current series: the automatic
	// one, or the latest manual redelivery.
	Attempts int `json:"attempts"`
	// NextAttemptTime is when the next attempt is due; nil when none is.
	NextAttemptTime *int64 `json:"nextAttemptTime"`
	CreateTime      int64  `json:"createTime"`
	// FinishTime is when the callback was delivered or exhausted; nil
	// while it is pending.
	FinishTime *int64            `json:"finishTime"`
	History    []DeliveryAttempt `json:"history"`
}

// DeliveryAttempt is one attempt to deliver a callback.
type DeliveryAttempt struct {
	// Attempt counts from 1 across every series of the callback.
	Attempt int `json:"attempt"`
	// Series is 1 for the automatic deliveries and 2, 3... for each
	// manual redelivery.
	Series     int   `json:"series"`
	Manual     bool  `json:"manual"`
	Time       int64 `json:"time"` // when it started, epoch milliseconds
	DurationMs int64 `json:"durationMs"`
	// StatusCode is the receiver's HTTP status; nil when there was no
	// answer (then Error says why).
	StatusCode *int    `json:"statusCode"`
	Error      *string `json:"error"`
	// Response is the first bytes of the receiver's answer.
	Response string `json:"response"`
}
