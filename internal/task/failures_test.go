package task

import (
	"strconv"
	"strings"
	"testing"
)

// The codes of the seed, their meaning as design.md's table gives it, and
// the record-info status each ends a task in.
func TestNewFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code       int
		wantCode   int
		wantInMsg  string // words of the seed's description
		wantStatus Status
	}{
		{400, 400, "copyrighted", StatusSensitiveWordError},
		{408, 408, "Timeout", StatusGenerateAudioFailed},
		{413, 413, "matches existing work", StatusGenerateAudioFailed},
		{500, 500, "unexpected error", StatusGenerateAudioFailed},
		{501, 501, "Audio generation failed", StatusGenerateAudioFailed},
		{531, 531, "credits have been refunded", StatusGenerateAudioFailed},
		// Codes outside the seed's table become 500.
		{200, 500, "unexpected error", StatusGenerateAudioFailed},
		{404, 500, "unexpected error", StatusGenerateAudioFailed},
		{0, 500, "unexpected error", StatusGenerateAudioFailed},
		{-1, 500, "unexpected error", StatusGenerateAudioFailed},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.code), func(t *testing.T) {
			t.Parallel()
			f := NewFailure(tt.code)
			if f.Code != tt.wantCode {
				t.Errorf("got code %d, want %d", f.Code, tt.wantCode)
			}
			if !strings.Contains(f.Message, tt.wantInMsg) {
				t.Errorf("got message %q, want it to contain %q", f.Message, tt.wantInMsg)
			}
			if got := f.Status(); got != tt.wantStatus {
				t.Errorf("got status %s, want %s", got, tt.wantStatus)
			}
			if got := f.Error(); !strings.Contains(got, strconv.Itoa(tt.wantCode)) || !strings.Contains(got, f.Message) {
				t.Errorf("got Error() %q, want the code %d and the message", got, tt.wantCode)
			}
		})
	}
}

// A Failure built by hand with a code outside the table (a stored failure
// of an older version, say) still ends in a failed status.
func TestFailureStatusUnknownCode(t *testing.T) {
	t.Parallel()
	f := &Failure{Code: 599, Message: "odd"}
	if got := f.Status(); got != StatusGenerateAudioFailed {
		t.Errorf("got status %s, want %s", got, StatusGenerateAudioFailed)
	}
}

func TestSimulatedFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		req      Request
		wantOK   bool
		wantCode int
		wantAt   Stage
	}{
		{name: "no token", req: Request{Prompt: "a calm song", Style: "jazz", Title: "T"}},
		{name: "in prompt", req: Request{Prompt: "a song tunehook:fail:501 please"}, wantOK: true, wantCode: 501, wantAt: StageText},
		{name: "in style", req: Request{Prompt: "a song", Style: "rock, tunehook:fail:408"}, wantOK: true, wantCode: 408, wantAt: StageText},
		{name: "in title", req: Request{Title: "tunehook:fail:531"}, wantOK: true, wantCode: 531, wantAt: StageText},
		{name: "after first", req: Request{Prompt: "tunehook:fail:400@first"}, wantOK: true, wantCode: 400, wantAt: StageComplete},
		{name: "after first in title", req: Request{Title: "x tunehook:fail:413@first y"}, wantOK: true, wantCode: 413, wantAt: StageComplete},
		{name: "unknown code ignored", req: Request{Prompt: "tunehook:fail:999"}},
		{name: "unknown code then a known one in a later field", req: Request{Prompt: "tunehook:fail:999", Style: "tunehook:fail:500"},
			wantOK: true, wantCode: 500, wantAt: StageText},
		{name: "unknown code then a known one in the same field", req: Request{Prompt: "tunehook:fail:999 tunehook:fail:501@first"},
			wantOK: true, wantCode: 501, wantAt: StageComplete},
		{name: "prompt before style", req: Request{Prompt: "tunehook:fail:501", Style: "tunehook:fail:400"}, wantOK: true, wantCode: 501, wantAt: StageText},
		{name: "two digits", req: Request{Prompt: "tunehook:fail:50"}},
		{name: "other case", req: Request{Prompt: "TUNEHOOK:FAIL:500"}},
		{name: "other fields are not read", req: Request{Prompt: "a song", NegativeTags: "tunehook:fail:500", PersonaID: "tunehook:fail:500"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, at, ok := tt.req.SimulatedFailure()
			if ok != tt.wantOK {
				t.Fatalf("got ok %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				if f != nil || at != "" {
					t.Errorf("got %v at %q, want no failure", f, at)
				}
				return
			}
			if f.Code != tt.wantCode || at != tt.wantAt {
				t.Errorf("got code %d at %s, want %d at %s", f.Code, at, tt.wantCode, tt.wantAt)
			}
			if want := NewFailure(tt.wantCode); *f != *want {
				t.Errorf("got %+v, want the seed's failure %+v", *f, *want)
			}
		})
	}
}

func TestSlow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  Request
		want bool
	}{
		{"no token", Request{Prompt: "a slow song", Style: "slow jazz", Title: "Slow"}, false},
		{"in prompt", Request{Prompt: "a song tunehook:slow please"}, true},
		{"in style", Request{Style: "rock, tunehook:slow"}, true},
		{"in title", Request{Title: "tunehook:slow"}, true},
		{"with a failure", Request{Prompt: "tunehook:slow tunehook:fail:501@first"}, true},
		{"other case", Request{Prompt: "TUNEHOOK:SLOW"}, false},
		{"other fields are not read", Request{Prompt: "a song", NegativeTags: "tunehook:slow", PersonaID: "tunehook:slow"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.req.Slow(); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
