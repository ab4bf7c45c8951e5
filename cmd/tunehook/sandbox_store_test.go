package main

// End-to-end tests of idempotent submits, credits and the delivery log,
// on both stores.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
)

// submitIdempotent submits body with an Idempotency-Key and returns the
// envelope and the Idempotent-Replayed header.
func submitIdempotent(t *testing.T, url, idemKey string, body map[string]any) (tunehook.Envelope[tunehook.TaskCreated], string, error) {
	var env tunehook.Envelope[tunehook.TaskCreated]
	b, err := json.Marshal(body)
	if err != nil {
		return env, "", err
	}
	req, err := http.NewRequest(http.MethodPost, url+"/api/v1/generate", bytes.NewReader(b))
	if err != nil {
		return env, "", err
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idemKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return env, "", err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return env, "", fmt.Errorf("decode envelope: %w", err)
	}
	return env, resp.Header.Get("Idempotent-Replayed"), nil
}

// A client retrying one submit from 20 goroutines at once makes one task:
// every retry gets its ID, the receiver hears of that task only.
func TestIdempotentSubmitConcurrentRetries(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		const retries = 20
		rcv := newReceiver(t, nil)
		srv := startServer(t, t.TempDir(), st.env...)
		body := generateBody(rcv.URL + "/cb")

		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			ids      = map[string]int{}
			replayed atomic.Int32
		)
		start := make(chan struct{})
		for range retries {
			wg.Go(func() {
				<-start
				env, header, err := submitIdempotent(t, srv.URL, "order-7", body)
				if err != nil || env.Code != 200 {
					t.Errorf("submit: got code %d msg %q, %v, want 200", env.Code, env.Msg, err)
					return
				}
				if header == "true" {
					replayed.Add(1)
				}
				mu.Lock()
				defer mu.Unlock()
				ids[env.Data.TaskID]++
			})
		}
		close(start)
		wg.Wait()
		if len(ids) != 1 || replayed.Load() != retries-1 {
			t.Fatalf("got task IDs %v and %d replays, want one ID and %d replays", ids, replayed.Load(), retries-1)
		}
		taskID := slices.Collect(maps.Keys(ids))[0]

		body["prompt"] = "another song entirely"
		env, _, err := submitIdempotent(t, srv.URL, "order-7", body)
		if err != nil || env.Code != 400 || env.Msg != "Idempotency-Key was already used with a different request body." {
			t.Errorf("another body under the key: got code %d msg %q, %v, want 400", env.Code, env.Msg, err)
		}

		// A second task would have sent its text callback long before the
		// first task's complete one arrives.
		waitUntil(t, 30*time.Second, "the complete callback arrives", func() bool { return rcv.count(tunehook.CallbackComplete) == 1 })
		for _, d := range rcv.deliveries() {
			if d.body.Data.TaskID != taskID {
				t.Errorf("got a %s callback of task %s, want callbacks of %s only", d.body.Data.CallbackType, d.body.Data.TaskID, taskID)
			}
		}
		// Credits are off by default: unlimited.
		var credit int
		if env := srv.api("GET", "/api/v1/generate/credit", testKey, nil, &credit); env.Code != 200 || credit != 2147483647 {
			t.Errorf("credit with credits off: got code %d, %d, want 200, 2147483647", env.Code, credit)
		}
	})
}

// credit returns the key's balance.
func (s *server) credit() int {
	s.t.Helper()
	var n int
	if env := s.api("GET", "/api/v1/generate/credit", testKey, nil, &n); env.Code != 200 {
		s.t.Fatalf("credit: code %d %q", env.Code, env.Msg)
	}
	return n
}

// Each task costs its price; a task that fails with 531 gives its credits
// back; a task over the balance is refused with 429. Only a 531 task's
// failure changes a balance behind the test's back, so the steps are
// ordered around it.
func TestCreditsEndToEnd(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, nil)
		srv := startServer(t, t.TempDir(), st.with("TUNEHOOK_CREDITS=25", "TUNEHOOK_CREDITS_PER_TASK=10", "TUNEHOOK_SIMULATION=true")...)
		if got := srv.credit(); got != 25 {
			t.Errorf("credit at start: got %d, want 25", got)
		}
		srv.submit(generateBody(rcv.URL + "/cb"))
		if got := srv.credit(); got != 15 {
			t.Errorf("credit after a task: got %d, want 15", got)
		}
		refunded := generateBody(rcv.URL + "/cb")
		refunded["prompt"] = "a song that fails tunehook:fail:531"
		failing := srv.submit(refunded)
		waitUntil(t, 30*time.Second, "the 531 task fails", func() bool {
			return srv.recordInfo(failing).Status == tunehook.StatusGenerateAudioFailed
		})
		if got := srv.credit(); got != 15 {
			t.Errorf("credit after the 531 failure: got %d, want 15 (refunded)", got)
		}

		srv.submit(generateBody(rcv.URL + "/cb"))
		env, _, err := call("POST", srv.URL+"/api/v1/generate", testKey, generateBody(rcv.URL+"/cb"))
		if err != nil || env.Code != 429 || env.Msg != "The current credits are insufficient. Please top up." || string(env.Data) != "null" {
			t.Errorf("submit over the balance: got %d %q %s, %v, want 429", env.Code, env.Msg, env.Data, err)
		}
		if got := srv.credit(); got != 5 {
			t.Errorf("credit after a refused submit: got %d, want 5", got)
		}
	})
}

// deliveryLog fetches the delivery log of taskID, keyed by callback type.
func (s *server) deliveryLog(taskID string) map[tunehook.CallbackType]tunehook.CallbackRecord {
	s.t.Helper()
	var log tunehook.DeliveryLog
	if env := s.api("GET", "/api/v1/callbacks?taskId="+taskID, testKey, nil, &log); env.Code != 200 || log.TaskID != taskID {
		s.t.Fatalf("callbacks of %s: code %d %q, task %q", taskID, env.Code, env.Msg, log.TaskID)
	}
	byType := map[tunehook.CallbackType]tunehook.CallbackRecord{}
	for _, c := range log.Callbacks {
		byType[c.CallbackType] = c
	}
	return byType
}

// checkHistory reports when a callback's history differs from want, given
// as the status code of each attempt (0: none) and its series.
func checkHistory(t *testing.T, c tunehook.CallbackRecord, state tunehook.DeliveryState, attempts int, want [][2]int) {
	t.Helper()
	if c.State != state || c.Attempts != attempts || len(c.History) != len(want) {
		t.Fatalf("%s callback: got %s after %d attempts, %d in history, want %s after %d, %d",
			c.CallbackType, c.State, c.Attempts, len(c.History), state, attempts, len(want))
	}
	if (state == tunehook.DeliveryPending) != (c.NextAttemptTime != nil) || (state == tunehook.DeliveryPending) == (c.FinishTime != nil) {
		t.Errorf("%s callback %s: got nextAttemptTime %v, finishTime %v", c.CallbackType, state, c.NextAttemptTime, c.FinishTime)
	}
	for i, a := range c.History {
		status := 0
		if a.StatusCode != nil {
			status = *a.StatusCode
		}
		delivered := status >= 200 && status < 300
		if a.Attempt != i+1 || status != want[i][0] || a.Series != want[i][1] || a.Manual != (a.Series > 1) ||
			delivered != (a.Error == nil) || a.Response != `{"status":"received"}` || a.Time < c.CreateTime {
			t.Errorf("%s callback, attempt %d: got %+v (status %d), want status %d in series %d", c.CallbackType, i+1, a, status, want[i][0], want[i][1])
		}
	}
}

// The delivery log shows a callback delivered at once, one delivered after
// retries and one exhausted; redelivering the delivered and the exhausted
// ones sends them again, and their history shows the manual series.
func TestDeliveryLogAndRedelivery(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		var healed atomic.Bool
		rcv := newReceiver(t, func(d delivery, n int) int {
			switch {
			case d.body.Data.CallbackType == tunehook.CallbackText && n <= 2,
				d.body.Data.CallbackType == tunehook.CallbackComplete && !healed.Load():
				return http.StatusInternalServerError
			}
			return http.StatusOK
		})
		srv := startServer(t, t.TempDir(), st.with("TUNEHOOK_CALLBACK_RETRY_DELAYS=200ms,300ms,400ms", "TUNEHOOK_WEBHOOK_HMAC_KEY=log-test-secret")...)
		taskID := srv.submit(generateBody(rcv.URL + "/cb"))

		var log map[tunehook.CallbackType]tunehook.CallbackRecord
		waitUntil(t, 30*time.Second, "the complete callback is exhausted", func() bool {
			log = srv.deliveryLog(taskID)
			return log[tunehook.CallbackComplete].State == tunehook.DeliveryExhausted
		})
		waitUntil(t, 10*time.Second, "the text callback is delivered", func() bool {
			log = srv.deliveryLog(taskID)
			return log[tunehook.CallbackText].State == tunehook.DeliveryDelivered
		})
		checkHistory(t, log[tunehook.CallbackText], tunehook.DeliveryDelivered, 3, [][2]int{{500, 1}, {500, 1}, {200, 1}})
		checkHistory(t, log[tunehook.CallbackFirst], tunehook.DeliveryDelivered, 1, [][2]int{{200, 1}})
		checkHistory(t, log[tunehook.CallbackComplete], tunehook.DeliveryExhausted, 4, [][2]int{{500, 1}, {500, 1}, {500, 1}, {500, 1}})
		firstRaw := rcv.deliveries()[slices.IndexFunc(rcv.deliveries(), func(d delivery) bool {
			return d.body.Data.CallbackType == tunehook.CallbackFirst
		})]

		healed.Store(true)
		for _, ct := range []tunehook.CallbackType{tunehook.CallbackFirst, tunehook.CallbackComplete} {
			var c tunehook.CallbackRecord
			env := srv.api("POST", "/api/v1/callbacks/"+log[ct].ID+"/redeliver", testKey, nil, &c)
			if env.Code != 200 || c.ID != log[ct].ID || c.State != tunehook.DeliveryPending || c.Attempts != 0 || c.NextAttemptTime == nil {
				t.Errorf("redeliver %s: got code %d %+v, want it pending with no attempt in the new series", ct, env.Code, c)
			}
		}
		waitUntil(t, 10*time.Second, "both redeliveries arrive", func() bool {
			return rcv.count(tunehook.CallbackFirst) == 2 && rcv.count(tunehook.CallbackComplete) == 5
		})
		waitUntil(t, 10*time.Second, "both redeliveries are recorded", func() bool {
			log = srv.deliveryLog(taskID)
			return log[tunehook.CallbackFirst].State == tunehook.DeliveryDelivered && log[tunehook.CallbackComplete].State == tunehook.DeliveryDelivered
		})
		checkHistory(t, log[tunehook.CallbackFirst], tunehook.DeliveryDelivered, 1, [][2]int{{200, 1}, {200, 2}})
		checkHistory(t, log[tunehook.CallbackComplete], tunehook.DeliveryDelivered, 1,
			[][2]int{{500, 1}, {500, 1}, {500, 1}, {500, 1}, {200, 2}})

		// The redelivery is the same callback: same body, same webhook-id.
		var again delivery
		for _, d := range rcv.deliveries() {
			if d.body.Data.CallbackType == tunehook.CallbackFirst {
				again = d
			}
		}
		if !bytes.Equal(again.raw, firstRaw.raw) {
			t.Errorf("redelivered first callback: got body %s, want %s", again.raw, firstRaw.raw)
		}
		if got, want := again.header.Get(tunehook.HeaderWebhookID), firstRaw.header.Get(tunehook.HeaderWebhookID); got != want || got != log[tunehook.CallbackFirst].ID {
			t.Errorf("redelivered first callback: got webhook-id %q, want %q, the callback's ID", got, want)
		}
	})
}
