package openapitest_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tunehook/tunehook/internal/httpapi"
	"github.com/tunehook/tunehook/internal/openapitest"
)

// An answer seen before is not validated again: polling loops repeat the
// same answer many times.
func TestResponseSeenBefore(t *testing.T) {
	t.Parallel()
	v := newValidator(t)
	req, err := http.NewRequest("POST", "http://127.0.0.1:8080/api/v1/generate", nil)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"code":430,"msg":"Your call frequency is too high. Please try again later.","data":null}`)
	valid := http.Header{"Content-Type": {"application/json"}, "Retry-After": {"3"}}
	for range 2 {
		if err := v.Response(req, 200, valid, body); err != nil {
			t.Fatal(err)
		}
	}
	// What differs is validated: the same body with a bad header or status.
	bad := http.Header{"Content-Type": {"application/json"}, "Retry-After": {"soon"}}
	if err := v.Response(req, 200, bad, body); err == nil {
		t.Error("got a bad Retry-After valid after a good one")
	}
	if err := v.Response(req, 430, valid, body); err == nil {
		t.Error("got HTTP 430 valid after HTTP 200")
	}
}

// BenchmarkResponse measures validating one record-info answer, each time
// a new one: kin-openapi compiles the JSON Schema 2020-12 of the answer for
// each validation.
func BenchmarkResponse(b *testing.B) {
	v, err := openapitest.New(httpapi.OpenAPIDocument())
	if err != nil {
		b.Fatal(err)
	}
	req, err := http.NewRequest("GET", "http://h/api/v1/generate/record-info?taskId=t1", nil)
	if err != nil {
		b.Fatal(err)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	n := 0
	for b.Loop() {
		n++
		body := []byte(strings.Replace(record(recordSuccess), `"taskId":"t1"`, `"taskId":"t`+strconv.Itoa(n)+`"`, 1))
		if err := v.Response(req, 200, h, body); err != nil {
			b.Fatal(err)
		}
	}
}
