package httpapi

import (
	"net/http"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// submitCode submits validBody with key and returns the answer's code and
// its Retry-After header.
func (s *testServer) submitCode(t *testing.T, key string) (int, string) {
	t.Helper()
	a := s.do(t, http.MethodPost, "/api/v1/generate", key, []byte(validBody))
	e := decodeEnvelope(t, a, http.StatusOK)
	if e.Code == task.CodeRateLimited && e.Msg != msgRateLimited {
		t.Errorf("got msg %q with code 430, want %q", e.Msg, msgRateLimited)
	}
	return e.Code, a.header.Get("Retry-After")
}

// A key gets Requests submits in any window of Per; the next is refused
// with code 430 until the oldest leaves the window, and Retry-After says
// when, in whole seconds rounded up. Refused submits do not count; polling
// and other keys do not count either.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *Config) { c.RateLimit = RateLimit{Requests: 3, Per: 10 * time.Second} })
	type want struct {
		code       int
		retryAfter string
	}
	check := func(step string, key string, w want) {
		t.Helper()
		if code, ra := s.submitCode(t, key); code != w.code || ra != w.retryAfter {
			t.Errorf("%s: got code %d Retry-After %q, want %d %q", step, code, ra, w.code, w.retryAfter)
		}
	}
	ok := want{task.CodeOK, ""}
	id := s.createTask(t, testKey, validBody) // the first of three at t0
	for range 5 {
		s.recordInfo(t, testKey, id)
	}
	s.clock.Advance(time.Second)
	check("second, 1s later", testKey, ok)
	s.clock.Advance(1500 * time.Millisecond)
	check("third, 2.5s after the first", testKey, ok)
	check("fourth", testKey, want{task.CodeRateLimited, "8"}) // 7.5s, rounded up
	check("another key", otherKey, ok)
	s.clock.Advance(7 * time.Second)
	check("fifth, 9.5s after the first", testKey, want{task.CodeRateLimited, "1"})
	s.clock.Advance(500 * time.Millisecond)
	check("sixth, when the first leaves the window", testKey, ok)
	check("seventh", testKey, want{task.CodeRateLimited, "1"}) // the second leaves at 11s
	s.clock.Advance(time.Second)
	check("eighth, when the second leaves", testKey, ok)
	check("ninth", testKey, want{task.CodeRateLimited, "2"}) // the third leaves at 12.5s
}

// Without a limit, a key submits as often as it likes.
func TestNoRateLimit(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for i := range 50 {
		if code, _ := s.submitCode(t, testKey); code != task.CodeOK {
			t.Fatalf("submit %d: got code %d, want 200", i+1, code)
		}
	}
}
