package main

import (
	"bytes"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-audio/wav"

	"github.com/tunehook/tunehook"
)

// A receiver that always fails gets every stage's callback on the scaled
// schedule (1s, 2s, 3s, each plus at most 10% jitter), then no more: 4
// attempts per stage. Delivery failure does not change the task's status.
func TestRetryScheduleAndExhaustion(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, func(delivery, int) int { return http.StatusInternalServerError })
		srv := startServer(t, t.TempDir(), st.env...)
		taskID := srv.submit(generateBody(rcv.URL))

		waitUntil(t, 30*time.Second, "4 attempts of every stage", func() bool {
			return rcv.count("text") == 4 && rcv.count("first") == 4 && rcv.count("complete") == 4
		})
		time.Sleep(3*time.Second + 500*time.Millisecond) // longer than the last delay would be, with jitter
		delays := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, ct := range []tunehook.CallbackType{"text", "first", "complete"} {
			got := rcv.byType(ct)
			if len(got) != 4 {
				t.Errorf("%s: %d attempts, want exactly 4 (1 + 3 retries)", ct, len(got))
				continue
			}
			for i, d := range delays {
				gap := got[i+1].at.Sub(got[i].at)
				// Lower bound: the delay itself (jitter only adds). Upper:
				// 10% jitter plus generous room for a loaded CI machine.
				if gap < d-50*time.Millisecond || gap > d+d/10+700*time.Millisecond {
					t.Errorf("%s: retry %d came %v after the previous attempt, want %v plus at most 10%%", ct, i+1, gap, d)
				}
			}
			for i := 1; i < 4; i++ {
				if !slices.Equal(got[i].raw, got[0].raw) {
					t.Errorf("%s: retry %d sent a different body", ct, i)
				}
			}
		}
		if st := srv.recordInfo(taskID).Status; st != tunehook.StatusSuccess {
			t.Errorf("status after exhausted callbacks: %s, want SUCCESS", st)
		}
	})
}

// SIGKILL between stages: after a restart the task resumes, completes, and
// every stage's callback arrives once, with the same tracks.
func TestKillDuringGeneration(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, nil)
		dir := t.TempDir()
		env := "TUNEHOOK_SYNTH_DELAYS=100ms,2s,2s"
		srv := startServer(t, dir, st.with(env)...)
		taskID := srv.submit(generateBody(rcv.URL))
		waitUntil(t, 20*time.Second, "the text callback arrives", func() bool { return rcv.count("text") == 1 })
		time.Sleep(300 * time.Millisecond) // let the attempt be recorded: this test is about the task, not the attempt
		srv.kill()

		restarted := time.Now()
		srv = startServer(t, dir, st.with(env)...)
		waitUntil(t, 30*time.Second, "the complete callback arrives", func() bool { return rcv.count("complete") >= 1 })
		if took := time.Since(restarted); took > 30*time.Second {
			t.Errorf("task completed %v after the restart, want within 30s", took)
		}
		time.Sleep(time.Second)
		checkDeliveredOnce(t, rcv, taskID)
		if st := srv.recordInfo(taskID).Status; st != tunehook.StatusSuccess {
			t.Errorf("status %s, want SUCCESS", st)
		}
	})
}

// SIGKILL again and again while tracks render (long tracks, no pauses):
// every task still succeeds, each stage is generated once, every callback
// arrives, and the media are whole.
func TestKillLoopDuringRendering(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, nil)
		dir := t.TempDir()
		// One address for every restart: the media URLs in the callbacks must
		// stay valid.
		env := []string{"TUNEHOOK_SYNTH_DELAYS=0s,0s,0s", "TUNEHOOK_SYNTH_DURATION=4m", "TUNEHOOK_ADDR=" + freeAddr(t)}
		srv := startServer(t, dir, st.with(env...)...)
		var ids []string
		for range 3 {
			ids = append(ids, srv.submit(generateBody(rcv.URL)))
		}
		for i := range 6 {
			time.Sleep(time.Duration(150+90*i) * time.Millisecond)
			srv.kill()
			srv = startServer(t, dir, st.with(env...)...)
		}
		for _, id := range ids {
			waitUntil(t, 60*time.Second, "task "+id+" succeeds", func() bool { return srv.recordInfo(id).Status == tunehook.StatusSuccess })
		}
		waitUntil(t, 20*time.Second, "every complete callback arrives", func() bool { return rcv.count("complete") >= len(ids) })
		time.Sleep(time.Second)
		// The files behind the URLs are whole, whichever kill hit their render.
		checked := map[string]bool{}
		for _, d := range rcv.deliveries() {
			for _, tr := range d.body.Data.Data {
				if !checked[tr.ID] {
					checked[tr.ID] = true
					checkWAVLength(t, mustDownload(t, tr.AudioURL), tr.Duration)
				}
			}
		}
		for _, id := range ids {
			srv.checkStagesOnce(id, []tunehook.CallbackType{"text", "first", "complete"})
			checkDeliveredAtLeastOnce(t, rcv, id)
		}
		srv.stop(20 * time.Second)
	})
}

// SIGKILL while a callback waits for its retry: the retry is neither lost
// nor sent early; it comes on schedule from the restarted server.
func TestKillDuringRetryWait(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		rcv := newReceiver(t, func(d delivery, n int) int {
			if d.body.Data.CallbackType == "text" && n == 1 {
				return http.StatusServiceUnavailable
			}
			return http.StatusOK
		})
		dir := t.TempDir()
		env := []string{"TUNEHOOK_CALLBACK_RETRY_DELAYS=3s,3s,3s", "TUNEHOOK_SYNTH_DELAYS=100ms,5s,5s"}
		srv := startServer(t, dir, st.with(env...)...)
		taskID := srv.submit(generateBody(rcv.URL))
		waitUntil(t, 20*time.Second, "the first text attempt", func() bool { return rcv.count("text") == 1 })
		time.Sleep(300 * time.Millisecond) // the failure is recorded; the retry is 3s ahead
		srv.kill()
		srv = startServer(t, dir, st.with(env...)...)

		waitUntil(t, 20*time.Second, "the text retry", func() bool { return rcv.count("text") == 2 })
		got := rcv.deliveries()
		gap := got[1].at.Sub(got[0].at)
		if got[1].body.Data.CallbackType != "text" || gap < 3*time.Second-50*time.Millisecond || gap > 3*time.Second+time.Second {
			t.Errorf("retry came %v after the first attempt, want 3s plus at most 10%%", gap)
		}
		waitUntil(t, 30*time.Second, "the task completes", func() bool { return rcv.count("complete") >= 1 })
		checkDeliveredAtLeastOnce(t, rcv, taskID)
	})
}

// A full stop with callbacks scheduled far ahead (scaled: 4s), and a start
// after they fell due: they are delivered at once, none lost.
func TestRestartAfterScheduledCallbacksFellDue(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		var up atomic.Bool
		rcv := newReceiver(t, func(delivery, int) int {
			if up.Load() {
				return http.StatusOK
			}
			return http.StatusBadGateway
		})
		dir := t.TempDir()
		env := []string{"TUNEHOOK_CALLBACK_RETRY_DELAYS=4s,4s,4s", "TUNEHOOK_SYNTH_DELAYS=0s,0s,0s"}
		srv := startServer(t, dir, st.with(env...)...)
		taskID := srv.submit(generateBody(rcv.URL))
		waitUntil(t, 20*time.Second, "a failed attempt of each stage", func() bool {
			return rcv.count("text") == 1 && rcv.count("first") == 1 && rcv.count("complete") == 1
		})
		srv.stop(10 * time.Second)
		up.Store(true)
		time.Sleep(4500 * time.Millisecond) // every retry falls due while the server is down

		restarted := time.Now()
		startServer(t, dir, st.with(env...)...)
		waitUntil(t, 10*time.Second, "every retry", func() bool {
			return rcv.count("text") == 2 && rcv.count("first") == 2 && rcv.count("complete") == 2
		})
		if took := time.Since(restarted); took > 3*time.Second {
			t.Errorf("overdue retries took %v after the restart, want them at once", took)
		}
		checkDeliveredAtLeastOnce(t, rcv, taskID)
	})
}

// SIGTERM with a callback in flight: the attempt is allowed to finish and is
// recorded, the process exits within the callback timeout plus a few
// seconds, and a restart does not send the delivered callback again.
func TestGracefulStopFinishesInFlightCallback(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		inFlight := make(chan struct{}, 1)
		rcv := newReceiver(t, func(d delivery, n int) int {
			if d.body.Data.CallbackType == "text" {
				inFlight <- struct{}{}
				time.Sleep(1500 * time.Millisecond) // under the 2s timeout
			}
			return http.StatusOK
		})
		dir := t.TempDir()
		env := "TUNEHOOK_SYNTH_DELAYS=0s,3s,3s"
		srv := startServer(t, dir, st.with(env)...)
		taskID := srv.submit(generateBody(rcv.URL))
		select {
		case <-inFlight:
		case <-time.After(20 * time.Second):
			t.Fatal("the text callback never started")
		}
		if took := srv.stop(2*time.Second + 5*time.Second); took < time.Second {
			t.Errorf("exited %v after SIGTERM: it did not wait for the callback in flight", took)
		}
		srv = startServer(t, dir, st.with(env)...)
		waitUntil(t, 30*time.Second, "the task completes", func() bool { return rcv.count("complete") >= 1 })
		time.Sleep(time.Second)
		checkDeliveredOnce(t, rcv, taskID)
	})
}

// checkDeliveredAtLeastOnce checks that every stage of a successful task
// called back, and that repeated deliveries of a stage carry the same body.
func checkDeliveredAtLeastOnce(t *testing.T, rcv *receiver, taskID string) map[tunehook.CallbackType][]delivery {
	t.Helper()
	byType := map[tunehook.CallbackType][]delivery{}
	for _, d := range rcv.deliveries() {
		if d.body.Data.TaskID == taskID {
			byType[d.body.Data.CallbackType] = append(byType[d.body.Data.CallbackType], d)
		}
	}
	for _, ct := range []tunehook.CallbackType{"text", "first", "complete"} {
		ds := byType[ct]
		if len(ds) == 0 {
			t.Errorf("task %s: no %s callback", taskID, ct)
			continue
		}
		for _, d := range ds[1:] {
			if !slices.Equal(d.raw, ds[0].raw) {
				t.Errorf("task %s: two %s callbacks with different bodies:\n%s\n%s", taskID, ct, ds[0].raw, d.raw)
			}
		}
	}
	if f, c := byType["first"], byType["complete"]; len(f) > 0 && len(c) > 0 && f[0].body.Data.Data[0] != c[0].body.Data.Data[0] {
		t.Errorf("task %s: first's track differs from complete's first track", taskID)
	}
	return byType
}

// checkDeliveredOnce is checkDeliveredAtLeastOnce for a healthy receiver:
// no stage may arrive twice.
func checkDeliveredOnce(t *testing.T, rcv *receiver, taskID string) {
	t.Helper()
	for ct, ds := range checkDeliveredAtLeastOnce(t, rcv, taskID) {
		if len(ds) != 1 {
			t.Errorf("task %s: %d %s callbacks, want exactly 1", taskID, len(ds), ct)
		}
	}
}

func countLogLines(logs string, parts ...string) int {
	n := 0
	for line := range strings.SplitSeq(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, for a server that must keep its address across restarts.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// checkWAVLength checks, from the header, that a WAV file lasts seconds and
// holds every byte its header announces. (Decoding four-minute tracks in
// full would cost far more than this test needs.)
func checkWAVLength(t *testing.T, b []byte, seconds float64) {
	t.Helper()
	dec := wav.NewDecoder(bytes.NewReader(b))
	if err := dec.FwdToPCM(); err != nil {
		t.Fatalf("read WAV header: %v", err)
	}
	frameBytes := int64(dec.NumChans) * int64(dec.BitDepth) / 8
	got := float64(dec.PCMLen()/frameBytes) / float64(dec.SampleRate)
	if math.Abs(got-seconds) > 0.5/float64(dec.SampleRate) {
		t.Errorf("%vs of audio, duration says %v", got, seconds)
	}
	if header := int64(len(b)) - dec.PCMLen(); header < 44 {
		t.Errorf("file of %d bytes is shorter than its %d bytes of PCM and a header", len(b), dec.PCMLen())
	}
}

func mustDownload(t *testing.T, url string) []byte {
	t.Helper()
	b, _ := download(t, url, "")
	return b
}
