package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"strings"
	"unicode/utf8"
)

// Request is the body of POST /api/v1/generate. Pointers mark the fields
// whose absence differs from their zero value. Marshalled, it is the
// canonical "param" record-info shows: the client's fields, in a fixed order,
// without anything unknown.
type Request struct {
	CustomMode          *bool    `json:"customMode"`
	Instrumental        *bool    `json:"instrumental"`
	Model               Model    `json:"model"`
	CallBackURL         string   `json:"callBackUrl"`
	Prompt              string   `json:"prompt,omitempty"`
	Style               string   `json:"style,omitempty"`
	Title               string   `json:"title,omitempty"`
	NegativeTags        string   `json:"negativeTags,omitempty"`
	VocalGender         string   `json:"vocalGender,omitempty"`
	StyleWeight         *float64 `json:"styleWeight,omitempty"`
	WeirdnessConstraint *float64 `json:"weirdnessConstraint,omitempty"`
	AudioWeight         *float64 `json:"audioWeight,omitempty"`
	PersonaID           string   `json:"personaId,omitempty"`
	PersonaModel        string   `json:"personaModel,omitempty"`
}

// Limits of fields whose limit does not depend on the model.
const (
	descriptionMax  = 500 // prompt in non-custom mode
	negativeTagsMax = 500
	personaIDMax    = 200
	callBackURLMax  = 2048
)

// IsCustom reports whether the request is in custom mode.
func (r Request) IsCustom() bool { return r.CustomMode != nil && *r.CustomMode }

// IsInstrumental reports whether the request asks for no vocals.
func (r Request) IsInstrumental() bool { return r.Instrumental != nil && *r.Instrumental }

// ParseRequest decodes and validates a generate request. Every error is an
// *Error that names the field at fault.
func ParseRequest(body []byte) (Request, error) {
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] != '{' {
		return Request{}, Errorf(CodeInvalid, "The request body must be a JSON object.")
	}
	var r Request
	if err := unmarshalStrict(body, &r); err != nil {
		return Request{}, jsonError(err)
	}
	if err := r.Validate(); err != nil {
		return Request{}, err
	}
	return r, nil
}

// Param returns r as the canonical JSON string record-info shows as "param".
func (r Request) Param() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("marshal request: %v", err)) // only plain fields: cannot happen
	}
	return string(b)
}

// Validate checks every field against the reference's rules. The first
// problem found is returned as an *Error: 413 for a field over its limit,
// 400 for anything else.
func (r Request) Validate() error {
	if strings.TrimSpace(r.CallBackURL) == "" {
		return Errorf(CodeInvalid, "Please enter callBackUrl.")
	}
	if err := validateCallbackURL(r.CallBackURL); err != nil {
		return err
	}
	if r.Model == "" {
		return Errorf(CodeInvalid, "Please enter model.")
	}
	m, ok := models[r.Model]
	if !ok {
		return Errorf(CodeInvalid, "model %q is not supported; use one of %s.", truncate(string(r.Model), 40), modelList())
	}
	if r.CustomMode == nil {
		return Errorf(CodeInvalid, "Please enter customMode (true or false).")
	}
	if r.Instrumental == nil {
		return Errorf(CodeInvalid, "Please enter instrumental (true or false).")
	}

	promptMax := descriptionMax
	if r.IsCustom() {
		promptMax = m.promptMax
	}
	switch {
	case r.IsCustom():
		if blank(r.Style) {
			return Errorf(CodeInvalid, "Please enter style: it is required in custom mode.")
		}
		if blank(r.Title) {
			return Errorf(CodeInvalid, "Please enter title: it is required in custom mode.")
		}
		if !r.IsInstrumental() && blank(r.Prompt) {
			return Errorf(CodeInvalid, "Please enter prompt: in custom mode with vocals it holds the lyrics.")
		}
	default:
		if blank(r.Prompt) {
			return Errorf(CodeInvalid, "Please enter prompt: in non-custom mode it describes the song.")
		}
	}
	for _, f := range []struct {
		name  string
		value string
		max   int
	}{
		{"prompt", r.Prompt, promptMax},
		{"style", r.Style, m.styleMax},
		{"title", r.Title, m.titleMax},
		{"negativeTags", r.NegativeTags, negativeTagsMax},
		{"personaId", r.PersonaID, personaIDMax},
	} {
		if strings.ContainsRune(f.value, 0) {
			// Not storable in PostgreSQL's text, and never meant.
			return Errorf(CodeInvalid, "%s must not contain NUL characters.", f.name)
		}
		if n := utf8.RuneCountInString(f.value); n > f.max {
			return Errorf(CodeTooLarge, "%s is too long: %d characters, the limit is %d for model %s%s.",
				f.name, n, f.max, r.Model, modeNote(f.name, r.IsCustom()))
		}
	}

	if r.VocalGender != "" && r.VocalGender != "m" && r.VocalGender != "f" {
		return Errorf(CodeInvalid, `vocalGender must be "m" or "f".`)
	}
	for _, w := range []struct {
		name  string
		value *float64
	}{
		{"styleWeight", r.StyleWeight},
		{"weirdnessConstraint", r.WeirdnessConstraint},
		{"audioWeight", r.AudioWeight},
	} {
		if w.value != nil && (*w.value < 0 || *w.value > 1) {
			return Errorf(CodeInvalid, "%s must be between 0.00 and 1.00.", w.name)
		}
	}
	if r.PersonaModel != "" && r.PersonaModel != "style_persona" && r.PersonaModel != "voice_persona" {
		return Errorf(CodeInvalid, `personaModel must be "style_persona" or "voice_persona".`)
	}
	return nil
}

func modeNote(field string, custom bool) string {
	if field != "prompt" {
		return ""
	}
	if custom {
		return " in custom mode"
	}
	return " in non-custom mode"
}

func validateCallbackURL(raw string) error {
	if n := len(raw); n > callBackURLMax {
		return Errorf(CodeTooLarge, "callBackUrl is too long: %d bytes, the limit is %d.", n, callBackURLMax)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return Errorf(CodeInvalid, "callBackUrl must be an absolute http or https URL.")
	}
	if u.User != nil {
		return Errorf(CodeInvalid, "callBackUrl must not contain credentials.")
	}
	return nil
}

// unmarshalStrict decodes exactly one JSON value from b into v. Unknown
// fields are ignored, as the providers ignore them; trailing data is not.
func unmarshalStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

// jsonError turns a decoding error into a client error that says where the
// body went wrong.
func jsonError(err error) *Error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return Errorf(CodeInvalid, "The request body must be a JSON object.")
	case errors.As(err, &typeErr) && typeErr.Type.Kind() == reflect.Float64 && strings.HasPrefix(typeErr.Value, "number"):
		return Errorf(CodeInvalid, "%s is out of range; use a number between 0.00 and 1.00.", typeErr.Field)
	case errors.As(err, &typeErr):
		return Errorf(CodeInvalid, "%s must be %s, not a JSON %s.", typeErr.Field, jsonKind(typeErr.Type.Kind()), jsonValueKind(typeErr.Value))
	case errors.As(err, &syntaxErr):
		return Errorf(CodeInvalid, "The request body is not valid JSON: %s at byte %d.", syntaxErr.Error(), syntaxErr.Offset)
	case errors.Is(err, io.EOF):
		return Errorf(CodeInvalid, "The request body is empty; send a JSON object.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(CodeInvalid, "The request body is not valid JSON: it ends too early.")
	}
	return Errorf(CodeInvalid, "The request body is not valid JSON: %s.", err.Error())
}

// jsonKind names what a field of kind k takes. Pointer fields report their
// element's kind: the decoder follows the pointer before it fails.
func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "a boolean"
	case reflect.Float64:
		return "a number"
	}
	return "a string"
}

// jsonValueKind names the JSON value a client sent, as the decoder reports
// it ("bool", "number", "string", "array", "object").
func jsonValueKind(v string) string {
	if v == "bool" {
		return "boolean"
	}
	return v
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
