package worker

import (
	"testing"
	"time"
)

// TestHostDeferral checks how long a callback whose host has no room is
// deferred: an answering host's callback comes back when the attempts in
// flight and the callbacks queued should be done, within deferMin and
// deferMax; a host being probed has room once its probe times out.
func TestHostDeferral(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	l := &hostLimiter{perHost: 64, hold: time.Second, timeout: 15 * time.Second}
	tests := []struct {
		name   string
		h      hostState
		want   time.Duration
		reason string
	}{
		{"fast host, long queue", hostState{answering: true, inFlight: 64, queue: make([]chan struct{}, 3136), avg: 20 * time.Millisecond},
			time.Second, "3,200 callbacks at 64 × 20 ms"},
		{"fast host, short queue", hostState{answering: true, inFlight: 64, queue: make([]chan struct{}, 64), avg: 20 * time.Millisecond},
			deferMin, "40 ms of work, raised to the shortest deferral"},
		{"slow host", hostState{answering: true, inFlight: 64, queue: make([]chan struct{}, 6), avg: 10 * time.Second},
			deferMax, "11 s of work, cut to the longest deferral"},
		{"probed host", hostState{inFlight: 1, lastStart: now.Add(-5 * time.Second)},
			10 * time.Second, "the probe times out in 10 s"},
		{"probed host, timed out", hostState{inFlight: 1, lastStart: now.Add(-20 * time.Second)},
			deferMin, "the probe is overdue"},
	}
	for _, tt := range tests {
		if got := l.deferral(&tt.h, now); got != tt.want {
			t.Errorf("%s: deferred for %v, want %v (%s)", tt.name, got, tt.want, tt.reason)
		}
	}
}
