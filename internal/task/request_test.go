package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"
)

// validJSON is a valid request as a client writes it.
const validJSON = `{"customMode":false,"instrumental":false,"model":"V5","callBackUrl":"https://example.com/cb","prompt":"a song"}`

// absent marks a field that an override removes from the request body.
var absent = struct{}{}

func nonCustomBody() map[string]any {
	return map[string]any{
		"customMode": false, "instrumental": false, "model": "V5",
		"callBackUrl": "https://example.com/cb", "prompt": "a calm song about the sea",
	}
}

func customBody() map[string]any {
	return map[string]any{
		"customMode": true, "instrumental": false, "model": "V5",
		"callBackUrl": "https://example.com/cb",
		"prompt":      "[Verse] Night city lights", "style": "rock", "title": "Iron Man",
	}
}

// requestBody returns base with overrides applied, as JSON.
func requestBody(t *testing.T, base map[string]any, overrides map[string]any) []byte {
	t.Helper()
	m := maps.Clone(base)
	for k, v := range overrides {
		if v == absent {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type requestCase struct {
	name      string
	base      func() map[string]any
	set       map[string]any
	raw       string // the body as it is, instead of base and set
	wantCode  int    // 0: valid
	wantInMsg string // a part of the message: the field at fault
	wantMsg   string // the exact message, when the reference fixes it
}

// limitCases returns, for a field with a limit, a case at the limit (valid)
// and one a character beyond (413).
func limitCases(name string, base func() map[string]any, set map[string]any, field string, limit int) []requestCase {
	at, over := maps.Clone(set), maps.Clone(set)
	at[field] = strings.Repeat("a", limit)
	over[field] = strings.Repeat("a", limit+1)
	return []requestCase{
		{name: name + " at limit", base: base, set: at},
		{name: name + " over limit", base: base, set: over, wantCode: CodeTooLarge, wantInMsg: field},
	}
}

func requestCases() []requestCase {
	cases := []requestCase{
		{name: "non-custom valid", base: nonCustomBody},
		{name: "custom valid", base: customBody},
		{name: "custom instrumental without prompt", base: customBody, set: map[string]any{"instrumental": true, "prompt": absent}},
		{name: "non-custom ignores style and title", base: nonCustomBody, set: map[string]any{"style": "jazz", "title": ""}},

		// Required fields.
		{name: "callBackUrl missing", base: nonCustomBody, set: map[string]any{"callBackUrl": absent},
			wantCode: CodeInvalid, wantMsg: "Please enter callBackUrl."},
		{name: "callBackUrl blank", base: nonCustomBody, set: map[string]any{"callBackUrl": "  "},
			wantCode: CodeInvalid, wantMsg: "Please enter callBackUrl."},
		{name: "callBackUrl null", base: nonCustomBody, set: map[string]any{"callBackUrl": nil},
			wantCode: CodeInvalid, wantMsg: "Please enter callBackUrl."},
		{name: "model missing", base: nonCustomBody, set: map[string]any{"model": absent}, wantCode: CodeInvalid, wantInMsg: "model"},
		{name: "customMode missing", base: nonCustomBody, set: map[string]any{"customMode": absent}, wantCode: CodeInvalid, wantInMsg: "customMode"},
		{name: "customMode null", base: nonCustomBody, set: map[string]any{"customMode": nil}, wantCode: CodeInvalid, wantInMsg: "customMode"},
		{name: "instrumental missing", base: nonCustomBody, set: map[string]any{"instrumental": absent}, wantCode: CodeInvalid, wantInMsg: "instrumental"},
		{name: "non-custom prompt missing", base: nonCustomBody, set: map[string]any{"prompt": absent}, wantCode: CodeInvalid, wantInMsg: "prompt"},
		{name: "non-custom prompt null", base: nonCustomBody, set: map[string]any{"prompt": nil}, wantCode: CodeInvalid, wantInMsg: "prompt"},
		{name: "non-custom prompt blank", base: nonCustomBody, set: map[string]any{"prompt": " \n\t"}, wantCode: CodeInvalid, wantInMsg: "prompt"},
		{name: "non-custom instrumental prompt missing", base: nonCustomBody, set: map[string]any{"instrumental": true, "prompt": absent},
			wantCode: CodeInvalid, wantInMsg: "prompt"},
		{name: "custom style missing", base: customBody, set: map[string]any{"style": absent}, wantCode: CodeInvalid, wantInMsg: "style"},
		{name: "custom style blank", base: customBody, set: map[string]any{"style": " "}, wantCode: CodeInvalid, wantInMsg: "style"},
		{name: "custom title missing", base: customBody, set: map[string]any{"title": absent}, wantCode: CodeInvalid, wantInMsg: "title"},
		{name: "custom instrumental title missing", base: customBody, set: map[string]any{"instrumental": true, "title": absent},
			wantCode: CodeInvalid, wantInMsg: "title"},
		{name: "custom vocals prompt missing", base: customBody, set: map[string]any{"prompt": absent}, wantCode: CodeInvalid, wantInMsg: "prompt"},

		// Models.
		{name: "model unknown", base: nonCustomBody, set: map[string]any{"model": "V9"}, wantCode: CodeInvalid, wantInMsg: "model"},
		{name: "model lower case", base: nonCustomBody, set: map[string]any{"model": "v5"}, wantCode: CodeInvalid, wantInMsg: "model"},
		{name: "model legacy V3_5", base: nonCustomBody, set: map[string]any{"model": "V3_5"}},

		// Characters, not bytes, are counted.
		{name: "prompt 500 two-byte characters", base: nonCustomBody, set: map[string]any{"prompt": strings.Repeat("é", 500)}},
		{name: "prompt 501 two-byte characters", base: nonCustomBody, set: map[string]any{"prompt": strings.Repeat("é", 501)},
			wantCode: CodeTooLarge, wantInMsg: "prompt"},
		{name: "title 100 four-byte characters", base: customBody, set: map[string]any{"title": strings.Repeat("🎵", 100)}},
		{name: "title 101 four-byte characters", base: customBody, set: map[string]any{"title": strings.Repeat("🎵", 101)},
			wantCode: CodeTooLarge, wantInMsg: "title"},

		// Enumerations.
		{name: "vocalGender m", base: nonCustomBody, set: map[string]any{"vocalGender": "m"}},
		{name: "vocalGender f", base: nonCustomBody, set: map[string]any{"vocalGender": "f"}},
		{name: "vocalGender empty is absent", base: nonCustomBody, set: map[string]any{"vocalGender": ""}},
		{name: "vocalGender x", base: nonCustomBody, set: map[string]any{"vocalGender": "x"}, wantCode: CodeInvalid, wantInMsg: "vocalGender"},
		{name: "vocalGender M", base: nonCustomBody, set: map[string]any{"vocalGender": "M"}, wantCode: CodeInvalid, wantInMsg: "vocalGender"},
		{name: "personaModel style_persona", base: nonCustomBody, set: map[string]any{"personaModel": "style_persona"}},
		{name: "personaModel voice_persona", base: nonCustomBody, set: map[string]any{"personaModel": "voice_persona"}},
		{name: "personaModel other", base: nonCustomBody, set: map[string]any{"personaModel": "persona"}, wantCode: CodeInvalid, wantInMsg: "personaModel"},

		// callBackUrl.
		{name: "callBackUrl http", base: nonCustomBody, set: map[string]any{"callBackUrl": "http://example.com:8080/cb?x=1"}},
		{name: "callBackUrl ftp", base: nonCustomBody, set: map[string]any{"callBackUrl": "ftp://example.com/cb"}, wantCode: CodeInvalid, wantInMsg: "callBackUrl"},
		{name: "callBackUrl no scheme", base: nonCustomBody, set: map[string]any{"callBackUrl": "example.com/cb"}, wantCode: CodeInvalid, wantInMsg: "callBackUrl"},
		{name: "callBackUrl no host", base: nonCustomBody, set: map[string]any{"callBackUrl": "https:///cb"}, wantCode: CodeInvalid, wantInMsg: "callBackUrl"},
		{name: "callBackUrl port only", base: nonCustomBody, set: map[string]any{"callBackUrl": "http://:8080/cb"}, wantCode: CodeInvalid, wantInMsg: "callBackUrl"},
		{name: "callBackUrl unparsable", base: nonCustomBody, set: map[string]any{"callBackUrl": "http://exa mple.com/%zz"}, wantCode: CodeInvalid, wantInMsg: "callBackUrl"},
		{name: "callBackUrl credentials", base: nonCustomBody, set: map[string]any{"callBackUrl": "https://user:secret@example.com/cb"},
			wantCode: CodeInvalid, wantInMsg: "callBackUrl"},
		{name: "callBackUrl 2048 bytes", base: nonCustomBody, set: map[string]any{"callBackUrl": longURL(2048)}},
		{name: "callBackUrl 2049 bytes", base: nonCustomBody, set: map[string]any{"callBackUrl": longURL(2049)},
			wantCode: CodeTooLarge, wantInMsg: "callBackUrl"},

		// Wrong JSON types, one per kind of field.
		{name: "customMode string", base: nonCustomBody, set: map[string]any{"customMode": "true"}, wantCode: CodeInvalid, wantInMsg: "customMode"},
		{name: "instrumental number", base: nonCustomBody, set: map[string]any{"instrumental": 1}, wantCode: CodeInvalid, wantInMsg: "instrumental"},
		{name: "model number", base: nonCustomBody, set: map[string]any{"model": 5}, wantCode: CodeInvalid, wantInMsg: "model"},
		{name: "callBackUrl bool", base: nonCustomBody, set: map[string]any{"callBackUrl": true}, wantCode: CodeInvalid, wantInMsg: "callBackUrl"},
		{name: "prompt number", base: nonCustomBody, set: map[string]any{"prompt": 1}, wantCode: CodeInvalid, wantInMsg: "prompt"},
		{name: "style array", base: customBody, set: map[string]any{"style": []any{"rock"}}, wantCode: CodeInvalid, wantInMsg: "style"},
		{name: "title object", base: customBody, set: map[string]any{"title": map[string]any{}}, wantCode: CodeInvalid, wantInMsg: "title"},
		{name: "negativeTags bool", base: nonCustomBody, set: map[string]any{"negativeTags": false}, wantCode: CodeInvalid, wantInMsg: "negativeTags"},
		{name: "vocalGender number", base: nonCustomBody, set: map[string]any{"vocalGender": 1}, wantCode: CodeInvalid, wantInMsg: "vocalGender"},
		{name: "styleWeight string", base: nonCustomBody, set: map[string]any{"styleWeight": "0.5"}, wantCode: CodeInvalid, wantInMsg: "styleWeight"},
		{name: "weirdnessConstraint bool", base: nonCustomBody, set: map[string]any{"weirdnessConstraint": true}, wantCode: CodeInvalid, wantInMsg: "weirdnessConstraint"},
		{name: "audioWeight array", base: nonCustomBody, set: map[string]any{"audioWeight": []any{}}, wantCode: CodeInvalid, wantInMsg: "audioWeight"},
		{name: "personaId number", base: nonCustomBody, set: map[string]any{"personaId": 7}, wantCode: CodeInvalid, wantInMsg: "personaId"},
		{name: "personaModel bool", base: nonCustomBody, set: map[string]any{"personaModel": true}, wantCode: CodeInvalid, wantInMsg: "personaModel"},

		// Unknown fields are ignored, null fields are absent.
		{name: "unknown fields", base: nonCustomBody, set: map[string]any{"foo": 1, "bar": map[string]any{"x": []any{1}}}},
		{name: "null optional fields", base: nonCustomBody, set: map[string]any{
			"style": nil, "title": nil, "negativeTags": nil, "vocalGender": nil, "styleWeight": nil,
			"weirdnessConstraint": nil, "audioWeight": nil, "personaId": nil, "personaModel": nil,
		}},

		// Bodies that are not one JSON object.
		{name: "empty body", raw: "", wantCode: CodeInvalid, wantInMsg: "request body"},
		{name: "blank body", raw: " \n", wantCode: CodeInvalid, wantInMsg: "request body"},
		{name: "malformed", raw: `{"model":}`, wantCode: CodeInvalid, wantInMsg: "request body"},
		{name: "truncated", raw: `{"model":"V5"`, wantCode: CodeInvalid, wantInMsg: "request body"},
		{name: "array", raw: `[{"model":"V5"}]`, wantCode: CodeInvalid, wantInMsg: "JSON object"},
		{name: "string", raw: `"V5"`, wantCode: CodeInvalid, wantInMsg: "JSON object"},
		{name: "number", raw: `42`, wantCode: CodeInvalid, wantInMsg: "JSON object"},
		{name: "null", raw: `null`, wantCode: CodeInvalid, wantInMsg: "JSON object"},
		{name: "NUL in prompt", raw: strings.Replace(validJSON, `"a song"`, `"a\u0000song"`, 1), wantCode: CodeInvalid, wantInMsg: "prompt"},
		{name: "NUL in style", raw: strings.Replace(validJSON, "{", `{"style":"rock\u0000",`, 1), wantCode: CodeInvalid, wantInMsg: "style"},
		{name: "weight out of float range", raw: strings.Replace(validJSON, "{", `{"styleWeight":1e999,`, 1),
			wantCode: CodeInvalid, wantMsg: "styleWeight is out of range; use a number between 0.00 and 1.00."},
		{name: "bool named as boolean", raw: strings.Replace(validJSON, "{", `{"prompt":true,`, 1),
			wantCode: CodeInvalid, wantMsg: "prompt must be a string, not a JSON boolean."},
		{name: "trailing garbage", raw: validJSON + "x", wantCode: CodeInvalid, wantInMsg: "request body"},
		{name: "two objects", raw: validJSON + "{}", wantCode: CodeInvalid, wantInMsg: "request body"},
		{name: "trailing whitespace", raw: validJSON + "\n\t "},
	}

	// Weights: the bounds pass, a hundredth beyond fails.
	for _, w := range []string{"styleWeight", "weirdnessConstraint", "audioWeight"} {
		for _, v := range []float64{0, 0.5, 1} {
			cases = append(cases, requestCase{name: fmt.Sprintf("%s %v", w, v), base: nonCustomBody, set: map[string]any{w: v}})
		}
		for _, v := range []float64{-0.01, 1.01} {
			cases = append(cases, requestCase{name: fmt.Sprintf("%s %v", w, v), base: nonCustomBody, set: map[string]any{w: v},
				wantCode: CodeInvalid, wantInMsg: w})
		}
	}

	// Limits of the reference, per model family.
	for _, m := range []string{"V3_5", "V4", "V4_5", "V4_5PLUS", "V4_5ALL", "V5", "V5_5"} {
		promptMax, styleMax, titleMax := 5000, 1000, 100
		switch m {
		case "V3_5", "V4":
			promptMax, styleMax, titleMax = 3000, 200, 80
		case "V4_5ALL":
			titleMax = 80
		}
		model := map[string]any{"model": m}
		cases = append(cases, limitCases(m+" non-custom prompt", nonCustomBody, model, "prompt", 500)...)
		cases = append(cases, limitCases(m+" custom prompt", customBody, model, "prompt", promptMax)...)
		cases = append(cases, limitCases(m+" style", customBody, model, "style", styleMax)...)
		cases = append(cases, limitCases(m+" title", customBody, model, "title", titleMax)...)
		cases = append(cases, limitCases(m+" negativeTags", nonCustomBody, model, "negativeTags", 500)...)
		cases = append(cases, limitCases(m+" personaId", nonCustomBody, model, "personaId", 200)...)
	}
	return cases
}

func longURL(n int) string {
	const prefix = "https://example.com/"
	return prefix + strings.Repeat("a", n-len(prefix))
}

func TestParseRequest(t *testing.T) {
	t.Parallel()
	for _, tt := range requestCases() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(tt.raw)
			if tt.base != nil {
				body = requestBody(t, tt.base(), tt.set)
			}
			req, err := ParseRequest(body)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("got error %v, want none (body %.200s)", err, body)
				}
				if req.CallBackURL == "" || req.Model == "" || req.CustomMode == nil || req.Instrumental == nil {
					t.Errorf("got %+v, want the required fields set", req)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got error %v (%T), want a *task.Error", err, err)
			}
			if e.Code != tt.wantCode {
				t.Errorf("got code %d, want %d (message %q)", e.Code, tt.wantCode, e.Message)
			}
			if tt.wantMsg != "" && e.Message != tt.wantMsg {
				t.Errorf("got message %q, want %q", e.Message, tt.wantMsg)
			}
			if !strings.Contains(e.Message, tt.wantInMsg) {
				t.Errorf("got message %q, want it to name %q", e.Message, tt.wantInMsg)
			}
			if req != (Request{}) {
				t.Errorf("got request %+v with the error, want the zero Request", req)
			}
		})
	}
}

func TestRequestParam(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want string // empty: only the round trip is checked
	}{
		{
			name: "fixed order, unknown fields dropped, absent optional fields omitted",
			body: `{"prompt":"a calm song","x-extra":true,"callBackUrl":"https://example.com/cb","model":"V5","instrumental":true,"customMode":false,"style":null}`,
			want: `{"customMode":false,"instrumental":true,"model":"V5","callBackUrl":"https://example.com/cb","prompt":"a calm song"}`,
		},
		{
			name: "every field, zero weights kept",
			body: `{"personaModel":"voice_persona","personaId":"p1","audioWeight":0,"weirdnessConstraint":1,"styleWeight":0.65,` +
				`"vocalGender":"f","negativeTags":"metal","title":"T","style":"jazz","prompt":"la la","callBackUrl":"http://example.com/cb",` +
				`"model":"V4_5","instrumental":false,"customMode":true}`,
			want: `{"customMode":true,"instrumental":false,"model":"V4_5","callBackUrl":"http://example.com/cb","prompt":"la la",` +
				`"style":"jazz","title":"T","negativeTags":"metal","vocalGender":"f","styleWeight":0.65,"weirdnessConstraint":1,` +
				`"audioWeight":0,"personaId":"p1","personaModel":"voice_persona"}`,
		},
		{
			name: "escapes and non-ASCII characters survive",
			body: `{"customMode":false,"instrumental":false,"model":"V5","callBackUrl":"https://example.com/cb?a=1&b=2","prompt":"<rock> & \"roll\"\n\u00fc 🎵"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := ParseRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			param := req.Param()
			if tt.want != "" && param != tt.want {
				t.Errorf("got param %s, want %s", param, tt.want)
			}
			// The param decodes back into the same request, and is a fixed point.
			tk := &Task{ID: "t1", Param: param}
			back, err := tk.Request()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, req) {
				t.Errorf("got %+v from Task.Request, want %+v", back, req)
			}
			if again := back.Param(); again != param {
				t.Errorf("got param %s after a round trip, want %s", again, param)
			}
		})
	}
}

func TestTaskRequestInvalidParam(t *testing.T) {
	t.Parallel()
	tk := &Task{ID: "t42", Param: `{"customMode":`}
	if _, err := tk.Request(); err == nil || !strings.Contains(err.Error(), "t42") {
		t.Errorf("got error %v, want one naming task t42", err)
	}
}
