package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/storetest"
	"github.com/tunehook/tunehook/internal/task"
)

// testRunner is the lease owner the tests commit stages as.
const testRunner = "test-runner"

// commit moves task id on by one stage as a runner would: it claims the
// task once it is due and commits c, completed with the task's ID, its
// current status as From, the next RunAt and a callback. c.To is the
// status NextStage gives unless c.Failure is set.
func (s *testServer) commit(t *testing.T, id string, c task.StageCommit) {
	t.Helper()
	ctx := context.Background()
	s.clock.Advance(testTextDelay)
	claimed, err := s.store.ClaimTasks(ctx, testRunner, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var cur *task.Task
	for _, ct := range claimed {
		if ct.ID == id {
			cur = ct
			continue
		}
		if err := s.store.ReleaseTask(ctx, ct.ID, testRunner, ct.RunAt); err != nil {
			t.Fatal(err)
		}
	}
	if cur == nil {
		t.Fatalf("task %s: not claimable", id)
	}
	stage, to, ok := task.NextStage(cur.Status)
	if !ok {
		t.Fatalf("task %s: no stage after %s", id, cur.Status)
	}
	if c.Failure != nil {
		stage, to = task.StageError, c.Failure.Status()
	}
	now := s.clock.Now()
	c.TaskID, c.From, c.To, c.RunAt = id, cur.Status, to, now
	c.Callback = &task.Callback{
		ID: task.NewCallbackID(), TaskID: id, Stage: stage, URL: cur.CallbackURL,
		Body:  []byte(`{}`), // record-info does not read callbacks
		State: task.DeliveryPending, NextAttemptAt: now, CreatedAt: now,
	}
	if err := storetest.CommitStage(ctx, s.store, testRunner, c); err != nil {
		t.Fatalf("commit %s of task %s: %v", stage, id, err)
	}
}

// trackDurations are the durations of the test tracks, and
// wantDurations the two-decimal durations results show for them.
var (
	trackDurations = []float64{154.678, 201.5}
	wantDurations  = []float64{154.68, 201.5}
)

// testTrack returns track index of task id, finished now.
func (s *testServer) testTrack(id string, index int) *task.Track {
	tid := task.TrackID(id, index)
	return &task.Track{
		ID: tid, TaskID: id, Index: index,
		AudioKey: id + "/" + tid + ".wav", ImageKey: id + "/" + tid + ".jpeg",
		Duration: trackDurations[index], CreatedAt: s.clock.Now(),
	}
}

// recordInfo fetches the record-info of id with key and returns its data,
// raw and decoded with the SDK's type.
func (s *testServer) recordInfo(t *testing.T, key, id string) (map[string]json.RawMessage, tunehook.RecordInfo) {
	t.Helper()
	e := decodeEnvelope(t, s.do(t, http.MethodGet, "/api/v1/generate/record-info?taskId="+url.QueryEscape(id), key, nil), http.StatusOK)
	if e.Code != task.CodeOK || e.Msg != "success" {
		t.Fatalf("got code %d msg %q, want 200 success", e.Code, e.Msg)
	}
	var raw map[string]json.RawMessage
	var ri tunehook.RecordInfo
	if err := json.Unmarshal(e.Data, &raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(e.Data, &ri); err != nil {
		t.Fatal(err)
	}
	return raw, ri
}

const customBody = `{"customMode":true,"instrumental":false,"model":"V5","callBackUrl":"https://example.com/cb",` +
	`"prompt":"[Verse] Night city lights","style":"rock","title":"Iron Man"}`

// The record-info of one task through every stage of a successful run.
func TestRecordInfoStages(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	created := s.clock.Now()
	id := s.createTask(t, testKey, customBody)
	req, err := task.ParseRequest([]byte(customBody))
	if err != nil {
		t.Fatal(err)
	}
	text := task.Text{Title: "Iron Man", Lyrics: "[Verse] Night city lights", Tags: "rock, electrifying"}
	var tracks []*task.Track

	steps := []struct {
		status task.Status
		commit func() task.StageCommit // nil: the task as created
	}{
		{task.StatusPending, nil},
		{task.StatusTextSuccess, func() task.StageCommit { return task.StageCommit{Text: &text} }},
		{task.StatusFirstSuccess, func() task.StageCommit {
			tracks = append(tracks, s.testTrack(id, 0))
			return task.StageCommit{Track: tracks[0]}
		}},
		{task.StatusSuccess, func() task.StageCommit {
			tracks = append(tracks, s.testTrack(id, 1))
			return task.StageCommit{Track: tracks[1]}
		}},
	}
	for _, step := range steps {
		if step.commit != nil {
			s.commit(t, id, step.commit())
		}
		raw, ri := s.recordInfo(t, testKey, id)

		fields := []struct {
			name      string
			got, want any
		}{
			{"taskId", ri.TaskID, id},
			{"parentMusicId", ri.ParentMusicID, ""},
			{"param", ri.Param, req.Param()},
			{"status", ri.Status, tunehook.Status(step.status)},
			{"type", ri.Type, "chirp-crow"},
			{"operationType", ri.OperationType, "generate"},
			{"createTime", string(raw["createTime"]), strconv.FormatInt(created.UnixMilli(), 10)},
			{"errorCode", string(raw["errorCode"]), "null"},
			{"errorMessage", string(raw["errorMessage"]), "null"},
		}
		for _, f := range fields {
			if f.got != f.want {
				t.Errorf("%s: %s: got %v, want %v", step.status, f.name, f.got, f.want)
			}
		}

		if step.status == task.StatusPending {
			if got := string(raw["response"]); got != "null" {
				t.Errorf("%s: got response %s, want null", step.status, got)
			}
			continue
		}
		var resp map[string]json.RawMessage
		if err := json.Unmarshal(raw["response"], &resp); err != nil {
			t.Fatalf("%s: response %s: %v", step.status, raw["response"], err)
		}
		if len(tracks) == 0 && string(resp["sunoData"]) != "[]" {
			t.Errorf("%s: got sunoData %s, want []", step.status, resp["sunoData"])
		}
		if ri.Response.TaskID != id || len(ri.Response.SunoData) != len(tracks) {
			t.Fatalf("%s: got response of task %q with %d tracks, want task %s with %d", step.status,
				ri.Response.TaskID, len(ri.Response.SunoData), id, len(tracks))
		}
		var items []map[string]json.RawMessage
		if err := json.Unmarshal(resp["sunoData"], &items); err != nil {
			t.Fatal(err)
		}
		for i, tr := range tracks {
			wantKeys := []string{"audioUrl", "createTime", "duration", "id", "imageUrl", "modelName", "prompt", "streamAudioUrl", "tags", "title"}
			if got := slices.Sorted(maps.Keys(items[i])); !slices.Equal(got, wantKeys) {
				t.Errorf("%s: track %d: got members %v, want %v", step.status, i, got, wantKeys)
			}
			got := ri.Response.SunoData[i]
			want := tunehook.RecordTrack{
				ID:             tr.ID,
				AudioURL:       testLinks.PublicURL + "/media/" + tr.AudioKey,
				StreamAudioURL: testLinks.PublicURL + "/stream/" + id + "/" + tr.ID,
				ImageURL:       testLinks.PublicURL + "/media/" + tr.ImageKey,
				Prompt:         text.Lyrics,
				ModelName:      "chirp-crow",
				Title:          text.Title,
				Tags:           text.Tags,
				CreateTime:     tr.CreatedAt.UnixMilli(),
				Duration:       wantDurations[i],
			}
			if got != want {
				t.Errorf("%s: track %d: got %+v, want %+v", step.status, i, got, want)
			}
			// Epoch milliseconds, as a JSON integer.
			if ms := string(items[i]["createTime"]); ms != strconv.FormatInt(tr.CreatedAt.UnixMilli(), 10) {
				t.Errorf("%s: track %d: got createTime %s, want %d", step.status, i, ms, tr.CreatedAt.UnixMilli())
			}
		}
	}
}

// A failed task shows its failure's code, message and status.
func TestRecordInfoFailed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		code       int
		afterText  bool
		wantStatus tunehook.Status
	}{
		{"audio generation failed at once", 501, false, tunehook.StatusGenerateAudioFailed},
		{"copyrighted lyrics after text", 400, true, tunehook.StatusSensitiveWordError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t)
			id := s.createTask(t, testKey, customBody)
			if tt.afterText {
				s.commit(t, id, task.StageCommit{Text: &task.Text{Title: "T", Lyrics: "la", Tags: "rock"}})
			}
			f := task.NewFailure(tt.code)
			s.commit(t, id, task.StageCommit{Failure: f})
			raw, ri := s.recordInfo(t, testKey, id)
			if ri.Status != tt.wantStatus {
				t.Errorf("got status %s, want %s", ri.Status, tt.wantStatus)
			}
			if ri.ErrorCode == nil || *ri.ErrorCode != tt.code {
				t.Errorf("got errorCode %s, want %d", raw["errorCode"], tt.code)
			}
			if ri.ErrorMessage == nil || *ri.ErrorMessage != f.Message {
				t.Errorf("got errorMessage %s, want %q", raw["errorMessage"], f.Message)
			}
			if gotResp := ri.Response != nil; gotResp != tt.afterText {
				t.Errorf("got response %s, want one only when the text was written", raw["response"])
			}
		})
	}
}

func TestRecordInfoErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	mine := s.createTask(t, testKey, validBody)
	theirs := s.createTask(t, otherKey, validBody)
	unknown := task.NewTaskID()
	tests := []struct {
		name     string
		query    string
		wantCode int
		wantMsg  string
	}{
		{"no taskId", "", task.CodeInvalid, "Please enter taskId."},
		{"empty taskId", "?taskId=", task.CodeInvalid, "Please enter taskId."},
		{"blank taskId", "?taskId=%20%09", task.CodeInvalid, "Please enter taskId."},
		{"other parameter", "?taskid=" + mine, task.CodeInvalid, "Please enter taskId."},
		{"unknown task", "?taskId=" + unknown, task.CodeNotFound, "Task not found."},
		{"another key's task", "?taskId=" + theirs, task.CodeNotFound, "Task not found."},
		{"invalid UTF-8", "?taskId=%ff%fe", task.CodeNotFound, "Task not found."},
		{"long taskId", "?taskId=" + string(bytes.Repeat([]byte("a"), 4000)), task.CodeNotFound, "Task not found."},
		{"first of two taskIds is unknown", "?taskId=" + unknown + "&taskId=" + mine, task.CodeNotFound, "Task not found."},
		{"first of two taskIds is mine", "?taskId=" + mine + "&taskId=" + unknown, task.CodeOK, "success"},
		{"mine", "?taskId=" + mine, task.CodeOK, "success"},
	}
	answers := map[string]string{}
	for _, tt := range tests {
		a := s.do(t, http.MethodGet, "/api/v1/generate/record-info"+tt.query, testKey, nil)
		e := decodeEnvelope(t, a, http.StatusOK)
		if e.Code != tt.wantCode || e.Msg != tt.wantMsg {
			t.Errorf("%s: got code %d msg %q, want code %d msg %q", tt.name, e.Code, e.Msg, tt.wantCode, tt.wantMsg)
		}
		if tt.wantCode != task.CodeOK && string(e.Data) != "null" {
			t.Errorf("%s: got data %s, want null", tt.name, e.Data)
		}
		answers[tt.name] = string(a.body)
	}
	// Nothing tells another key's task from a task that does not exist.
	if answers["another key's task"] != answers["unknown task"] {
		t.Errorf("got %s for another key's task, want the answer for an unknown task, %s",
			answers["another key's task"], answers["unknown task"])
	}
	// The owner sees the task that the other key cannot.
	if _, ri := s.recordInfo(t, otherKey, theirs); ri.TaskID != theirs {
		t.Errorf("got taskId %s, want %s", ri.TaskID, theirs)
	}
}
