// Package tunehook is the Go SDK for tunehook and for any server of the
// Suno-style music-generation API: the wire types of its callbacks and of
// record-info, a client of the API, the signing and verification of
// callbacks, and a receiver for them. It uses only the standard library.
//
// To receive callbacks, mount a Receiver: it verifies the signature
// (Verify), parses the body (ParseCallback), answers 200 at once, and then
// calls your function once per callback, in stage order, with retries; a
// duplicate delivery or a stale stage never reaches it. Check Callback.Err
// first: failed tasks arrive as callbacks too.
//
// Senders sign with SignKeys (Sign for one key): both the widely copied
// X-Webhook-Signature, which does not cover the body, and Standard
// Webhooks, which does.
//
// To call the API, use a Client: Generate submits a task, Wait long-polls
// record-info until the task ends (falling back to polite polling against
// servers without long-polling), Download saves its media. Answers with a
// code other than 200 are *APIError values that errors.Is matches against
// ErrUnauthorized, ErrRateLimited and the other sentinels of the codes.
//
// Callbacks use snake_case field names (task_id, audio_url) and string
// times; record-info uses camelCase (taskId, audioUrl) and epoch
// milliseconds. The types here keep both exactly as the wire has them.
package tunehook

// Version is the version of tunehook; the server sends it in its User-Agent.
const Version = "0.1.0"

// Envelope is the shape of every answer of the API: the real status is in
// Code (HTTP is 200), Msg says what happened, Data holds the result.
type Envelope[T any] struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	Data T      `json:"data"`
}
