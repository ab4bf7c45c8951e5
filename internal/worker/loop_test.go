package worker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/task"
)

// awayStore is a Store whose first claims fail, as when the database is
// away for a moment.
type awayStore struct {
	task.Store
	failures atomic.Int32 // claims still to fail
}

func (s *awayStore) away() error {
	if s.failures.Add(-1) >= 0 {
		return errors.New("database is away")
	}
	return nil
}

func (s *awayStore) ClaimTasks(ctx context.Context, owner string, limit int, lease time.Duration) ([]*task.Task, error) {
	if err := s.away(); err != nil {
		return nil, err
	}
	return s.Store.ClaimTasks(ctx, owner, limit, lease)
}

func (s *awayStore) ClaimCallbacks(ctx context.Context, owner string, lane task.Lane, limit int, lease time.Duration) ([]*task.Callback, error) {
	if err := s.away(); err != nil {
		return nil, err
	}
	return s.Store.ClaimCallbacks(ctx, owner, lane, limit, lease)
}

// TestStoreAway checks that the Runner and the Dispatcher outlive failing
// claims and carry on once the store answers again.
func TestStoreAway(t *testing.T) {
	t.Parallel()
	const failures = 2
	tests := []struct {
		name string
		run  func(t *testing.T, st *awayStore) // sets the failures once set up
	}{
		{"runner", func(t *testing.T, st *awayStore) {
			tk := createTask(t, st, newRequest("rain").Param(), time.Now())
			st.failures.Store(failures)
			start(t, newRunner(t, st, &testEngine{}, nil).Run)
			waitFor(t, "the task's success", func() bool { return taskOf(t, st, tk.ID).Status == task.StatusSuccess })
		}},
		{"dispatcher", func(t *testing.T, st *awayStore) {
			rc := newReceiver(t, answer(200, ""))
			cb := seedCallbacks(t, st, rc.URL+"/cb")[0]
			st.failures.Store(failures)
			start(t, newDispatcher(t, st, nil).Run)
			waitState(t, st, cb, task.DeliveryDelivered)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := &awayStore{Store: openStore(t, nil)}
			tt.run(t, st)
			if left := st.failures.Load(); left >= 0 {
				t.Errorf("%d claims failed, want %d", failures-left, failures)
			}
		})
	}
}
