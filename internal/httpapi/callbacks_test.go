package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// testDispatcher is the lease owner the tests record attempts as.
const testDispatcher = "test-dispatcher"

// attempt claims the one due callback of lane as a dispatcher would and
// records an attempt of it that took took and ends in state.
func (s *testServer) attempt(t *testing.T, lane task.Lane, a task.Attempt, took time.Duration, state task.DeliveryState, next time.Time) {
	t.Helper()
	ctx := context.Background()
	cbs, err := s.store.ClaimCallbacks(ctx, testDispatcher, lane, 10, time.Minute)
	if err != nil || len(cbs) != 1 {
		t.Fatalf("claim of the %s lane: got %d callbacks, %v, want 1", lane, len(cbs), err)
	}
	a.CallbackID, a.N, a.StartedAt, a.Duration = cbs[0].ID, cbs[0].Attempts+1, s.clock.Now(), took
	s.clock.Advance(took)
	results, err := s.store.RecordAttempts(ctx, testDispatcher, []task.AttemptRecord{{Attempt: a, State: state, Next: next}})
	if err := errors.Join(append(results, err)...); err != nil {
		t.Fatal(err)
	}
}

// callbackLog returns the raw data of GET /api/v1/callbacks?taskId=id.
func (s *testServer) callbackLog(t *testing.T, key, id string) string {
	t.Helper()
	e := decodeEnvelope(t, s.do(t, http.MethodGet, "/api/v1/callbacks?taskId="+id, key, nil), http.StatusOK)
	if e.Code != task.CodeOK || e.Msg != "success" {
		t.Fatalf("callbacks: got code %d msg %q, want 200 success", e.Code, e.Msg)
	}
	return string(e.Data)
}

// TestDeliveryLog follows a callback through a failed attempt, a retry
// that delivers it and a redelivery, checking the log's JSON exactly.
func TestDeliveryLog(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.createTask(t, testKey, validBody)
	if got, want := s.callbackLog(t, testKey, id), fmt.Sprintf(`{"taskId":%q,"callbacks":[]}`, id); got != want {
		t.Errorf("log before any stage: got %s, want %s", got, want)
	}
	s.commit(t, id, task.StageCommit{Text: &task.Text{Title: "Sea", Lyrics: "la", Tags: "calm"}})
	created := s.clock.Now().UnixMilli()
	cbs, err := s.store.Callbacks(context.Background(), id)
	if err != nil || len(cbs) != 1 {
		t.Fatalf("callbacks: got %d, %v, want 1", len(cbs), err)
	}
	cb := cbs[0]
	head := fmt.Sprintf(`{"id":%q,"taskId":%q,"callbackType":"text","callBackUrl":"https://example.com/cb"`, cb.ID, id)

	s.attempt(t, task.LaneFirst, task.Attempt{StatusCode: 503, Error: "HTTP 503", Response: []byte("busy")},
		120*time.Millisecond, task.DeliveryPending, s.clock.Now().Add(time.Minute))
	first := fmt.Sprintf(`{"attempt":1,"series":1,"manual":false,"time":%d,"durationMs":120,"statusCode":503,"error":"HTTP 503","response":"busy"}`, created)
	want := fmt.Sprintf(`{"taskId":%q,"callbacks":[%s,"state":"pending","attempts":1,"nextAttemptTime":%d,"createTime":%d,"finishTime":null,"history":[%s]}]}`,
		id, head, created+60000, created, first)
	if got := s.callbackLog(t, testKey, id); got != want {
		t.Errorf("log after a failed attempt:\ngot  %s\nwant %s", got, want)
	}

	s.clock.Advance(time.Minute)
	retried := s.clock.Now().UnixMilli()
	s.attempt(t, task.LaneRetry, task.Attempt{StatusCode: 200, Response: []byte(`{"ok":true}`)},
		30*time.Millisecond, task.DeliveryDelivered, time.Time{})
	second := fmt.Sprintf(`{"attempt":2,"series":1,"manual":false,"time":%d,"durationMs":30,"statusCode":200,"error":null,"response":"{\"ok\":true}"}`, retried)
	want = fmt.Sprintf(`{"taskId":%q,"callbacks":[%s,"state":"delivered","attempts":2,"nextAttemptTime":null,"createTime":%d,"finishTime":%d,"history":[%s,%s]}]}`,
		id, head, created, retried+30, first, second)
	if got := s.callbackLog(t, testKey, id); got != want {
		t.Errorf("log after delivery:\ngot  %s\nwant %s", got, want)
	}

	// A redelivery: a new series, due now, its attempts manual.
	s.clock.Advance(time.Hour)
	redelivered := s.clock.Now().UnixMilli()
	e := decodeEnvelope(t, s.do(t, http.MethodPost, "/api/v1/callbacks/"+cb.ID+"/redeliver", testKey, nil), http.StatusOK)
	wantCB := fmt.Sprintf(`%s,"state":"pending","attempts":0,"nextAttemptTime":%d,"createTime":%d,"finishTime":null,"history":[%s,%s]}`,
		head, redelivered, created, first, second)
	if e.Code != task.CodeOK || string(e.Data) != wantCB {
		t.Errorf("redeliver:\ngot  %d %s\nwant 200 %s", e.Code, e.Data, wantCB)
	}
	s.attempt(t, task.LaneFirst, task.Attempt{Error: "connection refused"}, 2*time.Millisecond, task.DeliveryPending, s.clock.Now().Add(time.Minute))
	third := fmt.Sprintf(`{"attempt":3,"series":2,"manual":true,"time":%d,"durationMs":2,"statusCode":null,"error":"connection refused","response":""}`, redelivered)
	want = fmt.Sprintf(`{"taskId":%q,"callbacks":[%s,"state":"pending","attempts":1,"nextAttemptTime":%d,"createTime":%d,"finishTime":null,"history":[%s,%s,%s]}]}`,
		id, head, redelivered+60000, created, first, second, third)
	if got := s.callbackLog(t, testKey, id); got != want {
		t.Errorf("log after an attempt of the redelivery:\ngot  %s\nwant %s", got, want)
	}
	if log := s.log.String(); !strings.Contains(log, "callback redelivered") || !strings.Contains(log, "callback_id="+cb.ID) {
		t.Errorf("got log %q, want a callback redelivered line with its callback_id", log)
	}
}

// Another key's task and callbacks answer like missing ones.
func TestDeliveryLogErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.createTask(t, testKey, validBody)
	s.commit(t, id, task.StageCommit{Failure: task.NewFailure(501)})
	cbs, err := s.store.Callbacks(context.Background(), id)
	if err != nil || len(cbs) != 1 {
		t.Fatalf("callbacks: got %d, %v, want 1", len(cbs), err)
	}
	tests := []struct {
		name         string
		method, path string
		key          string
		code         int
		msg          string
	}{
		{"no taskId", http.MethodGet, "/api/v1/callbacks", testKey, task.CodeInvalid, "Please enter taskId."},
		{"unknown task", http.MethodGet, "/api/v1/callbacks?taskId=0123", testKey, task.CodeNotFound, "Task not found."},
		{"another key's task", http.MethodGet, "/api/v1/callbacks?taskId=" + id, otherKey, task.CodeNotFound, "Task not found."},
		{"no API key", http.MethodGet, "/api/v1/callbacks?taskId=" + id, "", task.CodeUnauthorized, "Authentication required"},
		{"unknown callback", http.MethodPost, "/api/v1/callbacks/msg_0123/redeliver", testKey, task.CodeNotFound, "Callback not found."},
		{"another key's callback", http.MethodPost, "/api/v1/callbacks/" + cbs[0].ID + "/redeliver", otherKey, task.CodeNotFound, "Callback not found."},
		{"redeliver with GET", http.MethodGet, "/api/v1/callbacks/" + cbs[0].ID + "/redeliver", testKey, task.CodeNotFound, "Not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, s.do(t, tt.method, tt.path, tt.key, nil), http.StatusOK, tt.code, tt.msg)
		})
	}
	// The other key's attempt to redeliver changed nothing.
	if got, err := s.store.Callback(context.Background(), cbs[0].ID); err != nil || got.Redeliveries != 0 {
		t.Errorf("callback after refused redeliveries: got %+v, %v, want no redelivery", got, err)
	}
}
