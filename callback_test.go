package tunehook_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/task"
)

// seedComplete is the seed's example callback, as documented.
const seedComplete = `{
  "code": 200,
  "msg": "All generated successfully.",
  "data": {
    "callbackType": "complete",
    "task_id": "2fac****9f72",
    "data": [
      {
        "id": "8551****662c",
        "audio_url": "https://example.cn/****.mp3",
        "stream_audio_url": "https://example.cn/****",
        "image_url": "https://example.cn/****.jpeg",
        "prompt": "[Verse] Night city lights shining bright",
        "model_name": "chirp-v3-5",
        "title": "Iron Man",
        "tags": "electrifying, rock",
        "createTime": "2025-01-01 00:00:00",
        "duration": 198.44
      },
      {
        "id": "bd15****1873",
        "audio_url": "https://example.cn/****.mp3",
        "stream_audio_url": "https://example.cn/****",
        "image_url": "https://example.cn/****.jpeg",
        "prompt": "[Verse] Night city lights shining bright",
        "model_name": "chirp-v3-5",
        "title": "Iron Man",
        "tags": "electrifying, rock",
        "createTime": "2025-01-01 00:00:00",
        "duration": 228.28
      }
    ]
  }
}`

func TestParseCallback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		body       string
		wantType   tunehook.CallbackType
		wantTracks int  // -1: data.data nil
		wantFailed bool // Err returns a *TaskError
		wantErr    string
	}{
		{name: "seed complete", body: seedComplete, wantType: tunehook.CallbackComplete, wantTracks: 2},
		{name: "text", body: `{"code":200,"msg":"ok","data":{"callbackType":"text","task_id":"t1","data":[]}}`, wantType: tunehook.CallbackText},
		{name: "first", body: `{"code":200,"msg":"ok","data":{"callbackType":"first","task_id":"t1","data":[{"id":"a"}]}}`, wantType: tunehook.CallbackFirst, wantTracks: 1},
		{name: "unknown fields ignored", body: `{"code":200,"msg":"ok","extra":1,"data":{"callbackType":"text","task_id":"t1","data":[],"more":{}}}`, wantType: tunehook.CallbackText},
		{name: "error", body: `{"code":501,"msg":"Audio generation failed.","data":{"callbackType":"error","task_id":"t1","data":null}}`,
			wantType: tunehook.CallbackError, wantTracks: -1, wantFailed: true},
		{name: "error without data.data", body: `{"code":400,"msg":"no","data":{"callbackType":"error","task_id":"t1"}}`,
			wantType: tunehook.CallbackError, wantTracks: -1, wantFailed: true},
		{name: "failure code on a success stage", body: `{"code":531,"msg":"refunded","data":{"callbackType":"complete","task_id":"t1","data":null}}`,
			wantType: tunehook.CallbackComplete, wantTracks: -1, wantFailed: true},
		{name: "error stage with code 200", body: `{"code":200,"msg":"?","data":{"callbackType":"error","task_id":"t1","data":null}}`,
			wantType: tunehook.CallbackError, wantTracks: -1, wantFailed: true},

		{name: "not JSON", body: `code=200`, wantErr: "invalid character"},
		{name: "empty", body: ``, wantErr: "unexpected end of JSON input"},
		{name: "array", body: `[]`, wantErr: "cannot unmarshal array"},
		{name: "no code", body: `{"msg":"ok","data":{"callbackType":"text","task_id":"t1","data":[]}}`, wantErr: "no code"},
		{name: "code not a number", body: `{"code":"200","msg":"ok","data":{"callbackType":"text","task_id":"t1","data":[]}}`, wantErr: "cannot unmarshal string"},
		{name: "no data", body: `{"code":200,"msg":"ok"}`, wantErr: "no data"},
		{name: "data null", body: `{"code":200,"msg":"ok","data":null}`, wantErr: "no data"},
		{name: "unknown callbackType", body: `{"code":200,"msg":"ok","data":{"callbackType":"done","task_id":"t1","data":[]}}`, wantErr: `unknown callbackType "done"`},
		{name: "no callbackType", body: `{"code":200,"msg":"ok","data":{"task_id":"t1","data":[]}}`, wantErr: `unknown callbackType ""`},
		{name: "no task_id", body: `{"code":200,"msg":"ok","data":{"callbackType":"text","data":[]}}`, wantErr: "no data.task_id"},
		{name: "success without tracks", body: `{"code":200,"msg":"ok","data":{"callbackType":"complete","task_id":"t1","data":null}}`, wantErr: "complete callback without data.data"},
		{name: "text without data.data", body: `{"code":200,"msg":"ok","data":{"callbackType":"text","task_id":"t1"}}`, wantErr: "text callback without data.data"},
		{name: "tracks not an array", body: `{"code":200,"msg":"ok","data":{"callbackType":"first","task_id":"t1","data":{"id":"a"}}}`, wantErr: "data.data"},
		{name: "duration a string", body: `{"code":200,"msg":"ok","data":{"callbackType":"first","task_id":"t1","data":[{"duration":"198"}]}}`, wantErr: "data.data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cb, err := tunehook.ParseCallback([]byte(tt.body))
			if tt.wantErr != "" {
				if !errors.Is(err, tunehook.ErrInvalidCallback) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want ErrInvalidCallback about %q", err, tt.wantErr)
				}
				if cb != nil {
					t.Errorf("got callback %+v with the error, want nil", cb)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if cb.Data.CallbackType != tt.wantType {
				t.Errorf("got type %q, want %q", cb.Data.CallbackType, tt.wantType)
			}
			if tt.wantTracks < 0 {
				if cb.Data.Data != nil {
					t.Errorf("got tracks %v, want nil", cb.Data.Data)
				}
			} else if cb.Data.Data == nil || len(cb.Data.Data) != tt.wantTracks {
				t.Errorf("got tracks %v, want %d (not nil)", cb.Data.Data, tt.wantTracks)
			}
			taskErr, isTaskErr := errors.AsType[*tunehook.TaskError](cb.Err())
			if isTaskErr != tt.wantFailed || cb.Failed() != tt.wantFailed {
				t.Fatalf("got Err() %v, Failed() %v; want failed %v", cb.Err(), cb.Failed(), tt.wantFailed)
			}
			if isTaskErr && (taskErr.Code != cb.Code || taskErr.Msg != cb.Msg || taskErr.TaskID != cb.Data.TaskID) {
				t.Errorf("got %+v, want the callback's code, msg and task", taskErr)
			}
		})
	}
}

// Every body the server builds parses, and its failure shows in Err with
// the seed's meaning of its code.
func TestParseCallbackServerBodies(t *testing.T) {
	t.Parallel()
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tk := &task.Task{ID: "2fac0000000000000000000000009f72", Model: "V5", Status: task.StatusSuccess, CreatedAt: created,
		Text: task.Text{Title: "Iron Man", Lyrics: "[Verse] Night city lights", Tags: "rock"}}
	for i := range task.TracksPerTask {
		id := task.TrackID(tk.ID, i)
		tk.Tracks = append(tk.Tracks, task.Track{ID: id, TaskID: tk.ID, Index: i, AudioKey: id + ".wav", ImageKey: id + ".jpeg",
			Duration: 198.444, CreatedAt: created.Add(time.Duration(i) * time.Minute)})
	}
	links := payload.Links{PublicURL: "https://music.example.com"}
	for _, stage := range []task.Stage{task.StageText, task.StageFirst, task.StageComplete} {
		body, err := payload.Callback(tk, stage, links)
		if err != nil {
			t.Fatal(err)
		}
		cb, err := tunehook.ParseCallback(body)
		if err != nil {
			t.Fatalf("%s: got %v, want no error for %s", stage, err, body)
		}
		if cb.Err() != nil || cb.Data.CallbackType != tunehook.CallbackType(stage) {
			t.Errorf("%s: got type %q, Err %v; want %q and no error", stage, cb.Data.CallbackType, cb.Err(), stage)
		}
	}
	for code, meaning := range map[int]string{400: "copyrighted", 408: "timeout", 413: "existing work", 500: "unexpected", 501: "audio generation failed", 531: "refunded"} {
		tk.Failure = task.NewFailure(code)
		body, err := payload.Callback(tk, task.StageError, links)
		if err != nil {
			t.Fatal(err)
		}
		cb, err := tunehook.ParseCallback(body)
		if err != nil {
			t.Fatalf("error %d: got %v, want no error for %s", code, err, body)
		}
		taskErr, ok := errors.AsType[*tunehook.TaskError](cb.Err())
		if !ok || taskErr.Code != code || !strings.Contains(taskErr.Error(), meaning) || !strings.Contains(taskErr.Error(), tk.ID) {
			t.Errorf("error %d: got Err() %v, want a *TaskError naming the task and %q", code, cb.Err(), meaning)
		}
	}
}

func TestCallbackTrack(t *testing.T) {
	t.Parallel()
	cb, err := tunehook.ParseCallback([]byte(seedComplete))
	if err != nil {
		t.Fatal(err)
	}
	tr := cb.Data.Data[1]
	at, err := tr.CreatedAt()
	if want := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC); err != nil || !at.Equal(want) || at.Location() != time.UTC {
		t.Errorf("CreatedAt: got %v, %v; want %v in UTC", at, err, want)
	}
	if got, want := tr.Length(), 228*time.Second+280*time.Millisecond; got != want {
		t.Errorf("Length: got %v, want %v", got, want)
	}
	tr.CreateTime = "1735689600000" // record-info's epoch milliseconds, by mistake
	if _, err := tr.CreatedAt(); err == nil || !strings.Contains(err.Error(), tr.ID) {
		t.Errorf("CreatedAt of %q: got %v, want an error naming the track", tr.CreateTime, err)
	}
}

func TestCodeMeaning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code int
		want string
	}{
		{tunehook.CodeSuccess, "success"},
		{tunehook.CodeCopyright, "lyrics contained copyrighted material"},
		{tunehook.CodeRefunded, "generation failed, credits refunded: try again"},
		{418, "undocumented code"},
	}
	for _, tt := range tests {
		if got := tunehook.CodeMeaning(tt.code); got != tt.want {
			t.Errorf("CodeMeaning(%d): got %q, want %q", tt.code, got, tt.want)
		}
	}
}

func TestCallbackTypeStages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		t            tunehook.CallbackType
		known, final bool
	}{
		{tunehook.CallbackText, true, false},
		{tunehook.CallbackFirst, true, false},
		{tunehook.CallbackComplete, true, true},
		{tunehook.CallbackError, true, true},
		{"Complete", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if tt.t.Known() != tt.known || tt.t.Final() != tt.final {
			t.Errorf("%q: got Known %v, Final %v; want %v, %v", tt.t, tt.t.Known(), tt.t.Final(), tt.known, tt.final)
		}
	}
}
