package synth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"testing"
	"time"

	"github.com/go-audio/wav"

	"github.com/tunehook/tunehook/internal/media"
	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

var _ worker.Engine = (*Engine)(nil)

// engine returns an Engine on a fresh media directory that makes tracks
// of d (0: 2 to 4 minutes each).
func engine(t *testing.T, d time.Duration) *Engine {
	t.Helper()
	dir, err := media.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Media: dir, Duration: d})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// render runs the text stage of a task, then renders its track index.
func render(t *testing.T, e *Engine, id string, req task.Request, index int) (*task.Task, task.Track) {
	t.Helper()
	tk := &task.Task{ID: id, Param: req.Param()}
	txt, err := e.Text(context.Background(), tk, req)
	if err != nil {
		t.Fatalf("Text: %v", err)
	}
	tk.Text = txt
	tr, err := e.Render(context.Background(), tk, req, index)
	if err != nil {
		t.Fatalf("Render track %d: %v", index, err)
	}
	return tk, tr
}

func TestNew(t *testing.T) {
	t.Parallel()
	dir, err := media.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"default duration", Config{Media: dir}, false},
		{"fixed duration", Config{Media: dir, Duration: 30 * time.Second}, false},
		{"longest", Config{Media: dir, Duration: MaxDuration}, false},
		{"no media", Config{Duration: time.Second}, true},
		{"negative", Config{Media: dir, Duration: -time.Second}, true},
		{"too long", Config{Media: dir, Duration: MaxDuration + time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Errorf("got error %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

func TestRenderTrack(t *testing.T) {
	t.Parallel()
	e := engine(t, 2*time.Second+4*time.Millisecond) // rounds to 2.00 s
	for index := range task.TracksPerTask {
		tk, tr := render(t, e, "0123456789abcdef0123456789abcdef", request(false, false, "a pop song"), index)
		id := task.TrackID(tk.ID, index)
		want := task.Track{ID: id, TaskID: tk.ID, Index: index, AudioKey: tk.ID + "/" + id + ".wav", ImageKey: tk.ID + "/" + id + ".jpeg", Duration: 2}
		if tr != want {
			t.Errorf("track %d: got %+v, want %+v", index, tr, want)
		}
		for _, key := range []string{tr.AudioKey, tr.ImageKey} {
			if len(readObject(t, e.media, key)) == 0 {
				t.Errorf("%s is empty", key)
			}
		}
	}
}

func TestRenderIndexOutOfRange(t *testing.T) {
	t.Parallel()
	e := engine(t, time.Second)
	for _, index := range []int{-1, task.TracksPerTask} {
		if _, err := e.Render(context.Background(), &task.Task{ID: "t"}, request(false, false, "rock"), index); err == nil {
			t.Errorf("index %d: got no error, want one", index)
		}
	}
}

// The same task renders to the same bytes, on another engine too; its two
// tracks, and another task's, sound different.
func TestRenderDeterministicAndDistinct(t *testing.T) {
	t.Parallel()
	req := request(false, false, "a dreamy synthwave song about neon rain")
	a, b := engine(t, 8*time.Second), engine(t, 8*time.Second)
	var audio, covers [][]byte
	var prints [][]int
	for _, run := range []struct {
		e     *Engine
		id    string
		index int
	}{{a, "task-one", 0}, {b, "task-one", 0}, {a, "task-one", 1}, {a, "task-two", 0}} {
		_, tr := render(t, run.e, run.id, req, run.index)
		audio = append(audio, readObject(t, run.e.media, tr.AudioKey))
		covers = append(covers, readObject(t, run.e.media, tr.ImageKey))
		prints = append(prints, fingerprint(decodeWAV(t, run.e.media, tr.AudioKey)))
	}
	if !bytes.Equal(audio[0], audio[1]) || !bytes.Equal(covers[0], covers[1]) {
		t.Error("the same track rendered twice differs")
	}
	for i, name := range map[int]string{2: "the other track of the task", 3: "a track of another task"} {
		if bytes.Equal(audio[0], audio[i]) || bytes.Equal(covers[0], covers[i]) {
			t.Errorf("%s has the same audio or cover", name)
		}
		if s := similarity(prints[0], prints[i]); s > 0.5 {
			t.Errorf("%s: fingerprints agree in %.0f%% of places, want at most 50%%", name, 100*s)
		}
	}
}

func TestRenderCancelled(t *testing.T) {
	t.Parallel()
	e := engine(t, 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tk := &task.Task{ID: "cancelled", Text: task.Text{Title: "T", Tags: "rock"}}
	_, err := e.Render(ctx, tk, request(false, false, "rock"), 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if _, err := e.media.Open(context.Background(), tk.ID+"/"+task.TrackID(tk.ID, 0)+".wav"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open the audio of a cancelled render: got %v, want fs.ErrNotExist", err)
	}
}

var errDiskFull = errors.New("disk full")

// fullStore is a media store whose writes fail.
type fullStore struct{}

func (fullStore) Put(_ context.Context, _ string, write func(io.Writer) error) error {
	return write(fullWriter{})
}

func (fullStore) Open(context.Context, string) (*media.Object, error) { return nil, fs.ErrNotExist }

type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) { return 0, errDiskFull }

// A failing store is not the task's fault: the error is transient, not a
// *task.Failure.
func TestRenderMediaFailure(t *testing.T) {
	t.Parallel()
	e, err := New(Config{Media: fullStore{}, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Render(context.Background(), &task.Task{ID: "t"}, request(false, false, "rock"), 0)
	var failure *task.Failure
	if !errors.Is(err, errDiskFull) || errors.As(err, &failure) {
		t.Errorf("got %v, want an error wrapping %v that is no *task.Failure", err, errDiskFull)
	}
}

// Without a fixed duration, tracks last 2 to 4 minutes, usually different
// ones; the reported duration is the file's, to the sample. Only the
// headers are decoded: the rest of the audio is checked on short tracks.
func TestRenderDefaultDuration(t *testing.T) {
	t.Parallel()
	if testing.Short() || raceEnabled {
		// Minutes of audio, and nothing concurrent for the race detector.
		t.Skip("renders two full-length tracks")
	}
	e := engine(t, 0)
	var durations []float64
	for index := range task.TracksPerTask {
		_, tr := render(t, e, "default-duration", request(false, false, "a folk song"), index)
		d := wav.NewDecoder(bytes.NewReader(readObject(t, e.media, tr.AudioKey)))
		if err := d.FwdToPCM(); err != nil {
			t.Fatalf("track %d: not a valid WAV file: %v", index, err)
		}
		if d.SampleRate != 44100 || d.NumChans != 2 || d.BitDepth != 16 {
			t.Errorf("track %d: got %d Hz, %d channels, %d bits, want 44100 Hz, 2 channels, 16 bits", index, d.SampleRate, d.NumChans, d.BitDepth)
		}
		if tr.Duration < 120 || tr.Duration > 240 {
			t.Errorf("track %d: got %v s, want 120 to 240", index, tr.Duration)
		}
		if got, want := d.PCMLen(), int64(tr.Duration*100+0.5)*441*4; got != want {
			t.Errorf("track %d: got %d bytes of PCM, want %d for %v s", index, got, want, tr.Duration)
		}
		durations = append(durations, tr.Duration)
	}
	if durations[0] == durations[1] {
		t.Errorf("both tracks last %v s, want different lengths", durations[0])
	}
}
