package openapitest_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tunehook/tunehook/internal/httpapi"
	"github.com/tunehook/tunehook/internal/openapitest"
)

// BenchmarkResponse measures validating one record-info answer, each time
// a new one.
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
