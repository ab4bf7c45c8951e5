package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tunehook/tunehook/internal/task"
)

func TestAuth(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const wantScheme = "Authorization: Bearer <API key>"
	tests := []struct {
		name     string
		header   []string // Authorization values; none: no header
		wantCode int
		wantMsg  string
	}{
		{"no header", nil, task.CodeUnauthorized, wantScheme},
		{"empty header", []string{""}, task.CodeUnauthorized, wantScheme},
		{"basic scheme", []string{"Basic dGVzdDp0ZXN0"}, task.CodeUnauthorized, wantScheme},
		{"key without scheme", []string{testKey}, task.CodeUnauthorized, wantScheme},
		{"scheme without key", []string{"Bearer"}, task.CodeUnauthorized, wantScheme},
		{"scheme and blank key", []string{"Bearer   "}, task.CodeUnauthorized, wantScheme},
		{"unknown key", []string{"Bearer wrong-key"}, task.CodeUnauthorized, "Invalid API key."},
		{"prefix of a key", []string{"Bearer " + testKey[:len(testKey)-1]}, task.CodeUnauthorized, "Invalid API key."},
		{"key with a suffix", []string{"Bearer " + testKey + "x"}, task.CodeUnauthorized, "Invalid API key."},
		{"two keys", []string{"Bearer " + testKey + " " + otherKey}, task.CodeUnauthorized, "Invalid API key."},
		{"first key", []string{"Bearer " + testKey}, task.CodeOK, "success"},
		{"second key", []string{"Bearer " + otherKey}, task.CodeOK, "success"},
		{"scheme in lower case", []string{"bearer " + testKey}, task.CodeOK, "success"},
		{"extra spaces", []string{"  Bearer    " + testKey + "  "}, task.CodeOK, "success"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{"Authorization": tt.header}
			if tt.header == nil {
				h = http.Header{}
			}
			for _, route := range []struct{ method, path, body string }{
				{http.MethodPost, "/api/v1/generate", validBody},
				{http.MethodGet, "/api/v1/generate/record-info?taskId=0123", ""},
			} {
				e := decodeEnvelope(t, s.doHeader(t, route.method, route.path, h, []byte(route.body)), http.StatusOK)
				want := tt.wantCode
				if want == task.CodeOK && route.method == http.MethodGet {
					want = task.CodeNotFound // authorised, and the task does not exist
				}
				if e.Code != want {
					t.Errorf("%s %s: got code %d msg %q, want code %d", route.method, route.path, e.Code, e.Msg, want)
				}
				if want == task.CodeUnauthorized && !strings.Contains(e.Msg, tt.wantMsg) {
					t.Errorf("%s %s: got msg %q, want it to contain %q", route.method, route.path, e.Msg, tt.wantMsg)
				}
			}
		})
	}
}
