package task

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var allStatuses = []Status{
	StatusPending, StatusTextSuccess, StatusFirstSuccess, StatusSuccess,
	StatusCreateTaskFailed, StatusGenerateAudioFailed, StatusCallbackException, StatusSensitiveWordError,
}

func TestNextStage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from      Status
		wantStage Stage
		wantTo    Status
		wantOK    bool
	}{
		{StatusPending, StageText, StatusTextSuccess, true},
		{StatusTextSuccess, StageFirst, StatusFirstSuccess, true},
		{StatusFirstSuccess, StageComplete, StatusSuccess, true},
		{StatusSuccess, "", "", false},
		{StatusCreateTaskFailed, "", "", false},
		{StatusGenerateAudioFailed, "", "", false},
		{StatusCallbackException, "", "", false},
		{StatusSensitiveWordError, "", "", false},
		{"", "", "", false},
		{"BOGUS", "", "", false},
	}
	for _, tt := range tests {
		t.Run(string(tt.from), func(t *testing.T) {
			t.Parallel()
			stage, to, ok := NextStage(tt.from)
			if stage != tt.wantStage || to != tt.wantTo || ok != tt.wantOK {
				t.Errorf("got (%q, %q, %v), want (%q, %q, %v)", stage, to, ok, tt.wantStage, tt.wantTo, tt.wantOK)
			}
		})
	}
}

// A successful task walks text, first, complete and stops in a final
// status; NextStage and Final agree at every step.
func TestNextStageWalk(t *testing.T) {
	t.Parallel()
	var stages []Stage
	s := StatusPending
	for {
		stage, to, ok := NextStage(s)
		if ok == s.Final() {
			t.Fatalf("status %s: got NextStage ok %v and Final %v, want them opposite", s, ok, s.Final())
		}
		if !ok {
			break
		}
		stages = append(stages, stage)
		s = to
	}
	if got, want := stages, []Stage{StageText, StageFirst, StageComplete}; !slices.Equal(got, want) {
		t.Errorf("got stages %v, want %v", got, want)
	}
	if s != StatusSuccess {
		t.Errorf("got final status %s, want %s", s, StatusSuccess)
	}
}

func TestStatusFinal(t *testing.T) {
	t.Parallel()
	want := map[Status]bool{
		StatusPending: false, StatusTextSuccess: false, StatusFirstSuccess: false,
		StatusSuccess: true, StatusCreateTaskFailed: true, StatusGenerateAudioFailed: true,
		StatusCallbackException: true, StatusSensitiveWordError: true,
	}
	for _, s := range allStatuses {
		if got := s.Final(); got != want[s] {
			t.Errorf("%s: got Final %v, want %v", s, got, want[s])
		}
	}
}

var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestTrackID(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, taskID := range []string{"2fac0000000000000000000000009f72", "2fac0000000000000000000000009f73", ""} {
		for index := range TracksPerTask {
			id := TrackID(taskID, index)
			if !uuidShape.MatchString(id) {
				t.Errorf("TrackID(%q, %d): got %q, want a lower-case UUID", taskID, index, id)
			}
			if again := TrackID(taskID, index); again != id {
				t.Errorf("TrackID(%q, %d): got %q then %q, want the same ID", taskID, index, id, again)
			}
			at := taskID + "#" + strconv.Itoa(index)
			if prev, dup := seen[id]; dup {
				t.Errorf("TrackID: got %q for both %s and %s, want distinct IDs", id, prev, at)
			}
			seen[id] = at
		}
	}
}

func TestOwnerOf(t *testing.T) {
	t.Parallel()
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	keys := []string{"key-one", "key-two", "key-one ", ""}
	seen := map[string]string{}
	for _, k := range keys {
		o := OwnerOf(k)
		if !hex32.MatchString(o) {
			t.Errorf("OwnerOf(%q): got %q, want 32 hex digits", k, o)
		}
		if k != "" && strings.Contains(o, k) {
			t.Errorf("OwnerOf(%q): got %q, want the key not to appear in it", k, o)
		}
		if again := OwnerOf(k); again != o {
			t.Errorf("OwnerOf(%q): got %q then %q, want it stable", k, o, again)
		}
		if prev, dup := seen[o]; dup {
			t.Errorf("OwnerOf: got %q for both %q and %q, want distinct owners", o, prev, k)
		}
		seen[o] = k
	}
}

func TestNewIDs(t *testing.T) {
	t.Parallel()
	taskID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	callbackID := regexp.MustCompile(`^msg_[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for range 100 {
		for _, c := range []struct {
			id    string
			shape *regexp.Regexp
		}{{NewTaskID(), taskID}, {NewCallbackID(), callbackID}} {
			if !c.shape.MatchString(c.id) {
				t.Errorf("got ID %q, want the shape %s", c.id, c.shape)
			}
			if seen[c.id] {
				t.Errorf("got ID %q twice, want fresh IDs", c.id)
			}
			seen[c.id] = true
		}
	}
}

// The chirp names the reference observed; the others are unconfirmed and
// only need to be chirp names.
func TestModelChirp(t *testing.T) {
	t.Parallel()
	observed := map[Model]string{"V3_5": "chirp-v3-5", "V4": "chirp-v4", "V5": "chirp-crow"}
	for _, m := range []Model{"V3_5", "V4", "V4_5", "V4_5PLUS", "V4_5ALL", "V5", "V5_5"} {
		if !m.Known() {
			t.Errorf("%s: got Known false, want true", m)
		}
		got := m.Chirp()
		if want, ok := observed[m]; ok && got != want {
			t.Errorf("%s: got chirp name %q, want %q", m, got, want)
		}
		if !strings.HasPrefix(got, "chirp-") {
			t.Errorf("%s: got chirp name %q, want a chirp- name", m, got)
		}
	}
	for _, m := range []Model{"", "V9", "v5", "chirp-crow"} {
		if m.Known() {
			t.Errorf("%q: got Known true, want false", m)
		}
	}
}
