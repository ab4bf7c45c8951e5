package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tunehook/tunehook/internal/metrics"
	"github.com/tunehook/tunehook/internal/openapitest"
	"github.com/tunehook/tunehook/internal/task"
)

// loadValidator loads openapi.json once for all the tests.
var loadValidator = sync.OnceValues(func() (*openapitest.Validator, error) {
	return openapitest.New(openAPIDocument)
})

// apiValidator returns the validator of openapi.json; doHeader checks
// every answer of the test server with it.
func apiValidator(t testing.TB) *openapitest.Validator {
	t.Helper()
	v, err := loadValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The document is served without a key, exactly as embedded, and it is a
// valid OpenAPI 3.1 document with the four callbacks as webhooks.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	a := s.do(t, http.MethodGet, "/openapi.json", "", nil)
	if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got HTTP %d, Content-Type %q; want 200 application/json", a.status, a.header.Get("Content-Type"))
	}
	if !bytes.Equal(a.body, openAPIDocument) {
		t.Errorf("got %d bytes, want the %d bytes of openapi.json", len(a.body), len(openAPIDocument))
	}
	v, err := openapitest.New(a.body)
	if err != nil {
		t.Fatalf("the served document: %v", err)
	}
	doc := v.Doc()
	if !doc.IsOpenAPI31OrLater() {
		t.Errorf("got OpenAPI %q, want 3.1", doc.OpenAPI)
	}
	if got := slices.Sorted(maps.Keys(doc.Webhooks)); !slices.Equal(got, []string{"complete", "error", "first", "text"}) {
		t.Errorf("got webhooks %v, want complete, error, first, text", got)
	}
	if !bytes.Equal(OpenAPIDocument(), openAPIDocument) {
		t.Error("OpenAPIDocument() differs from openapi.json")
	}
}

// Every error path of the API answers as the document says. doHeader
// validates each answer; this test drives one request per path.
func TestOpenAPIErrorPaths(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	theirs := s.createTask(t, otherKey, validBody)
	const api = http.StatusOK // the HTTP status of every answer under /api/
	long := func(field string, n int) string {
		return fmt.Sprintf(`{"customMode":true,"instrumental":true,"model":"V4","callBackUrl":"https://example.com/cb",`+
			`"style":"rock","title":"t","%s":%q}`, field, strings.Repeat("x", n))
	}
	tests := []struct {
		name, method, path, key, body string
		wantStatus, wantCode          int
		wantMsg                       string
	}{
		{"no key", "POST", "/api/v1/generate", "", validBody, api, 401, "Authentication required"},
		{"wrong key", "GET", "/api/v1/generate/record-info?taskId=" + theirs, "wrong-key", "", api, 401, "Invalid API key."},
		{"unknown API path", "GET", "/api/v1/nothing", testKey, "", api, 404, "Not found: GET /api/v1/nothing"},
		{"unknown path", "GET", "/nothing", "", "", http.StatusNotFound, 404, "Not found: GET /nothing"},
		{"unknown task", "GET", "/api/v1/generate/record-info?taskId=" + task.NewTaskID(), testKey, "", api, 404, "Task not found."},
		{"another key's task", "GET", "/api/v1/generate/record-info?taskId=" + theirs, testKey, "", api, 404, "Task not found."},
		{"unknown media", "GET", "/media/" + theirs + "/none.wav", "", "", http.StatusNotFound, 404, "Not found."},
		{"unfinished track", "GET", "/stream/" + theirs + "/none", "", "", http.StatusNotFound, 404, "Not found."},
		// No 405: a known path with another method answers 404.
		{"API path, other method", "PUT", "/api/v1/generate", testKey, validBody, api, 404, "Not found: PUT /api/v1/generate"},
		{"path, other method", "POST", "/openapi.json", "", "", http.StatusNotFound, 404, "Not found: POST /openapi.json"},
		{"missing taskId", "GET", "/api/v1/generate/record-info", testKey, "", api, 400, "Please enter taskId."},
		{"malformed JSON", "POST", "/api/v1/generate", testKey, `{"model":`, api, 400, "not valid JSON"},
		{"missing callBackUrl", "POST", "/api/v1/generate", testKey, `{"customMode":false,"instrumental":false,"model":"V5","prompt":"x"}`,
			api, 400, "Please enter callBackUrl."},
		{"unknown model", "POST", "/api/v1/generate", testKey, strings.Replace(validBody, `"V5"`, `"V9"`, 1), api, 400, "model"},
		{"weight out of range", "POST", "/api/v1/generate", testKey, strings.Replace(validBody, `0.5`, `1.5`, 1), api, 400, "styleWeight"},
		{"prompt too long", "POST", "/api/v1/generate", testKey, long("prompt", 3001), api, 413, "prompt is too long"},
		{"title too long", "POST", "/api/v1/generate", testKey, long("title", 81), api, 413, "title is too long"},
		{"body too big", "POST", "/api/v1/generate", testKey, string(bodyOfSize(t, 1<<20+1)), api, 413, "larger than 1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantError(t, s.do(t, tt.method, tt.path, tt.key, []byte(tt.body)), tt.wantStatus, tt.wantCode, tt.wantMsg)
		})
	}
}

// Every operation of the document is routed: none falls through to the
// handler of unknown paths. The requests carry no key: a routed /api/
// operation answers 401.
func TestOpenAPIRoutesServed(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *Config) {
		c.Keys = []string{testKey}
		c.Metrics = metrics.New(c.Store, nil).Handler()
	})
	param := regexp.MustCompile(`\{[^}]+\}`)
	doc := apiValidator(t).Doc()
	for _, path := range doc.Paths.InMatchingOrder() {
		for method := range doc.Paths.Value(path).Operations() {
			op := method + " " + path
			// Not s.do: the handler of unknown paths answers a documented
			// path against the document.
			req, err := http.NewRequest(method, s.url+param.ReplaceAllString(path, "x"), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e envelope
			_ = json.NewDecoder(resp.Body).Decode(&e) // not every answer is an envelope
			resp.Body.Close()
			if strings.HasPrefix(e.Msg, "Not found: ") {
				t.Errorf("%s: documented but not routed (answered %q)", op, e.Msg)
			}
		}
	}
}

// The document's GenerateRequest agrees with task.ParseRequest: on the
// models, the required fields, the enums and ranges, and on every length
// limit of every model in both modes.
func TestOpenAPIGenerateRequest(t *testing.T) {
	t.Parallel()
	v := apiValidator(t)
	var models []string
	for _, m := range v.Doc().Components.Schemas["Model"].Value.Enum {
		models = append(models, m.(string))
	}
	if len(models) == 0 {
		t.Fatal("the document lists no model")
	}
	check := func(t *testing.T, body map[string]any) (schemaErr, parseErr error) {
		t.Helper()
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		_, parseErr = task.ParseRequest(b)
		return v.Schema("GenerateRequest", b), parseErr
	}
	limitRE := regexp.MustCompile(`the limit is (\d+)`)
	for _, model := range models {
		if !task.Model(model).Known() {
			t.Errorf("the document lists model %s, which the server refuses", model)
		}
		for _, custom := range []bool{false, true} {
			base := func() map[string]any {
				b := map[string]any{"customMode": custom, "instrumental": false, "model": model,
					"callBackUrl": "https://example.com/cb", "prompt": "a song"}
				if custom {
					b["style"], b["title"] = "rock", "A Title"
				}
				return b
			}
			for _, field := range []string{"prompt", "style", "title", "negativeTags", "personaId"} {
				t.Run(fmt.Sprintf("%s custom=%v %s", model, custom, field), func(t *testing.T) {
					// The server's message says the limit.
					body := base()
					body[field] = strings.Repeat("é", 10000)
					_, err := check(t, body)
					m := limitRE.FindStringSubmatch(fmt.Sprint(err))
					if e, ok := err.(*task.Error); !ok || e.Code != task.CodeTooLarge || m == nil {
						t.Fatalf("got %v, want a 413 that states the limit", err)
					}
					limit, _ := strconv.Atoi(m[1])
					body[field] = strings.Repeat("é", limit)
					if schemaErr, parseErr := check(t, body); schemaErr != nil || parseErr != nil {
						t.Errorf("%d characters: got schema %v, server %v; want both to accept", limit, schemaErr, parseErr)
					}
					body[field] = strings.Repeat("é", limit+1)
					if schemaErr, _ := check(t, body); schemaErr == nil {
						t.Errorf("%d characters: the schema accepts what the server refuses (limit %d)", limit+1, limit)
					}
				})
			}
		}
	}

	refused := []struct {
		name   string
		change func(map[string]any)
	}{
		{"no callBackUrl", func(b map[string]any) { delete(b, "callBackUrl") }},
		{"ftp callBackUrl", func(b map[string]any) { b["callBackUrl"] = "ftp://example.com/cb" }},
		{"relative callBackUrl", func(b map[string]any) { b["callBackUrl"] = "/cb" }},
		{"no model", func(b map[string]any) { delete(b, "model") }},
		{"unknown model", func(b map[string]any) { b["model"] = "V9" }},
		{"no customMode", func(b map[string]any) { delete(b, "customMode") }},
		{"no instrumental", func(b map[string]any) { delete(b, "instrumental") }},
		{"no prompt", func(b map[string]any) { delete(b, "prompt") }},
		{"blank prompt", func(b map[string]any) { b["prompt"] = " \t" }},
		{"NUL in prompt", func(b map[string]any) { b["prompt"] = "a\x00b" }},
		{"custom without style", func(b map[string]any) { b["customMode"], b["title"], b["prompt"] = true, "T", "la" }},
		{"custom without title", func(b map[string]any) { b["customMode"], b["style"], b["prompt"] = true, "rock", "la" }},
		{"custom with vocals, no lyrics", func(b map[string]any) {
			b["customMode"], b["style"], b["title"] = true, "rock", "T"
			delete(b, "prompt")
		}},
		{"vocalGender", func(b map[string]any) { b["vocalGender"] = "x" }},
		{"styleWeight over 1", func(b map[string]any) { b["styleWeight"] = 1.01 }},
		{"audioWeight under 0", func(b map[string]any) { b["audioWeight"] = -0.01 }},
		{"weirdnessConstraint as a string", func(b map[string]any) { b["weirdnessConstraint"] = "0.5" }},
		{"personaModel", func(b map[string]any) { b["personaModel"] = "x" }},
		{"customMode as a string", func(b map[string]any) { b["customMode"] = "false" }},
	}
	for _, tt := range refused {
		body := map[string]any{"customMode": false, "instrumental": false, "model": "V5",
			"callBackUrl": "https://example.com/cb", "prompt": "a song"}
		tt.change(body)
		schemaErr, parseErr := check(t, body)
		if parseErr == nil {
			t.Errorf("%s: the server accepts %v", tt.name, body)
		}
		if schemaErr == nil {
			t.Errorf("%s: the schema accepts what the server refuses (%v)", tt.name, parseErr)
		}
	}

	var accepted map[string]any
	if err := json.Unmarshal([]byte(validBody), &accepted); err != nil {
		t.Fatal(err)
	}
	instrumental := map[string]any{"customMode": true, "instrumental": true, "model": "V4_5ALL",
		"callBackUrl": "HTTPS://example.com:8443/cb?x=1", "style": "ambient", "title": "Drift",
		"negativeTags": "metal", "vocalGender": "f", "styleWeight": 0, "weirdnessConstraint": 1, "audioWeight": 0.25,
		"personaId": "p-1", "personaModel": "voice_persona"}
	for _, body := range []map[string]any{accepted, instrumental} {
		if schemaErr, parseErr := check(t, body); schemaErr != nil || parseErr != nil {
			t.Errorf("%v: got schema %v, server %v; want both to accept", body, schemaErr, parseErr)
		}
	}
}
