package httpapi

import "net/http"

// handleHealth serves GET /healthz: 200 once the server serves requests.
func handleHealth() http.Handler {
	type health struct {
		Status string `json:"status"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, health{Status: "ok"})
	})
}
