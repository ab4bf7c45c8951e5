package worker_test

import (
	"bufio"
	"bytes"
	"cmp"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

// faultEnv is what a misbehaving receiver reports to its test and is told
// by it.
type faultEnv struct {
	// reached gets a signal when an attempt has reached the point where the
	// receiver misbehaves.
	reached chan struct{}
	// hungUp gets a signal when the dispatcher dropped the connection while
	// the receiver was still answering.
	hungUp chan struct{}
	// hold keeps receivers that misbehave at one moment (a reset, an
	// answer) from doing so until it is closed.
	hold <-chan struct{}
	// quit is closed at the end of the test: stop.
	quit <-chan struct{}
}

func newFaultEnv(hold, quit <-chan struct{}) *faultEnv {
	return &faultEnv{reached: make(chan struct{}, 16), hungUp: make(chan struct{}, 16), hold: hold, quit: quit}
}

// signal sends on ch without blocking: a test reads the first signals
// only.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// wait waits for a signal on ch, failing the test when none comes within
// waitLimit.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitHold waits until env lets the receiver misbehave; false means the
// test is over.
func (env *faultEnv) waitHold() bool {
	select {
	case <-env.hold:
		return true
	case <-env.quit:
		return false
	}
}

// trickle writes one byte of s at a time, s over and over, every 10ms,
// until a write fails (the dispatcher hung up, signalled on env.hungUp) or
// the test is over. It never stops by itself: only the dispatcher's
// timeout can end the attempt.
func (env *faultEnv) trickle(write func([]byte) error, s string) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if err := write([]byte{s[i%len(s)]}); err != nil {
			signal(env.hungUp)
			return
		}
		select {
		case <-tick.C:
		case <-env.quit:
			return
		}
	}
}

// rawReceiver listens on loopback and hands every connection to serve, in
// a goroutine of its own; it returns the callback URL. The listener closes
// at the end of the test, once every serve has returned.
func rawReceiver(t *testing.T, serve func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				serve(conn.(*net.TCPConn))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return "http://" + ln.Addr().String() + "/cb"
}

// readRequest reads the request on conn, body included.
func readRequest(t *testing.T, conn net.Conn) bool {
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		t.Errorf("receiver: read request: %v", err)
		return false
	}
	_, err = io.Copy(io.Discard, req.Body)
	return err == nil
}

// flushWriter writes to w and flushes at once.
func flushWriter(w http.ResponseWriter) func([]byte) error {
	rc := http.NewResponseController(w)
	return func(b []byte) error {
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
}

// receiverFault is a receiver that misbehaves in one way, and what the
// dispatcher must record of an attempt to it.
type receiverFault struct {
	name string
	// start starts the receiver and returns its callback URL.
	start func(t *testing.T, env *faultEnv) string
	// hangs tells that an attempt stays in flight, signalled on reached,
	// until the receiver is held or times out; the others end at once.
	hangs bool
	// timeout is the dispatcher's, when the attempt runs into it; 0: 5s.
	timeout time.Duration
	// hangsUp tells that the receiver still answers when the attempt
	// ends, and must see the dispatcher drop the connection.
	hangsUp bool

	wantStatus   int
	wantError    string
	wantResponse string // a prefix of the answer kept
	wantState    task.DeliveryState
	// wantRetryAfter is the least delay before the next attempt, from the
	// start of the failed one, longer than the retry delay of a minute;
	// 0: not checked.
	wantRetryAfter time.Duration
}

// endlessChunk is what the endless receiver sends, over and over.
var endlessChunk = bytes.Repeat([]byte("0123456789abcdef"), 2048) // 32 KiB

// receiverFaults are the ways a receiver can misbehave.
var receiverFaults = []receiverFault{
	{
		name: "connection refused",
		// Nothing listens on port 1, and no test server can get it.
		start:     func(*testing.T, *faultEnv) string { return "http://127.0.0.1:1/cb" },
		wantError: "connection refused", wantState: task.DeliveryPending,
	},
	{
		name: "reset mid-request",
		start: func(t *testing.T, env *faultEnv) string {
			return rawReceiver(t, func(conn *net.TCPConn) {
				// Part of the request, then a reset: SO_LINGER 0 makes
				// Close send RST instead of FIN.
				if _, err := io.ReadFull(conn, make([]byte, 20)); err != nil {
					t.Errorf("receiver: read: %v", err)
					return
				}
				signal(env.reached)
				env.waitHold()
				conn.SetLinger(0)
			})
		},
		hangs:     true,
		wantError: "connection reset by peer", wantState: task.DeliveryPending,
	},
	{
		name: "slow headers",
		start: func(t *testing.T, env *faultEnv) string {
			return rawReceiver(t, func(conn *net.TCPConn) {
				if !readRequest(t, conn) {
					return
				}
				signal(env.reached)
				// A slowloris answer: header bytes that never end.
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nX-Slow: ")
				env.trickle(func(b []byte) error { _, err := conn.Write(b); return err }, "abcdefgh")
			})
		},
		hangs: true, timeout: 300 * time.Millisecond, hangsUp: true,
		wantError: "timeout after 300ms", wantState: task.DeliveryPending,
	},
	{
		name: "slow body after 200",
		start: func(t *testing.T, env *faultEnv) string {
			return newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				write := flushWriter(w)
				write([]byte("ok"))
				signal(env.reached)
				env.trickle(write, "...")
			}).URL + "/cb"
		},
		// The status line decides: the receiver took the callback, and an
		// answer cut at the timeout does not undo that.
		hangs: true, timeout: 2 * time.Second, hangsUp: true,
		wantStatus: 200, wantResponse: "ok.", wantState: task.DeliveryDelivered,
	},
	{
		name: "slow body after 500",
		start: func(t *testing.T, env *faultEnv) string {
			return newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(500)
				write := flushWriter(w)
				write([]byte("oops"))
				signal(env.reached)
				env.trickle(write, "...")
			}).URL + "/cb"
		},
		hangs: true, timeout: 2 * time.Second, hangsUp: true,
		wantStatus: 500, wantError: "HTTP 500", wantResponse: "oops.", wantState: task.DeliveryPending,
	},
	{
		name: "endless body",
		start: func(t *testing.T, env *faultEnv) string {
			return newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				write := flushWriter(w)
				for {
					if err := write(endlessChunk); err != nil {
						signal(env.hungUp)
						return
					}
					select {
					case <-env.quit:
						return
					default:
					}
				}
			}).URL + "/cb"
		},
		// 64 KiB of it are read, the first KiB kept, then the connection
		// is dropped; the 200 delivered the callback.
		hangsUp:    true,
		wantStatus: 200, wantResponse: string(endlessChunk[:1024]), wantState: task.DeliveryDelivered,
	},
	{
		name: "untrusted certificate",
		start: func(t *testing.T, _ *faultEnv) string {
			return startReceiver(t, answer(200, ""), true).URL + "/cb"
		},
		wantError: "TLS error: tls: failed to verify certificate: x509: certificate signed by unknown authority",
		wantState: task.DeliveryPending,
	},
	{
		name: "410 Gone",
		start: func(t *testing.T, env *faultEnv) string {
			return newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				signal(env.reached)
				env.waitHold()
				w.WriteHeader(http.StatusGone)
				io.WriteString(w, "no such hook")
			}).URL + "/cb"
		},
		hangs:      true,
		wantStatus: 410, wantError: "HTTP 410", wantResponse: "no such hook", wantState: task.DeliveryPending,
	},
	{
		name: "429 with Retry-After",
		start: func(t *testing.T, env *faultEnv) string {
			return newReceiver(t, func(w http.ResponseWriter, _ *http.Request) {
				signal(env.reached)
				env.waitHold()
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(http.StatusTooManyRequests)
			}).URL + "/cb"
		},
		hangs: true,
		// Longer than the retry delay: the pause asked for wins.
		wantStatus: 429, wantError: "HTTP 429 (Retry-After 120s)", wantState: task.DeliveryPending,
		wantRetryAfter: 2 * time.Minute,
	},
}

// TestDispatcherReceiverFaults sends a callback to each misbehaving
// receiver: the attempt is recorded with its error class, as a failure
// unless a 2xx status line came first, and an attempt that runs into the
// timeout ends there, the connection dropped, although the receiver would
// go on forever.
func TestDispatcherReceiverFaults(t *testing.T) {
	t.Parallel()
	for _, f := range receiverFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t, nil)
			hold, quit := make(chan struct{}), make(chan struct{})
			close(hold)
			env := newFaultEnv(hold, quit)
			cb := seedCallbacks(t, st, f.start(t, env))[0]
			timeout := cmp.Or(f.timeout, 5*time.Second)
			start(t, newDispatcher(t, st, func(c *worker.DispatcherConfig) {
				c.Timeout = timeout
				// Far longer than the test: one attempt is made.
				c.RetryDelays = []time.Duration{time.Minute}
				c.Jitter = func() float64 { return 0 }
			}).Run)
			// Registered after start, so that it runs before the
			// dispatcher stops.
			t.Cleanup(func() { close(quit) })

			var got *task.Callback
			waitFor(t, "the attempt recorded", func() bool {
				got = callbackOf(t, st, cb.TaskID, cb.ID)
				return got.Attempts == 1
			})
			if got.State != f.wantState {
				t.Errorf("after the attempt: %s, want %s", got.State, f.wantState)
			}
			a := got.History[0]
			if a.StatusCode != f.wantStatus || a.Error != f.wantError || !strings.HasPrefix(string(a.Response), f.wantResponse) {
				t.Errorf("attempt: %d %q, answer %.40q; want %d %q, answer starting %.40q",
					a.StatusCode, a.Error, a.Response, f.wantStatus, f.wantError, f.wantResponse)
			}
			if f.timeout != 0 && a.Duration < f.timeout {
				t.Errorf("attempt took %v, want at least the timeout, %v", a.Duration, f.timeout)
			}
			if f.hangsUp {
				wait(t, env.hungUp, "the dispatcher to drop the connection")
			}
			if f.wantRetryAfter != 0 {
				if next := a.StartedAt.Add(f.wantRetryAfter - time.Millisecond); got.NextAttemptAt.Before(next) {
					t.Errorf("next attempt at %v, %v after the attempt started; want at least %v",
						got.NextAttemptAt, got.NextAttemptAt.Sub(a.StartedAt), f.wantRetryAfter)
				}
			}
		})
	}
}

// TestDispatcherFaultIsolation sends a callback to each misbehaving
// receiver alongside a healthy receiver's callbacks: the healthy ones are
// all delivered while an attempt that hangs is still in flight, and one
// that failed at once is recorded.
func TestDispatcherFaultIsolation(t *testing.T) {
	t.Parallel()
	const healthyN = 20
	for _, f := range receiverFaults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t, nil)
			quit := make(chan struct{})
			env := newFaultEnv(quit, quit)
			faulty := seedCallbacks(t, st, f.start(t, env))[0]
			healthy := newReceiver(t, answer(200, ""))
			start(t, newDispatcher(t, st, func(c *worker.DispatcherConfig) {
				// Far longer than the test: a hanging attempt ends when
				// the receiver is let go at the end.
				c.Timeout = waitLimit
				c.RetryDelays = []time.Duration{time.Hour}
			}).Run)
			t.Cleanup(func() { close(quit) })

			if f.hangs {
				wait(t, env.reached, "the faulty attempt in flight")
			}
			for _, cb := range seedMany(t, st, healthyN, healthy.URL+"/cb") {
				waitState(t, st, cb, task.DeliveryDelivered)
			}
			if !f.hangs {
				waitFor(t, "the faulty attempt recorded", func() bool {
					return callbackOf(t, st, faulty.TaskID, faulty.ID).Attempts == 1
				})
				return
			}
			// An attempt is recorded once it ends.
			if got := callbackOf(t, st, faulty.TaskID, faulty.ID); got.Attempts != 0 {
				t.Errorf("with every healthy callback delivered, the faulty one has %d attempts recorded, want 0: still in flight", got.Attempts)
			}
		})
	}
}
