package tunehook_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tunehook/tunehook"
)

// FuzzVerify checks that Verify never panics on any headers and body, that
// every error it returns is one of its sentinels, and that what SignKeys
// signs always verifies, in both schemes, whatever the id, task, body, key
// and time.
func FuzzVerify(f *testing.F) {
	good := signed([][]byte{newKey})
	f.Add(good.Get(tunehook.HeaderWebhookID), good[tunehook.HeaderWebhookTimestamp][0], good[tunehook.HeaderWebhookSignature][0],
		good.Get(tunehook.HeaderTimestamp), good.Get(tunehook.HeaderSignature), signedBody, "new-key", int64(1700000000))
	f.Add("", "", "", "1700000000", good.Get(tunehook.HeaderSignature), signedBody, "new-key", int64(1700000000))
	f.Add("msg", "-9223372036854775808", "v1,x v1a,y ,z", "", "", `{"data":{"task_id":1}}`, "", int64(-1))
	f.Add("msg", "9223372036854775807", "v1,", "99999999999999999999", "=", `null`, "whsec_", int64(9223372036854775807))
	f.Add("", "", "", "", "", "", "k", int64(0))
	f.Fuzz(func(t *testing.T, id, stamp, sigs, legacyStamp, legacySig, body, secret string, now int64) {
		h := http.Header{}
		for name, v := range map[string]string{
			tunehook.HeaderWebhookID: id, tunehook.HeaderWebhookTimestamp: stamp, tunehook.HeaderWebhookSignature: sigs,
			tunehook.HeaderTimestamp: legacyStamp, tunehook.HeaderSignature: legacySig,
		} {
			if v != "" {
				h[name] = []string{v}
			}
		}
		keys := [][]byte{tunehook.SigningKey(secret)}
		opts := tunehook.VerifyOptions{Now: func() time.Time { return time.Unix(now, 0) }}
		_, err := tunehook.Verify(h, []byte(body), keys, opts)
		sentinels := []error{tunehook.ErrNoKeys, tunehook.ErrNoSignature, tunehook.ErrMalformedHeader,
			tunehook.ErrBadSignature, tunehook.ErrStaleTimestamp, tunehook.ErrFutureTimestamp}
		if err != nil && !isAny(err, sentinels) {
			t.Fatalf("got error %v, want one wrapping a sentinel", err)
		}

		// What is signed verifies, with the signer's key among others.
		ts := time.Unix(now, 0)
		keys = [][]byte{[]byte("another key"), tunehook.SigningKey(secret)}
		if id != "" {
			h := http.Header{}
			tunehook.SignKeys(h, keys[1:], id, "task", ts, []byte(body))
			if scheme, err := tunehook.Verify(h, []byte(body), keys, opts); scheme != tunehook.SchemeStandard || err != nil {
				t.Fatalf("standard round trip: got %q, %v", scheme, err)
			}
		}
		if taskID := id; taskID != "" && utf8.ValidString(taskID) {
			cb, err := json.Marshal(tunehook.Callback{Data: tunehook.CallbackData{TaskID: taskID}})
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			tunehook.SignKeys(h, keys[1:], "", taskID, ts, cb)
			for _, name := range standardHeaders {
				delete(h, name)
			}
			if scheme, err := tunehook.Verify(h, cb, keys, opts); scheme != tunehook.SchemeLegacy || err != nil {
				t.Fatalf("legacy round trip: got %q, %v", scheme, err)
			}
		}
	})
}

func isAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// FuzzParseCallback checks that ParseCallback never panics, that what it
// accepts has the shape it promises, and that it reads its own output back
// unchanged.
func FuzzParseCallback(f *testing.F) {
	f.Add([]byte(seedComplete))
	f.Add([]byte(signedBody))
	f.Add([]byte(`{"code":501,"msg":"Audio generation failed.","data":{"callbackType":"error","task_id":"t1","data":null}}`))
	f.Add([]byte(`{"code":200,"msg":"ok","data":{"callbackType":"first","task_id":"t1","data":[{"duration":1e308,"createTime":"x"}]}}`))
	f.Add([]byte(`{"code":200,"data":{"callbackType":"complete","task_id":"t1","data":{}}}`))
	f.Add([]byte(`{"Code":200,"DATA":{"CALLBACKTYPE":"text","Task_ID":"\ud800","data":[]},"code":1}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		cb, err := tunehook.ParseCallback(body)
		if err != nil {
			if cb != nil || !errors.Is(err, tunehook.ErrInvalidCallback) {
				t.Fatalf("got %+v, %v; want nil and ErrInvalidCallback", cb, err)
			}
			return
		}
		if cb.Data.TaskID == "" || !cb.Data.CallbackType.Known() || (!cb.Failed() && cb.Data.Data == nil) {
			t.Fatalf("accepted a callback of the wrong shape: %+v", cb)
		}
		if (cb.Err() != nil) != cb.Failed() {
			t.Fatalf("Err() %v disagrees with Failed() %v", cb.Err(), cb.Failed())
		}
		for _, tr := range cb.Data.Data {
			tr.CreatedAt()
			tr.Length()
		}
		again, err := json.Marshal(cb)
		if err != nil {
			t.Fatal(err)
		}
		cb2, err := tunehook.ParseCallback(again)
		if err != nil || !reflect.DeepEqual(cb, cb2) {
			t.Fatalf("re-parsing %s: got %+v, %v; want %+v", again, cb2, err, cb)
		}
	})
}
