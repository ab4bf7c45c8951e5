package tunehook

// DeliveryState is where a callback's delivery stands in the delivery log.
type DeliveryState string

// A callback is pending until an attempt succeeds (delivered) or the last
// retry of its series fails (exhausted). A redelivery makes it pending
// again.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryExhausted DeliveryState = "exhausted"
)

// DeliveryLog is the data of GET /api/v1/callbacks?taskId=: a task's
// callbacks, oldest first, with every attempt to deliver them.
type DeliveryLog struct {
	TaskID    string           `json:"taskId"`
	Callbacks []CallbackRecord `json:"callbacks"`
}

// CallbackRecord is one callback of a task and its deliveries; it is also
// the data of POST /api/v1/callbacks/{id}/redeliver. Times are epoch
// milliseconds.
type CallbackRecord struct {
	// ID is also the webhook-id the callback is signed with.
	ID           string        `json:"id"`
	TaskID       string        `json:"taskId"`
	CallbackType CallbackType  `json:"callbackType"`
	CallBackURL  string        `json:"callBackUrl"`
	State        DeliveryState `json:"state"`
	// Attempts counts the attempts of the current series.
	Attempts int `json:"attempts"`
	// NextAttemptTime is nil once the callback is delivered or exhausted.
	NextAttemptTime *int64 `json:"nextAttemptTime"`
	CreateTime      int64  `json:"createTime"`
	// FinishTime is when it became delivered or exhausted; nil while
	// pending.
	FinishTime *int64            `json:"finishTime"`
	History    []DeliveryAttempt `json:"history"`
}

// DeliveryAttempt is one POST of a callback to its callBackUrl.
type DeliveryAttempt struct {
	// Attempt numbers the callback's attempts from 1, across every series.
	Attempt int `json:"attempt"`
	// Series is 1 for the automatic attempts and their retries, then 2, 3,
	// ... for the attempts of each manual redelivery.
	Series     int   `json:"series"`
	Manual     bool  `json:"manual"`
	Time       int64 `json:"time"`
	DurationMS int64 `json:"durationMs"`
	// StatusCode is nil when no answer arrived (a timeout, a refused
	// connection).
	StatusCode *int `json:"statusCode"`
	// Error is nil for the attempt that delivered the callback.
	Error *string `json:"error"`
	// Response holds the first bytes of the receiver's answer.
	Response string `json:"response"`
}
