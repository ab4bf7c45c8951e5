package payload

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/task"
)

var links = Links{PublicURL: "https://music.example.com"}

func sampleTask(status task.Status, tracks int) *task.Task {
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t := &task.Task{
		ID: "2fac0000000000000000000000009f72", Model: "V3_5", Status: status,
		Param:     `{"customMode":false}`,
		CreatedAt: created,
	}
	if status != task.StatusPending {
		t.Text = task.Text{Title: "Iron Man", Lyrics: "[Verse] Night city lights shining bright", Tags: "electrifying, rock"}
	}
	for i := range tracks {
		id := task.TrackID(t.ID, i)
		t.Tracks = append(t.Tracks, task.Track{
			ID: id, TaskID: t.ID, Index: i, AudioKey: t.ID + "/" + id + ".wav", ImageKey: t.ID + "/" + id + ".jpeg",
			Duration: 198.444, CreatedAt: created.Add(time.Duration(i) * time.Minute),
		})
	}
	return t
}

// The bodies follow the seed: text carries [], first one track, complete
// two, error null; snake_case fields, string times, two-decimal durations.
func TestCallback(t *testing.T) {
	t.Parallel()
	failed := sampleTask(task.StatusGenerateAudioFailed, 1)
	failed.Failure = task.NewFailure(501)
	tests := []struct {
		stage    task.Stage
		task     *task.Task
		wantCode int
		wantData string // the raw data.data, when it is fixed
	}{
		{task.StageText, sampleTask(task.StatusTextSuccess, 0), 200, `[]`},
		{task.StageFirst, sampleTask(task.StatusFirstSuccess, 1), 200, ``},
		{task.StageComplete, sampleTask(task.StatusSuccess, 2), 200, ``},
		{task.StageError, failed, 501, `null`},
	}

	for _, tt := range tests {
		t.Run(string(tt.stage), func(t *testing.T) {
			t.Parallel()
			b, err := Callback(tt.task, tt.stage, links)
			if err != nil {
				t.Fatal(err)
			}
			var raw struct {
				Code int
				Msg  string
				Data struct {
					CallbackType string          `json:"callbackType"`
					TaskID       string          `json:"task_id"`
					Data         json.RawMessage `json:"data"`
				}
			}
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			if raw.Code != tt.wantCode || raw.Msg == "" || raw.Data.CallbackType != string(tt.stage) || raw.Data.TaskID != tt.task.ID {
				t.Errorf("got %s", b)
			}
			if tt.wantData != "" && string(raw.Data.Data) != tt.wantData {
				t.Errorf("data.data: got %s, want %s", raw.Data.Data, tt.wantData)
			}
			var cb tunehook.Callback
			if err := json.Unmarshal(b, &cb); err != nil {
				t.Fatal(err)
			}
			if tt.stage == task.StageError {
				if cb.Msg != "Audio generation failed." || !cb.Failed() {
					t.Errorf("error msg %q, want the seed's message for 501", cb.Msg)
				}
				return
			}
			want := map[task.Stage]int{task.StageText: 0, task.StageFirst: 1, task.StageComplete: 2}[tt.stage]
			if len(cb.Data.Data) != want {
				t.Fatalf("got %d tracks, want %d", len(cb.Data.Data), want)
			}
			for i, tr := range cb.Data.Data {
				src := tt.task.Tracks[i]
				want := tunehook.CallbackTrack{
					ID:             src.ID,
					AudioURL:       "https://music.example.com/media/" + src.AudioKey,
					StreamAudioURL: "https://music.example.com/stream/" + tt.task.ID + "/" + src.ID,
					ImageURL:       "https://music.example.com/media/" + src.ImageKey,
					Prompt:         "[Verse] Night city lights shining bright",
					ModelName:      "chirp-v3-5",
					Title:          "Iron Man",
					Tags:           "electrifying, rock",
					CreateTime:     []string{"2025-01-01 00:00:00", "2025-01-01 00:01:00"}[i],
					Duration:       198.44,
				}
				if tr != want {
					t.Errorf("track %d:\n got %+v\nwant %+v", i, tr, want)
				}
			}
		})
	}
}

func TestCallbackRefusesInconsistentTasks(t *testing.T) {
	t.Parallel()
	if _, err := Callback(sampleTask(task.StatusSuccess, 1), task.StageComplete, links); err == nil || !strings.Contains(err.Error(), "needs 2 tracks") {
		t.Errorf("complete with one track: got %v", err)
	}
	if _, err := Callback(sampleTask(task.StatusGenerateAudioFailed, 0), task.StageError, links); err == nil {
		t.Error("error callback without a failure: got no error")
	}
	if _, err := Callback(sampleTask(task.StatusSuccess, 2), "bogus", links); err == nil {
		t.Error("unknown stage: got no error")
	}
}

func TestRecordInfo(t *testing.T) {
	t.Parallel()
	pending := RecordInfo(sampleTask(task.StatusPending, 0), links)
	if pending.Response != nil || pending.Status != tunehook.StatusPending || pending.Type != "chirp-v3-5" ||
		pending.OperationType != "generate" || pending.CreateTime != 1735689600000 || pending.Param != `{"customMode":false}` {
		t.Errorf("pending: %+v", pending)
	}
	text := RecordInfo(sampleTask(task.StatusTextSuccess, 0), links)
	if text.Response == nil || text.Response.SunoData == nil || len(text.Response.SunoData) != 0 {
		t.Errorf("text: got response %+v, want empty sunoData", text.Response)
	}
	done := RecordInfo(sampleTask(task.StatusSuccess, 2), links)
	if len(done.Response.SunoData) != 2 || done.Response.SunoData[1].CreateTime != 1735689660000 || done.Response.SunoData[0].Duration != 198.44 {
		t.Errorf("success: %+v", done.Response)
	}
	failedEarly := sampleTask(task.StatusPending, 0)
	failedEarly.Status, failedEarly.Failure = task.StatusSensitiveWordError, task.NewFailure(400)
	f := RecordInfo(failedEarly, links)
	if f.Response != nil || f.ErrorCode == nil || *f.ErrorCode != 400 || f.ErrorMessage == nil || *f.ErrorMessage != "Lyrics contained copyrighted material." {
		t.Errorf("failed before text: %+v", f)
	}
	b, _ := json.Marshal(pending)
	for _, want := range []string{`"response":null`, `"errorCode":null`, `"errorMessage":null`, `"parentMusicId":""`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("record-info JSON %s lacks %s", b, want)
		}
	}
}
