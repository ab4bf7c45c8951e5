package openapitest_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/httpapi"
	"github.com/tunehook/tunehook/internal/openapitest"
)

func newValidator(t *testing.T) *openapitest.Validator {
	t.Helper()
	v, err := openapitest.New(httpapi.OpenAPIDocument())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A record-info answer at SUCCESS, as the server writes it.
const recordSuccess = `{"code":200,"msg":"success","data":{"taskId":"t1","parentMusicId":"","param":"{}",` +
	`"response":{"taskId":"t1","sunoData":[TRACK,TRACK]},"status":"SUCCESS","type":"chirp-crow",` +
	`"operationType":"generate","errorCode":null,"errorMessage":null,"createTime":1772624550000}}`

const recordTrack = `{"id":"a","audioUrl":"http://h/media/t1/a.wav","streamAudioUrl":"http://h/stream/t1/a",` +
	`"imageUrl":"http://h/media/t1/a.jpeg","prompt":"la","modelName":"chirp-crow","title":"T","tags":"rock",` +
	`"createTime":1772624679694,"duration":154.68}`

// record fills s's TRACK placeholders with recordTrack.
func record(s string) string {
	return strings.ReplaceAll(s, "TRACK", recordTrack)
}

// The validator accepts the server's shapes and rejects each kind of drift
// from the document: a wrong status, a wrong name, a wrong type, an
// undocumented code, a missing field.
func TestResponse(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		wantErr            string // empty: valid
	}{
		{"record", "GET", "/api/v1/generate/record-info?taskId=t1", 200, jsonHeader, record(recordSuccess), ""},
		{"API error", "GET", "/api/v1/generate/record-info", 200, jsonHeader, `{"code":400,"msg":"Please enter taskId.","data":null}`, ""},
		{"API error with HTTP status", "GET", "/api/v1/generate/record-info", 400, jsonHeader, `{"code":400,"msg":"Please enter taskId.","data":null}`, "status"},
		{"code the operation does not give", "GET", "/api/v1/generate/record-info", 200, jsonHeader, `{"code":413,"msg":"x","data":null}`, "must be one of 400, 401, 404, 430, 455, 500"},
		{"error with data", "GET", "/api/v1/generate/record-info", 200, jsonHeader, `{"code":404,"msg":"x","data":{}}`, "data"},
		{"snake_case in record-info", "GET", "/api/v1/generate/record-info?taskId=t1", 200, jsonHeader,
			strings.Replace(record(recordSuccess), `"audioUrl"`, `"audio_url"`, 1), "audio_url"},
		{"createTime as a string", "GET", "/api/v1/generate/record-info?taskId=t1", 200, jsonHeader,
			strings.Replace(record(recordSuccess), `1772624550000`, `"2025-01-01 00:00:00"`, 1), "createTime"},
		{"unknown status", "GET", "/api/v1/generate/record-info?taskId=t1", 200, jsonHeader,
			strings.Replace(record(recordSuccess), `"SUCCESS"`, `"DONE"`, 1), "status"},
		{"SUCCESS with one track", "GET", "/api/v1/generate/record-info?taskId=t1", 200, jsonHeader,
			strings.Replace(recordSuccess, "TRACK,TRACK", recordTrack, 1), "sunoData"},
		{"failure without its code", "GET", "/api/v1/generate/record-info?taskId=t1", 200, jsonHeader,
			strings.Replace(record(recordSuccess), `"SUCCESS"`, `"GENERATE_AUDIO_FAILED"`, 1), "errorCode"},
		{"submit", "POST", "/api/v1/generate", 200, http.Header{"Content-Type": {"application/json"}, "Idempotent-Replayed": {"true"}},
			`{"code":200,"msg":"success","data":{"taskId":"t1"}}`, ""},
		{"rate limited", "POST", "/api/v1/generate", 200, http.Header{"Content-Type": {"application/json"}, "Retry-After": {"3"}},
			`{"code":430,"msg":"Your call frequency is too high. Please try again later.","data":null}`, ""},
		{"Retry-After not in seconds", "POST", "/api/v1/generate", 200, http.Header{"Content-Type": {"application/json"}, "Retry-After": {"soon"}},
			`{"code":430,"msg":"x","data":null}`, "Retry-After"},
		{"submit without taskId", "POST", "/api/v1/generate", 200, jsonHeader, `{"code":200,"msg":"success","data":{}}`, "taskId"},
		{"credit", "GET", "/api/v1/generate/credit", 200, jsonHeader, `{"code":200,"msg":"success","data":2147483647}`, ""},
		{"negative credit", "GET", "/api/v1/generate/credit", 200, jsonHeader, `{"code":200,"msg":"success","data":-10}`, "data"},
		{"delivery log", "GET", "/api/v1/callbacks?taskId=t1", 200, jsonHeader, `{"code":200,"msg":"success","data":{"taskId":"t1","callbacks":[` +
			`{"id":"msg_1","taskId":"t1","callbackType":"complete","callBackUrl":"https://example.com/cb","state":"delivered","attempts":2,` +
			`"nextAttemptTime":null,"createTime":1,"finishTime":2,"history":[` +
			`{"attempt":1,"series":1,"manual":false,"time":1,"durationMs":15000,"statusCode":null,"error":"timeout","response":""},` +
			`{"attempt":2,"series":1,"manual":false,"time":2,"durationMs":3,"statusCode":200,"error":null,"response":"ok"}]}]}}`, ""},
		{"delivery log, unknown state", "POST", "/api/v1/callbacks/msg_1/redeliver", 200, jsonHeader, `{"code":200,"msg":"success","data":` +
			`{"id":"msg_1","taskId":"t1","callbackType":"complete","callBackUrl":"https://example.com/cb","state":"retrying","attempts":0,` +
			`"nextAttemptTime":5,"createTime":1,"finishTime":null,"history":[]}}`, "state"},
		{"events", "GET", "/api/v1/generate/events?taskId=t1", 200, http.Header{"Content-Type": {"text/event-stream"}}, "event: end\ndata: {}\n\n", ""},
		{"events as JSON", "GET", "/api/v1/generate/events?taskId=t1", 200, jsonHeader, record(recordSuccess), "code"},
		{"ready", "GET", "/readyz", 200, jsonHeader, `{"code":200,"msg":"ready","data":null}`, ""},
		{"not ready", "GET", "/readyz", 503, jsonHeader, `{"code":503,"msg":"The database is not reachable.","data":null}`, ""},
		{"not ready, code 500", "GET", "/readyz", 503, jsonHeader, `{"code":500,"msg":"x","data":null}`, "503"},
		{"metrics", "GET", "/metrics", 200, http.Header{"Content-Type": {"text/plain; version=0.0.4; charset=utf-8"}}, "up 1\n", ""},
		{"media", "GET", "/media/t1/a.wav", 200, http.Header{"Content-Type": {"audio/wav"}}, "RIFF", ""},
		{"media of an undocumented type", "GET", "/media/t1/a.wav", 200, http.Header{"Content-Type": {"text/html"}}, "<p>", "Content-Type"},
		{"media part without Content-Range", "GET", "/media/t1/a.wav", 206, http.Header{"Content-Type": {"audio/wav"}}, "RI", "Content-Range"},
		{"unknown API path", "GET", "/api/v1/nothing", 200, jsonHeader, `{"code":404,"msg":"Not found: GET /api/v1/nothing","data":null}`, ""},
		{"unknown API path in maintenance", "GET", "/api/v1/nothing", 200, jsonHeader, `{"code":455,"msg":"x","data":null}`, ""},
		{"unknown path, code 455", "GET", "/nothing", 404, jsonHeader, `{"code":455,"msg":"x","data":null}`, "want code 404"},
		{"unknown API path, HTTP 404", "GET", "/api/v1/nothing", 404, jsonHeader, `{"code":404,"msg":"x","data":null}`, "HTTP 404, want 200"},
		{"unknown path", "GET", "/nothing", 404, jsonHeader, `{"code":404,"msg":"Not found: GET /nothing","data":null}`, ""},
		{"other method, 405", "DELETE", "/healthz", 405, jsonHeader, `{"code":405,"msg":"x","data":null}`, "want 404"},
		{"head", "HEAD", "/media/t1/a.wav", 200, http.Header{"Content-Type": {"audio/wav"}}, "", ""},
		{"head of an unknown path", "HEAD", "/nothing", 200, jsonHeader, "", "want 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, "http://127.0.0.1:8080"+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = v.Response(req, tt.status, tt.header, []byte(tt.body))
			checkErr(t, err, tt.body, tt.wantErr)
		})
	}
}

// Callbacks are checked against the webhook of their callbackType,
// signature headers included.
func TestCallback(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	track := `{"id":"a","audio_url":"http://h/media/t1/a.wav","stream_audio_url":"http://h/stream/t1/a",` +
		`"image_url":"http://h/media/t1/a.jpeg","prompt":"la","model_name":"chirp-crow","title":"T","tags":"rock",` +
		`"createTime":"2025-01-01 00:00:00","duration":198.44}`
	body := func(code int, ct, data string) string {
		return `{"code":` + strconv.Itoa(code) + `,"msg":"m","data":{"callbackType":"` + ct + `","task_id":"t1","data":` + data + `}}`
	}
	signed := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"tunehook/1.0"}}
	tunehook.Sign(signed, []byte("key"), "msg_1", "t1", time.Unix(1772624550, 0), []byte(body(200, "text", "[]")))
	plain := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"tunehook/1.0"}}
	tests := []struct {
		name    string
		header  http.Header
		body    string
		wantErr string
	}{
		{"text, signed", signed, body(200, "text", "[]"), ""},
		{"first", plain, body(200, "first", "["+track+"]"), ""},
		{"complete", plain, body(200, "complete", "["+track+","+track+"]"), ""},
		{"error", plain, body(531, "error", "null"), ""},
		{"text with a track", plain, body(200, "text", "["+track+"]"), "data"},
		{"complete with one track", plain, body(200, "complete", "["+track+"]"), "data"},
		{"error with an undocumented code", plain, body(502, "error", "null"), "code"},
		{"error with data", plain, body(501, "error", "[]"), "data"},
		{"camelCase track", plain, body(200, "first", "["+strings.Replace(track, "audio_url", "audioUrl", 1)+"]"), "audio"},
		{"createTime in milliseconds", plain, body(200, "first", "["+strings.Replace(track, `"2025-01-01 00:00:00"`, "1735689600000", 1)+"]"), "createTime"},
		{"createTime in RFC 3339", plain, body(200, "first", "["+strings.Replace(track, `2025-01-01 00:00:00`, "2025-01-01T00:00:00Z", 1)+"]"), "createTime"},
		{"unknown callbackType", plain, body(200, "done", "[]"), "done"},
		{"no User-Agent", http.Header{"Content-Type": {"application/json"}}, body(200, "text", "[]"), "User-Agent"},
		{"bad signature", http.Header{"Content-Type": {"application/json"}, "User-Agent": {"tunehook/1.0"}, "Webhook-Signature": {"sha256=abc"}},
			body(200, "text", "[]"), "webhook-signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := v.Callback(tt.header, []byte(tt.body))
			checkErr(t, err, tt.body, tt.wantErr)
		})
	}
}

// checkErr checks that err is nil when wantErr is empty, and otherwise
// says wantErr outside the quote of body that errors carry.
func checkErr(t *testing.T, err error, body, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("got %v, want valid", err)
	case wantErr != "" && err == nil:
		t.Errorf("got valid, want an error about %q", wantErr)
	case wantErr != "" && !strings.Contains(strings.ReplaceAll(err.Error(), body[:min(len(body), 300)], ""), wantErr):
		t.Errorf("got %v, want an error about %q", err, wantErr)
	}
}
