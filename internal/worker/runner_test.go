package worker_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/storetest"
	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

const testPublicURL = "http://tunehook.test"

// newRunner returns a Runner on st with testEngine e and quick polling;
// edit changes its config first.
func newRunner(t *testing.T, st task.Store, e worker.Engine, edit func(*worker.RunnerConfig)) *worker.Runner {
	t.Helper()
	cfg := worker.RunnerConfig{
		Store:        st,
		Engine:       e,
		Links:        payload.Links{PublicURL: testPublicURL},
		Owner:        "runner-1",
		PollInterval: 5 * time.Millisecond,
		Logger:       testLogger(t),
	}
	if edit != nil {
		edit(&cfg)
	}
	r, err := worker.NewRunner(cfg)
	if err != nil {
		t.Fatalf("new runner: %v", err)
	}
	return r
}

// decodeJSON decodes b into a generic value, so that bodies are compared
// field by field with their wire names.
func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// wantTrack is a track of testEngine as a callback carries it.
func wantTrack(taskID string, index int, created string, duration float64) map[string]any {
	id := task.TrackID(taskID, index)
	return map[string]any{
		"id":               id,
		"audio_url":        testPublicURL + "/media/" + taskID + "/" + id + ".wav",
		"stream_audio_url": testPublicURL + "/stream/" + taskID + "/" + id,
		"image_url":        testPublicURL + "/media/" + taskID + "/" + id + ".jpeg",
		"prompt":           testText.Lyrics,
		"model_name":       "chirp-crow",
		"title":            testText.Title,
		"tags":             testText.Tags,
		"createTime":       created,
		"duration":         duration,
	}
}

// TestRunnerStages follows one task through its three stages on a clock
// the test moves, checking every stage's due time and callback exactly.
func TestRunnerStages(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := storetest.NewClock(t0)
	st := openStore(t, clk.Now)
	delays := [3]time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute}
	tk := createTask(t, st, newRequest("a song about rain").Param(), t0)
	start(t, newRunner(t, st, &testEngine{}, func(c *worker.RunnerConfig) {
		c.Delays = delays
		c.Now = clk.Now
	}).Run)

	t1 := t0.Add(delays[1]) // first is due
	t2 := t1.Add(delays[2]) // complete is due
	steps := []struct {
		status  task.Status
		runAt   time.Time
		advance time.Duration
	}{
		{task.StatusTextSuccess, t1, delays[1]},
		{task.StatusFirstSuccess, t2, delays[2]},
		{task.StatusSuccess, time.Time{}, 0},
	}
	for _, s := range steps {
		waitFor(t, "status "+string(s.status), func() bool { return taskOf(t, st, tk.ID).Status == s.status })
		if got := taskOf(t, st, tk.ID).RunAt; !got.Equal(s.runAt) {
			t.Errorf("in %s: RunAt = %v, want %v", s.status, got, s.runAt)
		}
		clk.Advance(s.advance)
	}

	got := taskOf(t, st, tk.ID)
	if got.Text != testText {
		t.Errorf("Text = %+v, want %+v", got.Text, testText)
	}
	if len(got.Tracks) != 2 || !got.Tracks[0].CreatedAt.Equal(t1) || !got.Tracks[1].CreatedAt.Equal(t2) {
		t.Errorf("Tracks = %+v, want 2 created at %v and %v", got.Tracks, t1, t2)
	}

	track0 := wantTrack(tk.ID, 0, "2026-03-01 12:10:00", 198.44)
	track1 := wantTrack(tk.ID, 1, "2026-03-01 12:30:00", 228.28)
	want := []struct {
		stage task.Stage
		at    time.Time
		body  map[string]any
	}{
		{task.StageText, t0, map[string]any{"code": 200.0, "msg": "Text generation completed successfully.",
			"data": map[string]any{"callbackType": "text", "task_id": tk.ID, "data": []any{}}}},
		{task.StageFirst, t1, map[string]any{"code": 200.0, "msg": "First track generated successfully.",
			"data": map[string]any{"callbackType": "first", "task_id": tk.ID, "data": []any{track0}}}},
		{task.StageComplete, t2, map[string]any{"code": 200.0, "msg": "All generated successfully.",
			"data": map[string]any{"callbackType": "complete", "task_id": tk.ID, "data": []any{track0, track1}}}},
	}
	cbs := callbacksOf(t, st, tk.ID)
	if len(cbs) != len(want) {
		t.Fatalf("got %d callbacks, want %d", len(cbs), len(want))
	}
	ids := map[string]bool{}
	for i, w := range want {
		cb := cbs[i]
		ids[cb.ID] = true
		if cb.Stage != w.stage || cb.TaskID != tk.ID || cb.URL != tk.CallbackURL || cb.State != task.DeliveryPending || cb.Attempts != 0 {
			t.Errorf("callback %d = %s of %s to %s, %s after %d attempts; want %s of %s to %s, pending after 0",
				i, cb.Stage, cb.TaskID, cb.URL, cb.State, cb.Attempts, w.stage, tk.ID, tk.CallbackURL)
		}
		if !cb.NextAttemptAt.Equal(w.at) || !cb.CreatedAt.Equal(w.at) {
			t.Errorf("%s callback: due %v, created %v; want both %v", w.stage, cb.NextAttemptAt, cb.CreatedAt, w.at)
		}
		if got := decodeJSON(t, cb.Body); !reflect.DeepEqual(got, any(w.body)) {
			t.Errorf("%s callback body:\ngot  %s\nwant %v", w.stage, cb.Body, w.body)
		}
	}
	if len(ids) != len(want) {
		t.Errorf("callback IDs %v are not distinct", ids)
	}
}

// TestRunnerOutcomes runs tasks to their end: simulated failures, engine
// failures, transient errors and unreadable requests.
func TestRunnerOutcomes(t *testing.T) {
	t.Parallel()
	failOn := func(index int, err error) func(context.Context, int, int) error {
		return func(_ context.Context, i, _ int) error {
			if i == index {
				return err
			}
			return nil
		}
	}
	success := []task.Stage{task.StageText, task.StageFirst, task.StageComplete}
	tests := []struct {
		name       string
		param      string
		simulation bool
		hook       func(ctx context.Context, index, calls int) error
		wantStatus task.Status
		wantStages []task.Stage
		wantCode   int // of the error callback
		wantMsg    string
		wantTracks int
		wantTexts  int // calls of the text stage
	}{
		{
			name: "success", param: newRequest("a song about rain").Param(),
			wantStatus: task.StatusSuccess, wantStages: success, wantTracks: 2, wantTexts: 1,
		},
		{
			name: "simulated failure before text", param: newRequest("rain tunehook:fail:400").Param(), simulation: true,
			wantStatus: task.StatusSensitiveWordError, wantStages: []task.Stage{task.StageError},
			wantCode: 400, wantMsg: "Lyrics contained copyrighted material.",
		},
		{
			name: "simulated failure after first", param: newRequest("rain tunehook:fail:531@first").Param(), simulation: true,
			wantStatus: task.StatusGenerateAudioFailed, wantStages: []task.Stage{task.StageText, task.StageFirst, task.StageError},
			wantCode: 531, wantMsg: "Sorry, the generation failed due to an issue. Your credits have been refunded. Please try again.",
			wantTracks: 1, wantTexts: 1,
		},
		{
			name: "token ignored without simulation", param: newRequest("rain tunehook:fail:400").Param(),
			wantStatus: task.StatusSuccess, wantStages: success, wantTracks: 2, wantTexts: 1,
		},
		{
			name: "engine failure", param: newRequest("rain").Param(), hook: failOn(0, task.NewFailure(501)),
			wantStatus: task.StatusGenerateAudioFailed, wantStages: []task.Stage{task.StageText, task.StageError},
			wantCode: 501, wantMsg: "Audio generation failed.", wantTexts: 1,
		},
		{
			name: "wrapped engine failure", param: newRequest("rain").Param(),
			hook:       failOn(1, fmt.Errorf("upstream: %w", task.NewFailure(413))),
			wantStatus: task.StatusGenerateAudioFailed, wantStages: []task.Stage{task.StageText, task.StageFirst, task.StageError},
			wantCode: 413, wantMsg: "Uploaded audio matches existing work of art.", wantTracks: 1, wantTexts: 1,
		},
		{
			name: "transient error retried", param: newRequest("rain").Param(),
			hook: func(_ context.Context, index, calls int) error {
				if index == -1 && calls == 0 {
					return errors.New("gpu busy")
				}
				return nil
			},
			wantStatus: task.StatusSuccess, wantStages: success, wantTracks: 2, wantTexts: 2,
		},
		{
			name: "unreadable request", param: `{"model":`,
			wantStatus: task.StatusGenerateAudioFailed, wantStages: []task.Stage{task.StageError},
			wantCode: 500, wantMsg: "An unexpected error occurred while processing the request.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t, nil)
			tk := createTask(t, st, tt.param, time.Now())
			e := &testEngine{hook: tt.hook}
			events := &stageEvents{}
			start(t, newRunner(t, st, e, func(c *worker.RunnerConfig) {
				c.Simulation = tt.simulation
				c.OnStage = events.add
			}).Run)

			waitFor(t, "a final status", func() bool { return taskOf(t, st, tk.ID).Status.Final() })
			got := taskOf(t, st, tk.ID)
			if got.Status != tt.wantStatus {
				t.Errorf("status = %s, want %s", got.Status, tt.wantStatus)
			}
			// Every commit is reported, the failure's too.
			waitFor(t, "the last stage event", func() bool { return len(events.all()) == len(tt.wantStages) })
			// A stage's event follows its commit, in the goroutine that
			// ran it: the next stage, claimed by another as soon as the
			// commit made it due, can report first.
			seen := events.all()
			slices.SortStableFunc(seen, func(a, b worker.StageEvent) int {
				return cmp.Compare(slices.Index(tt.wantStages, a.Stage), slices.Index(tt.wantStages, b.Stage))
			})
			for i, e := range seen {
				if e.TaskID != tk.ID || e.Stage != tt.wantStages[i] || e.Took < 0 {
					t.Errorf("stage event %d = %+v, want task %s stage %s", i, e, tk.ID, tt.wantStages[i])
				}
				if last := i == len(tt.wantStages)-1; last && e.To != tt.wantStatus {
					t.Errorf("last stage event to %s, want %s", e.To, tt.wantStatus)
				}
			}
			if len(got.Tracks) != tt.wantTracks {
				t.Errorf("got %d tracks, want %d", len(got.Tracks), tt.wantTracks)
			}
			if n := e.Calls(-1); n != tt.wantTexts {
				t.Errorf("text stage ran %d times, want %d", n, tt.wantTexts)
			}
			cbs := callbacksOf(t, st, tk.ID)
			var stages []task.Stage
			for _, cb := range cbs {
				stages = append(stages, cb.Stage)
			}
			if !slices.Equal(stages, tt.wantStages) {
				t.Fatalf("callback stages = %v, want %v", stages, tt.wantStages)
			}
			if tt.wantCode == 0 {
				if got.Failure != nil {
					t.Errorf("Failure = %+v, want none", got.Failure)
				}
				return
			}
			if got.Failure == nil || got.Failure.Code != tt.wantCode || got.Failure.Message != tt.wantMsg {
				t.Errorf("Failure = %+v, want %d %q", got.Failure, tt.wantCode, tt.wantMsg)
			}
			wantBody := map[string]any{"code": float64(tt.wantCode), "msg": tt.wantMsg,
				"data": map[string]any{"callbackType": "error", "task_id": tk.ID, "data": nil}}
			if body := decodeJSON(t, cbs[len(cbs)-1].Body); !reflect.DeepEqual(body, any(wantBody)) {
				t.Errorf("error callback body:\ngot  %s\nwant %v", cbs[len(cbs)-1].Body, wantBody)
			}
		})
	}
}

// TestRunnerStageAttempts checks that a stage claimed more often than
// MaxStageAttempts (its runners kept dying) fails the task instead of being
// tried again, and that the count starts over with every stage.
func TestRunnerStageAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		priorClaim int // claims of the text stage that died
		wantStatus task.Status
		wantStages []task.Stage
	}{
		{"within the limit", 1, task.StatusSuccess, []task.Stage{task.StageText, task.StageFirst, task.StageComplete}},
		{"beyond the limit", 2, task.StatusGenerateAudioFailed, []task.Stage{task.StageError}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t, nil)
			tk := createTask(t, st, newRequest("rain").Param(), time.Now())
			for range tt.priorClaim {
				claimed, err := st.ClaimTasks(t.Context(), "crasher", 1, time.Minute)
				if err != nil || len(claimed) != 1 {
					t.Fatalf("claim: got %d tasks, %v; want 1", len(claimed), err)
				}
				if err := st.ReleaseTask(t.Context(), tk.ID, "crasher", time.Now()); err != nil {
					t.Fatalf("release: %v", err)
				}
			}
			e := &testEngine{}
			start(t, newRunner(t, st, e, func(c *worker.RunnerConfig) { c.MaxStageAttempts = 2 }).Run)

			waitFor(t, "a final status", func() bool { return taskOf(t, st, tk.ID).Status.Final() })
			got := taskOf(t, st, tk.ID)
			if got.Status != tt.wantStatus {
				t.Errorf("status = %s, want %s", got.Status, tt.wantStatus)
			}
			var stages []task.Stage
			for _, cb := range callbacksOf(t, st, tk.ID) {
				stages = append(stages, cb.Stage)
			}
			if !slices.Equal(stages, tt.wantStages) {
				t.Errorf("callback stages = %v, want %v", stages, tt.wantStages)
			}
			if tt.wantStatus == task.StatusSuccess {
				return
			}
			const wantMsg = "Generation failed repeatedly. Please try again."
			if got.Failure == nil || got.Failure.Code != 500 || got.Failure.Message != wantMsg {
				t.Errorf("Failure = %+v, want 500 %q", got.Failure, wantMsg)
			}
			if n := e.Calls(-1); n != 0 {
				t.Errorf("text stage ran %d times, want 0", n)
			}
		})
	}
}

// heartbeatStore is a Store whose heartbeats can be made to fail, as when
// the database is slow to answer, and which reports the outcome of every
// commit.
type heartbeatStore struct {
	task.Store
	stalled atomic.Bool
	commits chan error
}

func (s *heartbeatStore) ExtendTaskLease(ctx context.Context, id, owner string, lease time.Duration) error {
	if s.stalled.Load() {
		return errors.New("database stalled")
	}
	return s.Store.ExtendTaskLease(ctx, id, owner, lease)
}

func (s *heartbeatStore) CommitStages(ctx context.Context, owner string, cs []task.StageCommit) ([]error, error) {
	results, err := s.Store.CommitStages(ctx, owner, cs)
	for i := range cs {
		if err != nil {
			s.commits <- err
		} else {
			s.commits <- results[i]
		}
	}
	return results, err
}

// TestRunnerLeaseLost lets a runner's lease expire during a slow stage and
// another owner claim the task: the first runner must not commit, whether
// its heartbeat finds out (and the engine stops or finishes anyway) or the
// store refuses the commit.
func TestRunnerLeaseLost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		heartbeatOK  bool // heartbeats reach the store again after the takeover
		finishAnyway bool // the engine returns its work even when cancelled
		wantCommit   bool // the runner tries to commit (and is refused)
	}{
		{"heartbeat finds the lease gone, engine stops", true, false, false},
		{"heartbeat finds the lease gone, engine finishes anyway", true, true, false},
		{"heartbeat silent, commit refused", false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := &heartbeatStore{Store: openStore(t, nil), commits: make(chan error, 8)}
			tk := createTask(t, st, newRequest("rain").Param(), time.Now())
			started, proceed := make(chan struct{}), make(chan struct{})
			causes := make(chan error, 1)
			e := &testEngine{hook: func(ctx context.Context, index, calls int) error {
				close(started)
				select {
				case <-ctx.Done():
					causes <- context.Cause(ctx)
				case <-proceed:
				}
				if tt.finishAnyway {
					return nil
				}
				return ctx.Err()
			}}
			stop := start(t, newRunner(t, st, e, func(c *worker.RunnerConfig) {
				// Short, to expire soon once stalled; long enough that a
				// slow heartbeat under -race cannot lose it before.
				c.Lease = 500 * time.Millisecond
				c.Concurrency = 1 // busy with the stage, it cannot claim the task back
			}).Run)

			<-started
			st.stalled.Store(true)
			waitFor(t, "the intruder's claim", func() bool {
				claimed, err := st.ClaimTasks(t.Context(), "intruder", 1, time.Minute)
				if err != nil {
					t.Fatalf("intruder claim: %v", err)
				}
				return len(claimed) == 1
			})
			if tt.heartbeatOK {
				st.stalled.Store(false)
				select {
				case cause := <-causes:
					if !errors.Is(cause, task.ErrLeaseLost) {
						t.Errorf("stage cancelled with %v, want %v", cause, task.ErrLeaseLost)
					}
				case <-time.After(waitLimit):
					t.Fatal("the stage was not cancelled")
				}
			} else {
				close(proceed)
			}
			if tt.wantCommit {
				select {
				case err := <-st.commits:
					if !errors.Is(err, task.ErrLeaseLost) {
						t.Errorf("commit returned %v, want %v", err, task.ErrLeaseLost)
					}
				case <-time.After(waitLimit):
					t.Fatal("the runner did not try to commit")
				}
			}
			stop()

			if len(st.commits) != 0 {
				t.Errorf("runner tried to commit under a lost lease: %v", <-st.commits)
			}
			if got := taskOf(t, st, tk.ID); got.Status != task.StatusPending {
				t.Errorf("status = %s, want %s", got.Status, task.StatusPending)
			}
			if cbs := callbacksOf(t, st, tk.ID); len(cbs) != 0 {
				t.Errorf("got %d callbacks, want none", len(cbs))
			}
			// The intruder still holds the lease: the first runner neither
			// committed nor released it.
			now := time.Now()
			err := storetest.CommitStage(t.Context(), st.Store, "intruder", task.StageCommit{
				TaskID: tk.ID, From: task.StatusPending, To: task.StatusTextSuccess, Text: &testText, RunAt: now,
				Callback: &task.Callback{ID: task.NewCallbackID(), TaskID: tk.ID, Stage: task.StageText, URL: tk.CallbackURL,
					Body: []byte(`{}`), State: task.DeliveryPending, NextAttemptAt: now, CreatedAt: now},
			})
			if err != nil {
				t.Errorf("intruder commit: %v", err)
			}
		})
	}
}

// TestRunnerShutdown stops a runner while a stage renders: a stage that
// stops hands the task back, claimable at once; a stage that finishes
// anyway is committed rather than thrown away.
func TestRunnerShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		finishAnyway bool
		wantStatus   task.Status
		wantClaim    bool
	}{
		{"stage stops", false, task.StatusPending, true},
		{"stage finishes anyway", true, task.StatusTextSuccess, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t, nil)
			tk := createTask(t, st, newRequest("rain").Param(), time.Now())
			started := make(chan struct{})
			e := &testEngine{hook: func(ctx context.Context, index, calls int) error {
				close(started)
				<-ctx.Done()
				if tt.finishAnyway {
					return nil
				}
				return ctx.Err()
			}}
			// A long lease and first delay: only a release (or the
			// commit) can make the task claimable now.
			stop := start(t, newRunner(t, st, e, func(c *worker.RunnerConfig) {
				c.Lease = time.Hour
				c.Delays = [3]time.Duration{0, time.Hour, time.Hour}
			}).Run)
			<-started
			stop()

			got := taskOf(t, st, tk.ID)
			if got.Status != tt.wantStatus {
				t.Errorf("status = %s, want %s", got.Status, tt.wantStatus)
			}
			if n := len(callbacksOf(t, st, tk.ID)); (n == 1) != tt.finishAnyway {
				t.Errorf("got %d callbacks, want %d", n, map[bool]int{true: 1}[tt.finishAnyway])
			}
			claimed, err := st.ClaimTasks(t.Context(), "successor", 1, time.Minute)
			if err != nil {
				t.Fatalf("claim: %v", err)
			}
			if gotClaim := len(claimed) == 1; gotClaim != tt.wantClaim {
				t.Fatalf("successor claimed %d tasks, want claimable %v", len(claimed), tt.wantClaim)
			}
			if tt.wantClaim && (claimed[0].ID != tk.ID || claimed[0].StageAttempts != 2) {
				t.Errorf("claimed %s after %d claims, want %s after 2", claimed[0].ID, claimed[0].StageAttempts, tk.ID)
			}
		})
	}
}

func TestNewRunner(t *testing.T) {
	t.Parallel()
	st := openStore(t, nil)
	valid := func() worker.RunnerConfig {
		return worker.RunnerConfig{Store: st, Engine: &testEngine{}, Owner: "runner-1"}
	}
	tests := []struct {
		name    string
		edit    func(*worker.RunnerConfig)
		wantErr bool
	}{
		{"defaults", func(*worker.RunnerConfig) {}, false},
		{"no store", func(c *worker.RunnerConfig) { c.Store = nil }, true},
		{"no engine", func(c *worker.RunnerConfig) { c.Engine = nil }, true},
		{"no owner", func(c *worker.RunnerConfig) { c.Owner = "" }, true},
		{"negative concurrency", func(c *worker.RunnerConfig) { c.Concurrency = -1 }, true},
		{"negative lease", func(c *worker.RunnerConfig) { c.Lease = -time.Second }, true},
		{"negative delay", func(c *worker.RunnerConfig) { c.Delays[2] = -time.Second }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid()
			tt.edit(&cfg)
			_, err := worker.NewRunner(cfg)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Errorf("NewRunner: got error %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

// stageEvents collects the events of a Runner's OnStage.
type stageEvents struct {
	mu     sync.Mutex
	events []worker.StageEvent
}

func (s *stageEvents) add(e worker.StageEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
}

func (s *stageEvents) all() []worker.StageEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// TestRunnerSlow checks that with simulation on, tunehook:slow stretches
// every pause by task.SlowFactor, the text stage's included (the API made
// the task due after the normal pause), and that without simulation the
// token is ordinary text.
func TestRunnerSlow(t *testing.T) {
	t.Parallel()
	delays := [3]time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute}
	for _, simulation := range []bool{true, false} {
		t.Run(fmt.Sprintf("simulation=%v", simulation), func(t *testing.T) {
			t.Parallel()
			factor := time.Duration(1)
			if simulation {
				factor = task.SlowFactor
			}
			t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			clk := storetest.NewClock(t0)
			st := openStore(t, clk.Now)
			// Due at once: as if the API's pause, delays[0], were over.
			tk := createTask(t, st, newRequest("a song tunehook:slow").Param(), t0)
			events := &stageEvents{}
			start(t, newRunner(t, st, &testEngine{}, func(c *worker.RunnerConfig) {
				c.Delays = delays
				c.Simulation = simulation
				c.Now = clk.Now
				c.OnStage = events.add
			}).Run)

			textDue := t0
			if simulation {
				textDue = t0.Add(task.SlowFactor * delays[0])
			}
			firstDue := textDue.Add(factor * delays[1])
			completeDue := firstDue.Add(factor * delays[2])
			if simulation {
				waitFor(t, "the text stage postponed", func() bool { return taskOf(t, st, tk.ID).RunAt.Equal(textDue) })
				if got := taskOf(t, st, tk.ID); got.Status != task.StatusPending || len(events.all()) != 0 {
					t.Fatalf("after the normal pause: status %s and %d stage events, want PENDING and none", got.Status, len(events.all()))
				}
				clk.Advance(textDue.Sub(clk.Now()))
			}
			steps := []struct {
				status task.Status
				runAt  time.Time
			}{
				{task.StatusTextSuccess, firstDue},
				{task.StatusFirstSuccess, completeDue},
				{task.StatusSuccess, time.Time{}},
			}
			for _, s := range steps {
				waitFor(t, "status "+string(s.status), func() bool { return taskOf(t, st, tk.ID).Status == s.status })
				if got := taskOf(t, st, tk.ID).RunAt; !got.Equal(s.runAt) {
					t.Errorf("in %s: RunAt = %v, want %v", s.status, got, s.runAt)
				}
				clk.Advance(s.runAt.Sub(clk.Now()))
			}
		})
	}
}
