package httpapi

import (
	"bytes"
	_ "embed"
	"net/http"
	"strconv"
)

// openAPIDocument is the OpenAPI 3.1 document of the whole API, callbacks
// included (as webhooks). It is the one source of the API's description;
// tests validate the server's answers and callbacks against it.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPIDocument returns a copy of the API's OpenAPI 3.1 document, the
// JSON served at GET /openapi.json.
func OpenAPIDocument() []byte { return bytes.Clone(openAPIDocument) }

// handleOpenAPI serves GET /openapi.json: the document, without a key, so
// that tools can read it before they hold one.
func handleOpenAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(openAPIDocument) // a client gone away is not ours to report
	})
}
