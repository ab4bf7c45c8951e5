package main

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
)

// kills is how many times TestKillLoopUnderLoad SIGKILLs the server; set
// TUNEHOOK_LONG_TESTS=1 for the long variant.
func kills() int {
	if os.Getenv("TUNEHOOK_LONG_TESTS") != "" {
		return 50
	}
	return 10
}

// Under a steady stream of submissions, SIGKILL the server again and again
// at random moments and start it again: every accepted task completes,
// every stage's callback arrives, and the only duplicates are attempts
// that were in flight at a kill.
func TestKillLoopUnderLoad(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		// Answering takes a moment, so attempts are in flight at the kills.
		rcv := newReceiver(t, func(delivery, int) int {
			time.Sleep(10 * time.Millisecond)
			return http.StatusOK
		})
		dir := t.TempDir()
		env := st.with("TUNEHOOK_SYNTH_DELAYS=0s,200ms,200ms", "TUNEHOOK_SYNTH_DURATION=2s", "TUNEHOOK_ADDR="+freeAddr(t))
		srv := startServer(t, dir, env...)

		var (
			mu  sync.Mutex
			ids []string
		)
		stop := make(chan struct{})
		var load sync.WaitGroup
		load.Go(func() {
			// About 10 submissions a second; while the server is down
			// they fail and are not counted, as a client would retry.
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if id, ok := trySubmit(t, srv.URL, generateBody(rcv.URL)); ok {
					mu.Lock()
					ids = append(ids, id)
					mu.Unlock()
				}
			}
		})

		var killedAt []time.Time
		for range kills() {
			time.Sleep(time.Duration(300+rand.IntN(900)) * time.Millisecond)
			killedAt = append(killedAt, time.Now())
			srv.kill()
			srv = startServer(t, dir, env...)
		}
		close(stop)
		load.Wait()
		mu.Lock()
		accepted := append([]string(nil), ids...)
		mu.Unlock()
		if len(accepted) < 20 {
			t.Fatalf("only %d tasks accepted under load", len(accepted))
		}

		stages := []tunehook.CallbackType{"text", "first", "complete"}
		waitUntil(t, taskLease+90*time.Second, "every accepted task calls back every stage", func() bool {
			return deliveredAll(rcv, accepted, stages)
		})
		for _, id := range accepted {
			if s := srv.recordInfo(id).Status; s != tunehook.StatusSuccess {
				t.Errorf("task %s: %s, want SUCCESS", id, s)
			}
			checkDeliveredAtLeastOnce(t, rcv, id)
		}
		for _, id := range accepted {
			srv.checkStagesOnce(id, stages)
		}
		srv.stop(20 * time.Second)

		got := rcv.deliveries()
		duplicates, inFlight := duplicateCount(got), inFlightAt(got, killedAt)
		t.Logf("%d kills, %d tasks, %d callbacks, %d duplicates, %d attempts in flight at a kill",
			len(killedAt), len(accepted), len(got), duplicates, inFlight)
		if duplicates > inFlight {
			t.Errorf("%d duplicates, more than the %d attempts in flight at the kills", duplicates, inFlight)
		}
	})
}

// trySubmit submits a task once, without failing the test unless the answer
// breaks the OpenAPI document: the server may be down. It reports whether
// the task was accepted.
func trySubmit(t *testing.T, base string, body map[string]any) (string, bool) {
	env, _, err := call("POST", base+"/api/v1/generate", testKey, body)
	if errors.Is(err, errContract) {
		t.Error(err)
	}
	if err != nil || env.Code != 200 {
		return "", false
	}
	var created tunehook.TaskCreated
	if err := json.Unmarshal(env.Data, &created); err != nil || created.TaskID == "" {
		return "", false
	}
	return created.TaskID, true
}
