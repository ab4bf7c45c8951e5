package payload

import (
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/task"
)

// DeliveryLog returns the delivery log of task taskID, whose callbacks are
// cbs with their History.
func DeliveryLog(taskID string, cbs []*task.Callback) tunehook.DeliveryLog {
	log := tunehook.DeliveryLog{TaskID: taskID, Callbacks: make([]tunehook.CallbackRecord, 0, len(cbs))}
	for _, c := range cbs {
		log.Callbacks = append(log.Callbacks, CallbackRecord(c))
	}
	return log
}

// CallbackRecord returns c, with its History, as the delivery log shows it.
// Attempts are numbered across series in the order they were made.
func CallbackRecord(c *task.Callback) tunehook.CallbackRecord {
	r := tunehook.CallbackRecord{
		ID:              c.ID,
		TaskID:          c.TaskID,
		CallbackType:    tunehook.CallbackType(c.Stage),
		CallBackURL:     c.URL,
		State:           tunehook.DeliveryState(c.State),
		Attempts:        c.Attempts,
		NextAttemptTime: optionalMS(c.NextAttemptAt),
		CreateTime:      c.CreatedAt.UnixMilli(),
		FinishTime:      optionalMS(c.FinishedAt),
		History:         make([]tunehook.DeliveryAttempt, 0, len(c.History)),
	}
	for i, a := range c.History {
		d := tunehook.DeliveryAttempt{
			Attempt:    i + 1,
			Series:     a.Redelivery + 1,
			Manual:     a.Manual(),
			Time:       a.StartedAt.UnixMilli(),
			DurationMS: a.Duration.Milliseconds(),
			// Bytes that are not UTF-8 become U+FFFD when marshalled.
			Response: string(a.Response),
		}
		if a.StatusCode != 0 {
			d.StatusCode = &a.StatusCode
		}
		if a.Error != "" {
			d.Error = &a.Error
		}
		r.History = append(r.History, d)
	}
	return r
}

// optionalMS returns t in epoch milliseconds, or nil for the zero time.
func optionalMS(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	ms := t.UnixMilli()
	return &ms
}
