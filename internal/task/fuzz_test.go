package task

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParseRequest feeds arbitrary bodies to the request parser: it must
// never panic, every refusal must be a client error of the envelope's
// vocabulary, and every accepted request must survive the trip through its
// canonical param (what the store keeps and the runner reads back).
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		validJSON,
		`{"customMode":true,"instrumental":false,"model":"V4","callBackUrl":"http://a.example/cb","prompt":"[Verse] hi","style":"rock","title":"T"}`,
		`{"customMode":true,"instrumental":true,"model":"V5_5","callBackUrl":"https://x.example","style":"jazz","title":"T","styleWeight":0.5,"vocalGender":"f"}`,
		`{"customMode":false,"instrumental":false,"model":"V5","callBackUrl":"https://x.example","prompt":"tunehook:fail:501@first"}`,
		`{"model":1e999}`, `null`, `[]`, `{"prompt":"\u0000"}`, `{"customMode":"yes"}`, `{} {}`, "",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(body)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Code != CodeInvalid && e.Code != CodeTooLarge) || e.Message == "" {
				t.Fatalf("ParseRequest(%q): got %v (%T), want a *task.Error with code 400 or 413", body, err, err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted request fails Validate: %v", err)
		}
		tk := &Task{ID: "t", Param: req.Param()}
		back, err := tk.Request()
		if err != nil {
			t.Fatalf("param %s does not decode: %v", tk.Param, err)
		}
		if !reflect.DeepEqual(back, req) {
			t.Fatalf("param round trip changed the request:\n got %+v\nwant %+v", back, req)
		}
		again, err := ParseRequest([]byte(req.Param()))
		if err != nil || !reflect.DeepEqual(again, req) {
			t.Fatalf("the canonical param is not itself a valid request: %v", err)
		}
	})
}
