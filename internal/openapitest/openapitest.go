// Package openapitest holds tests to the API's OpenAPI document
// (internal/httpapi/openapi.json): it validates answers of the API and
// callback requests against it, so that the document and the server cannot
// drift apart unnoticed.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Validator checks HTTP exchanges against one OpenAPI 3.1 document. It is
// safe for concurrent use.
//
// kin-openapi checks operations, statuses, content types and headers. The
// bodies it would check by compiling the JSON Schema 2020-12 of the body
// for each validation, milliseconds of CPU each; the Validator compiles each
// schema of the document once instead, with the validator kin-openapi
// uses.
type Validator struct {
	doc    *openapi3.T
	router routers.Router

	mu       sync.Mutex
	compiler *jsonschema.Compiler          // guarded by mu
	schemas  map[string]*jsonschema.Schema // by JSON pointer; guarded by mu
}

// docURL is where the document's schemas are compiled from.
const docURL = "file:///openapi.json"

// New loads doc and returns its validator. It fails when doc is not an
// OpenAPI 3.1 document that validates.
func New(doc []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load OpenAPI document: %w", err)
	}
	if !strings.HasPrefix(t.OpenAPI, "3.1.") {
		return nil, fmt.Errorf("OpenAPI document is version %q, want 3.1.x", t.OpenAPI)
	}
	if err := t.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate OpenAPI document: %w", err)
	}
	router, err := gorillamux.NewRouter(t)
	if err != nil {
		return nil, fmt.Errorf("route OpenAPI document: %w", err)
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("decode OpenAPI document: %w", err)
	}
	compiler := jsonschema.NewCompiler()
	compiler.DefaultDraft(jsonschema.Draft2020) // the dialect of OpenAPI 3.1
	if err := compiler.AddResource(docURL, raw); err != nil {
		return nil, fmt.Errorf("add OpenAPI document: %w", err)
	}
	return &Validator{doc: t, router: router, compiler: compiler, schemas: map[string]*jsonschema.Schema{}}, nil
}

// Doc returns the loaded document.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// Response checks the answer to req (status, header, body read whole)
// against the operation of req's method and path: the status must be one
// the operation lists, and the headers and body must match its schemas.
// A request that no operation matches must get the 404 error envelope the
// document's description promises (455 under /api/v1/ in maintenance):
// HTTP status 200 under /api/, 404 elsewhere.
//
// HEAD is answered as GET without the body: its status and headers are
// checked against the GET operation.
func (v *Validator) Response(req *http.Request, status int, header http.Header, body []byte) error {
	head := req.Method == http.MethodHead
	if head {
		// openapi3filter skips HEAD; check it as GET, the body excepted.
		req = req.Clone(req.Context())
		req.Method = http.MethodGet
	}
	route, params, err := v.router.FindRoute(req)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		return v.notFound(req, status, header, body, head)
	}
	if err != nil {
		return fmt.Errorf("%s %s: find operation: %w", req.Method, req.URL.Path, err)
	}
	fail := func(err error) error {
		return fmt.Errorf("%s %s: HTTP %d %.300s: %w", req.Method, req.URL.Path, status, body, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fail(err)
	}
	ptr, resp := responsePointer(route, status)
	if resp == nil || len(resp.Content) == 0 {
		return nil // a status without content: nothing more to check
	}
	ct := header.Get("Content-Type")
	key, mt := mediaType(resp.Content, ct)
	if mt == nil {
		return fail(fmt.Errorf("Content-Type %q is not one the document lists", ct))
	}
	if head || mt.Schema == nil {
		return nil
	}
	if err := v.validate(ptr+"/content/"+escape(key)+"/schema", ct, body); err != nil {
		return fail(err)
	}
	return nil
}

// responsePointer returns the JSON pointer of the response of route for
// status, and the response; nil when the operation lists none for it.
func responsePointer(route *routers.Route, status int) (string, *openapi3.Response) {
	responses := route.Operation.Responses
	for _, code := range []string{strconv.Itoa(status), fmt.Sprintf("%dXX", status/100), "default"} {
		ref := responses.Value(code)
		if ref == nil {
			continue
		}
		if ref.Ref != "" {
			return ref.Ref, ref.Value
		}
		return "#/paths/" + escape(route.Path) + "/" + strings.ToLower(route.Method) + "/responses/" + code, ref.Value
	}
	return "", nil
}

// mediaType returns the entry of content that Content-Type ct matches, and
// its key.
func mediaType(content openapi3.Content, ct string) (string, *openapi3.MediaType) {
	mt := content.Get(ct)
	for key, m := range content {
		if m == mt {
			return key, mt
		}
	}
	return "", nil
}

// escape escapes one token of a JSON pointer (RFC 6901) for a URL
// fragment.
func escape(token string) string {
	token = strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
	return url.PathEscape(token)
}

// validate checks body, of Content-Type ct, against the schema at ptr: a
// JSON body as its JSON value, any other as a string.
func (v *Validator) validate(ptr, ct string, body []byte) error {
	sch, err := v.schema(ptr)
	if err != nil {
		return err
	}
	var value any = string(body)
	if base, _, _ := strings.Cut(ct, ";"); base == "application/json" || strings.HasSuffix(base, "+json") {
		if value, err = jsonschema.UnmarshalJSON(bytes.NewReader(body)); err != nil {
			return fmt.Errorf("body is not JSON: %w", err)
		}
	}
	if err := sch.Validate(value); err != nil {
		return fmt.Errorf("body does not match %s: %w", ptr, err)
	}
	return nil
}

// schema returns the compiled schema at ptr ("#/components/schemas/Error").
func (v *Validator) schema(ptr string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if sch, ok := v.schemas[ptr]; ok {
		return sch, nil
	}
	sch, err := v.compiler.Compile(docURL + ptr)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", ptr, err)
	}
	v.schemas[ptr] = sch
	return sch, nil
}

// notFound checks the answer to a request no operation matches; the body
// of an answer to HEAD (head) is not checked.
func (v *Validator) notFound(req *http.Request, status int, header http.Header, body []byte, head bool) error {
	want := http.StatusNotFound
	if strings.HasPrefix(req.URL.Path, "/api/") {
		want = http.StatusOK
	}
	where := fmt.Sprintf("%s %s (no operation)", req.Method, req.URL.Path)
	if status != want {
		return fmt.Errorf("%s: HTTP %d, want %d", where, status, want)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("%s: Content-Type %q, want application/json", where, ct)
	}
	if head {
		return nil
	}
	if err := v.Schema("Error", body); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	var e struct{ Code int }
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	// Maintenance mode answers every /api/v1/ path before routing.
	if e.Code != http.StatusNotFound && (e.Code != codeMaintenance || !strings.HasPrefix(req.URL.Path, "/api/v1/")) {
		return fmt.Errorf("%s: got %.300s, want code 404 (or 455 under /api/v1/)", where, body)
	}
	return nil
}

// codeMaintenance is the envelope code of maintenance mode.
const codeMaintenance = 455

// Callback checks a callback request's headers and body against the
// webhook named by the body's data.callbackType.
func (v *Validator) Callback(header http.Header, body []byte) error {
	var peek struct {
		Data struct {
			CallbackType string `json:"callbackType"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &peek); err != nil {
		return fmt.Errorf("callback %.300s: %w", body, err)
	}
	name := peek.Data.CallbackType
	hook := v.doc.Webhooks[name]
	if hook == nil || hook.Post == nil || hook.Post.RequestBody == nil {
		return fmt.Errorf("callback %.300s: no webhook for callbackType %q", body, name)
	}
	fail := func(err error) error { return fmt.Errorf("%s callback %.300s: %w", name, body, err) }
	req, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = header.Clone()
	in := &openapi3filter.RequestValidationInput{
		Request: req,
		Route:   &routers.Route{Spec: v.doc, Path: name, PathItem: hook, Method: http.MethodPost, Operation: hook.Post},
		Options: &openapi3filter.Options{MultiError: true, ExcludeRequestBody: true},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fail(err)
	}
	ptr := "#/webhooks/" + escape(name) + "/post/requestBody"
	if ref := hook.Post.RequestBody.Ref; ref != "" {
		ptr = ref
	}
	ct := header.Get("Content-Type")
	key, mt := mediaType(hook.Post.RequestBody.Value.Content, ct)
	if mt == nil {
		return fail(fmt.Errorf("Content-Type %q is not one the document lists", ct))
	}
	if err := v.validate(ptr+"/content/"+escape(key)+"/schema", ct, body); err != nil {
		return fail(err)
	}
	return nil
}

// Schema checks a JSON value against the document's components.schemas
// entry name, as JSON Schema 2020-12 (the dialect of OpenAPI 3.1).
func (v *Validator) Schema(name string, value []byte) error {
	if v.doc.Components.Schemas[name] == nil {
		return fmt.Errorf("no schema %q in the document", name)
	}
	if err := v.validate("#/components/schemas/"+escape(name), "application/json", value); err != nil {
		return fmt.Errorf("%s: %.300s: %w", name, value, err)
	}
	return nil
}
