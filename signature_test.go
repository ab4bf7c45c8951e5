package tunehook_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
)

// The expected values were computed with openssl, independently of this
// package; the whsec_ case is the Standard Webhooks specification's example.
func TestSign(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		secret, id, taskID   string
		ts                   int64
		body                 string
		wantLegacy, wantStdV string
	}{
		{
			name: "plain secret", secret: "secret-key", id: "msg_abc", taskID: "task123", ts: 1700000000,
			body:       `{"code":200}`,
			wantLegacy: "qorpIib9fwI+Ldz/oAfiyIF4IQRPYOoUlQieUYczwtQ=",
			wantStdV:   "v1,aKBh9ajV+X+Z0yx9/hJSaS9EIeflhAFcQ0AnPfxVaEQ=",
		},
		{
			name: "standard webhooks secret", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			id: "msg_p5jXN8AQM9LWM0D4loKWxJek", taskID: "t", ts: 1614265330,
			body:     `{"test": 2432232314}`,
			wantStdV: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			tunehook.Sign(h, tunehook.SigningKey(tt.secret), tt.id, tt.taskID, time.Unix(tt.ts, 0), []byte(tt.body))
			if tt.wantLegacy != "" {
				if got := h.Get(tunehook.HeaderSignature); got != tt.wantLegacy {
					t.Errorf("%s = %q, want %q", tunehook.HeaderSignature, got, tt.wantLegacy)
				}
			}
			if got := h[tunehook.HeaderWebhookSignature]; len(got) != 1 || got[0] != tt.wantStdV {
				t.Errorf("%s = %q, want %q", tunehook.HeaderWebhookSignature, got, tt.wantStdV)
			}
			want := map[string]string{
				tunehook.HeaderTimestamp:        strconv.FormatInt(tt.ts, 10),
				tunehook.HeaderWebhookTimestamp: strconv.FormatInt(tt.ts, 10),
				tunehook.HeaderWebhookID:        tt.id,
			}
			for name, w := range want {
				// Standard Webhooks names are sent lower-case, as written.
				if got := h[name]; len(got) != 1 || got[0] != w {
					t.Errorf("%s = %q, want %q", name, got, w)
				}
			}
		})
	}
}

// With several keys the Standard Webhooks header carries one signature per
// key, in order, and the legacy header the first key's.
func TestSignKeys(t *testing.T) {
	t.Parallel()
	newKey, oldKey := []byte("new-key"), []byte("old-key")
	ts := time.Unix(1700000000, 0)
	body := []byte(`{"code":200}`)

	both, onlyNew, onlyOld := http.Header{}, http.Header{}, http.Header{}
	tunehook.SignKeys(both, [][]byte{newKey, oldKey}, "msg_1", "task123", ts, body)
	tunehook.Sign(onlyNew, newKey, "msg_1", "task123", ts, body)
	tunehook.Sign(onlyOld, oldKey, "msg_1", "task123", ts, body)

	want := onlyNew[tunehook.HeaderWebhookSignature][0] + " " + onlyOld[tunehook.HeaderWebhookSignature][0]
	if got := both[tunehook.HeaderWebhookSignature]; len(got) != 1 || got[0] != want {
		t.Errorf("%s: got %q, want %q", tunehook.HeaderWebhookSignature, got, want)
	}
	if got, want := both.Get(tunehook.HeaderSignature), onlyNew.Get(tunehook.HeaderSignature); got != want {
		t.Errorf("%s: got %q, want the first key's %q", tunehook.HeaderSignature, got, want)
	}

	none := http.Header{}
	tunehook.SignKeys(none, nil, "msg_1", "task123", ts, body)
	if len(none) != 0 {
		t.Errorf("no keys: got headers %v, want none", none)
	}
}
