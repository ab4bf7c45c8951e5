// Package openapitest holds tests to the API's OpenAPI document
// (internal/httpapi/openapi.json): it validates answers of the API and
// callback requests against it, so that the document and the server cannot
// drift apart unnoticed.
package openapitest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Validator checks HTTP exchanges against one OpenAPI 3.1 document. It is
// safe for concurrent use.
type Validator struct {
	doc    *openapi3.T
	router routers.Router
	// valid holds the digests of the answers found valid (see answerKey).
	// kin-openapi compiles a schema for each JSON Schema 2020-12
	// validation, milliseconds of CPU; tests that poll see the same answer
	// many times, and validation is deterministic.
	valid sync.Map
}

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
	return &Validator{doc: t, router: router}, nil
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
	find := req
	if req.Method == http.MethodHead {
		find = req.Clone(req.Context())
		find.Method = http.MethodGet
	}
	route, params, err := v.router.FindRoute(find)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		return v.notFound(req, status, header, body)
	}
	if err != nil {
		return fmt.Errorf("%s %s: find operation: %w", req.Method, req.URL.Path, err)
	}
	key := answerKey(req.Method, route.Path, status, header, body)
	if _, ok := v.valid.Load(key); ok {
		return nil
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	if req.Method == http.MethodHead {
		// openapi3filter skips HEAD; checked as GET, the body excepted.
		req, opts.ExcludeResponseBody = find, true
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s: HTTP %d %.300s: %w", req.Method, req.URL.Path, status, body, err)
	}
	v.valid.Store(key, true)
	return nil
}

// answerKey is the digest of everything an answer's validation depends on:
// the operation, the status, the headers but Date, and the body.
func answerKey(method, path string, status int, header http.Header, body []byte) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %d\n", method, path, status)
	for _, name := range slices.Sorted(maps.Keys(header)) {
		if name != "Date" {
			fmt.Fprintf(h, "%s: %q\n", name, header[name])
		}
	}
	h.Write(body)
	return [sha256.Size]byte(h.Sum(nil))
}

// notFound checks the answer to a request no operation matches.
func (v *Validator) notFound(req *http.Request, status int, header http.Header, body []byte) error {
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
	if req.Method == http.MethodHead {
		return nil // no body to check
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
	if hook == nil || hook.Post == nil {
		return fmt.Errorf("callback %.300s: no webhook for callbackType %q", body, name)
	}
	req, err := http.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = header.Clone()
	in := &openapi3filter.RequestValidationInput{
		Request: req,
		Route:   &routers.Route{Spec: v.doc, Path: name, PathItem: hook, Method: http.MethodPost, Operation: hook.Post},
		Options: &openapi3filter.Options{MultiError: true},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("%s callback %.300s: %w", name, body, err)
	}
	return nil
}

// Schema checks a JSON value against the document's components.schemas
// entry name, as JSON Schema 2020-12 (the dialect of OpenAPI 3.1).
func (v *Validator) Schema(name string, value []byte) error {
	ref := v.doc.Components.Schemas[name]
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("no schema %q in the document", name)
	}
	var x any
	if err := json.Unmarshal(value, &x); err != nil {
		return fmt.Errorf("%s: %.300s: %w", name, value, err)
	}
	if err := ref.Value.VisitJSON(x, openapi3.EnableJSONSchema2020(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("%s: %.300s: %w", name, value, err)
	}
	return nil
}
