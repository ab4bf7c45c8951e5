package tunehook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of the Client and of WaitOptions.
const (
	// DefaultClientTimeout bounds one API call; a long-poll gets its wait
	// on top.
	DefaultClientTimeout = 30 * time.Second
	// DefaultLongPoll is how long each record-info call of Wait asks the
	// server to hold the answer until the status changes (at most 30 s).
	DefaultLongPoll = 25 * time.Second
	// DefaultPollInterval is the least time between two record-info calls
	// of Wait when the server answers without holding them: the
	// reference asks clients to poll no more often than every 30 s.
	DefaultPollInterval = 30 * time.Second
)

// maxAnswerBytes caps an API answer the client reads; the largest real
// one, a record-info with two tracks of lyrics, is far below it.
const maxAnswerBytes = 8 << 20

// Client calls a tunehook server, or any server of the Suno-style API, with
// one API key. It is safe for concurrent use.
type Client struct {
	base    string // without a final slash
	key     string
	hc      *http.Client
	timeout time.Duration
}

// ClientOption changes a Client made by NewClient.
type ClientOption func(*Client)

// WithHTTPClient makes the Client send its requests with hc instead of
// http.DefaultClient (also when hc is nil). Leave hc.Timeout zero: it would cut long-polls; the
// Client bounds each call itself (see WithTimeout).
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) { c.hc = hc }
}

// WithTimeout bounds each API call, DefaultClientTimeout by default (and
// when d is not positive); a long-poll of Wait gets its wait on top.
// Downloads are bounded by their context only.
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) { c.timeout = d }
}

// NewClient returns a Client of the server at baseURL (such as
// "http://127.0.0.1:8080"; the API lives under /api/v1) that sends apiKey
// as its bearer key.
func NewClient(baseURL, apiKey string, opts ...ClientOption) *Client {
	c := &Client{
		base:    strings.TrimRight(baseURL, "/"),
		key:     apiKey,
		hc:      http.DefaultClient,
		timeout: DefaultClientTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = http.DefaultClient
	}
	if c.timeout <= 0 {
		c.timeout = DefaultClientTimeout
	}
	return c
}

// GenerateRequest is the body of POST /api/v1/generate, field for field
// with the API's names. CustomMode and Instrumental are always sent (the
// API requires them); the other optional fields only when set.
type GenerateRequest struct {
	// CustomMode false: Prompt describes the song and the lyrics, title
	// and style are written for you. True: Style and Title are required,
	// and Prompt holds the lyrics unless Instrumental.
	CustomMode   bool   `json:"customMode"`
	Instrumental bool   `json:"instrumental"`
	Model        string `json:"model"` // V4, V4_5, V4_5PLUS, V4_5ALL, V5, V5_5
	// CallBackURL receives the task's callbacks; the API requires it even
	// from clients that only poll.
	CallBackURL         string   `json:"callBackUrl"`
	Prompt              string   `json:"prompt,omitempty"`
	Style               string   `json:"style,omitempty"`
	Title               string   `json:"title,omitempty"`
	NegativeTags        string   `json:"negativeTags,omitempty"`
	VocalGender         string   `json:"vocalGender,omitempty"` // "m" or "f"
	StyleWeight         *float64 `json:"styleWeight,omitempty"` // 0 to 1
	WeirdnessConstraint *float64 `json:"weirdnessConstraint,omitempty"`
	AudioWeight         *float64 `json:"audioWeight,omitempty"`
	PersonaID           string   `json:"personaId,omitempty"`
	PersonaModel        string   `json:"personaModel,omitempty"` // "style_persona" or "voice_persona"

	// IdempotencyKey, when set, is sent as the Idempotency-Key header, not
	// in the body: a retry with the same key and body gets the task the
	// first call created instead of a second task.
	IdempotencyKey string `json:"-"`
}

// Generate submits a task and returns its ID.
func (c *Client) Generate(ctx context.Context, req GenerateRequest) (string, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("generate: %w", err) // a NaN weight, say
	}
	var header http.Header
	if req.IdempotencyKey != "" {
		header = http.Header{"Idempotency-Key": {req.IdempotencyKey}}
	}
	var created TaskCreated
	if err := c.call(ctx, http.MethodPost, "/api/v1/generate", nil, header, body, 0, &created); err != nil {
		return "", fmt.Errorf("generate: %w", err)
	}
	if created.TaskID == "" {
		return "", errors.New("generate: the answer has no taskId")
	}
	return created.TaskID, nil
}

// RecordInfo returns the task's record: its status and the tracks finished
// so far.
func (c *Client) RecordInfo(ctx context.Context, taskID string) (*RecordInfo, error) {
	return c.recordInfo(ctx, taskID, 0)
}

// recordInfo calls record-info, asking the server to hold the answer up to
// wait for a change of status when wait is positive.
func (c *Client) recordInfo(ctx context.Context, taskID string, wait time.Duration) (*RecordInfo, error) {
	q := url.Values{"taskId": {taskID}}
	if wait > 0 {
		q.Set("wait", strconv.FormatFloat(wait.Seconds(), 'f', -1, 64))
	}
	var rec RecordInfo
	if err := c.call(ctx, http.MethodGet, "/api/v1/generate/record-info", q, nil, nil, wait, &rec); err != nil {
		return nil, fmt.Errorf("record-info %s: %w", taskID, err)
	}
	return &rec, nil
}

// WaitOptions tunes Wait. The zero value long-polls for DefaultLongPoll and
// falls back to polling every DefaultPollInterval.
type WaitOptions struct {
	// LongPoll is the wait each record-info call asks for: the server
	// answers as soon as the status changes, or after LongPoll with the
	// status unchanged. Zero means DefaultLongPoll; negative means plain
	// polling every PollInterval.
	LongPoll time.Duration
	// PollInterval is the least time between the starts of two calls
	// when the server does not hold them: a server without long-polling
	// (the commercial providers ignore the wait parameter) answers at
	// once. Zero means DefaultPollInterval.
	PollInterval time.Duration
	// OnStatus is called with the record each time Wait sees a status it
	// had not seen, the first one included.
	OnStatus func(*RecordInfo)
}

// maxWaitFailures is how many calls in a row may fail with a temporary
// error (see APIError.Temporary) or a network error before Wait gives up.
const maxWaitFailures = 5

// Wait polls the task until its status is final and returns its record,
// with the task's failure as a *TaskError (errors.AsType) when it failed.
//
// It long-polls record-info: each call asks the server to hold the answer
// until the status changes, so a status is seen as soon as it is reached.
// A server that ignores the wait parameter answers at once with the status
// unchanged; Wait notices and, as long as that lasts, spaces its calls by
// PollInterval. Temporary failures (rate limits, maintenance, 5xx, network
// errors) are retried after PollInterval or the server's Retry-After,
// whichever is longer, up to 5 in a row; other errors end the wait.
func (c *Client) Wait(ctx context.Context, taskID string, opts WaitOptions) (*RecordInfo, error) {
	wait := opts.LongPoll
	if wait == 0 {
		wait = DefaultLongPoll
	}
	wait = max(wait, 0)
	interval := opts.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	holds := wait > 0 // whether the server seems to hold long-polls
	var last Status
	failures := 0
	for {
		// The first call asks for the status at once: a long-poll would
		// hold it until the first change.
		w := wait
		if last == "" {
			w = 0
		}
		start := time.Now()
		rec, err := c.recordInfo(ctx, taskID, w)
		elapsed := time.Since(start)
		if err != nil {
			failures++
			if ctx.Err() != nil || !retryable(err) || failures >= maxWaitFailures {
				return nil, fmt.Errorf("wait: %w", err)
			}
			pause := interval
			if e, ok := errors.AsType[*APIError](err); ok {
				pause = max(pause, e.RetryAfter)
			}
			if err := sleep(ctx, pause); err != nil {
				return nil, fmt.Errorf("wait for task %s: %w", taskID, err)
			}
			continue
		}
		failures = 0
		switch {
		case rec.Status != last:
			last = rec.Status
			if opts.OnStatus != nil {
				opts.OnStatus(rec)
			}
		case w > 0:
			// Unchanged: a server that long-polls held the call for
			// the whole wait; one that ignores wait answered at once.
			holds = elapsed >= w/2
		}
		if rec.Status.Final() {
			return rec, rec.Err()
		}
		if !holds {
			if err := sleep(ctx, interval-elapsed); err != nil {
				return nil, fmt.Errorf("wait for task %s: %w", taskID, err)
			}
		}
	}
}

// retryable reports whether a call that failed with err may succeed when
// made again: a temporary API error, or a network error (a timeout, a
// refused or dropped connection).
func retryable(err error) bool {
	if e, ok := errors.AsType[*APIError](err); ok {
		return e.Temporary()
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// sleep pauses for d, or until ctx ends (then it returns ctx's error).
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Credits returns the credits left to the key. A server without credit
// accounting (tunehook's default) answers the largest int32, 2147483647:
// unlimited.
func (c *Client) Credits(ctx context.Context) (int, error) {
	var n int
	if err := c.call(ctx, http.MethodGet, "/api/v1/generate/credit", nil, nil, nil, 0, &n); err != nil {
		return 0, fmt.Errorf("credits: %w", err)
	}
	return n, nil
}

// Callbacks returns the task's delivery log: its callbacks, oldest first,
// with every attempt to deliver each. (A tunehook extension of the API.)
func (c *Client) Callbacks(ctx context.Context, taskID string) (*DeliveryLog, error) {
	var log DeliveryLog
	if err := c.call(ctx, http.MethodGet, "/api/v1/callbacks", url.Values{"taskId": {taskID}}, nil, nil, 0, &log); err != nil {
		return nil, fmt.Errorf("callbacks of task %s: %w", taskID, err)
	}
	return &log, nil
}

// Redeliver makes the server deliver the callback again now, as a new
// series of attempts with the normal retry schedule, whatever its state,
// and returns the callback after the change. (A tunehook extension.)
func (c *Client) Redeliver(ctx context.Context, callbackID string) (*CallbackRecord, error) {
	var cb CallbackRecord
	path := "/api/v1/callbacks/" + url.PathEscape(callbackID) + "/redeliver"
	if err := c.call(ctx, http.MethodPost, path, nil, nil, nil, 0, &cb); err != nil {
		return nil, fmt.Errorf("redeliver callback %s: %w", callbackID, err)
	}
	return &cb, nil
}

// Download writes the file at a media URL of a result (audioUrl, imageUrl)
// to w and returns how many bytes it wrote. The API key is not sent: media
// URLs are public, and may point to another host than the API. Only ctx
// bounds the download.
func (c *Client) Download(ctx context.Context, mediaURL string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mediaURL, nil)
	if err != nil {
		return 0, fmt.Errorf("download %s: %w", mediaURL, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return 0, fmt.Errorf("download %s: %w", mediaURL, answerError(resp, b))
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("download %s: %w", mediaURL, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("download %s: got %d bytes, want %d", mediaURL, n, resp.ContentLength)
	}
	return n, nil
}

// call sends one API request and decodes the data of a code-200 envelope
// into out. query, header and body may be nil. The call is bounded by the
// client's timeout plus extra.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, header http.Header, body []byte, extra time.Duration, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+extra)
	defer cancel()
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	for name, values := range header {
		req.Header[name] = values
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "tunehook-go/"+Version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	var env Envelope[json.RawMessage]
	if err := json.Unmarshal(b, &env); err != nil || env.Code == 0 {
		return answerError(resp, b)
	}
	if env.Code != http.StatusOK {
		return newAPIError(resp, env.Code, env.Msg)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return &InvalidAnswerError{HTTPStatus: resp.StatusCode, Reason: "data: " + err.Error(), Body: snippet(b)}
	}
	return nil
}

// answerError is the error of an answer that is not a code-200 envelope:
// an *APIError when it is an envelope (media answer with one) or when its
// HTTP status is an error (a proxy's 502 page, a wrong base URL's 404),
// else an *InvalidAnswerError.
func answerError(resp *http.Response, b []byte) error {
	var env Envelope[json.RawMessage]
	if json.Unmarshal(b, &env) == nil && env.Code != 0 {
		return newAPIError(resp, env.Code, env.Msg)
	}
	if resp.StatusCode >= 400 {
		return newAPIError(resp, resp.StatusCode, fmt.Sprintf("not an API answer: HTTP %s: %s", resp.Status, snippet(b)))
	}
	return &InvalidAnswerError{HTTPStatus: resp.StatusCode, Reason: "not an API envelope", Body: snippet(b)}
}

// snippet is the start of an answer, fit for an error message.
func snippet(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// InvalidAnswerError is an answer the client cannot read: not an API
// envelope, or data of an unexpected shape. Usually the base URL points to
// something else than the API.
type InvalidAnswerError struct {
	HTTPStatus int
	Reason     string
	Body       string // the start of the answer
}

// Error says what is wrong and shows the start of the answer.
func (e *InvalidAnswerError) Error() string {
	return fmt.Sprintf("invalid answer (HTTP %d): %s: %q", e.HTTPStatus, e.Reason, e.Body)
}

// APIError is an answer of the API with a code other than 200. Compare it
// with the sentinels using errors.Is: errors.Is(err, ErrRateLimited).
type APIError struct {
	Code int    // the envelope's code (or the HTTP status of an answer without one)
	Msg  string // the server's message, naming the field at fault
	// RetryAfter is the wait the server asked for in its Retry-After
	// header (rate limits, maintenance); zero when it sent none.
	RetryAfter time.Duration
	HTTPStatus int // 200 under /api/, where the code is in the body
}

// Error returns the code, its meaning, and the server's message.
func (e *APIError) Error() string {
	return fmt.Sprintf("code %d (%s): %s", e.Code, codeName(e.Code), e.Msg)
}

// The sentinels of the API's request-level codes: errors.Is(err, ErrX)
// holds when err is an *APIError of ErrX's code.
var (
	ErrInvalidRequest      = errors.New("invalid parameters")     // 400
	ErrUnauthorized        = errors.New("unauthorized")           // 401
	ErrNotFound            = errors.New("not found")              // 404
	ErrTooLarge            = errors.New("field too long")         // 413
	ErrInsufficientCredits = errors.New("insufficient credits")   // 429
	ErrRateLimited         = errors.New("rate limited")           // 430, and 405
	ErrMaintenance         = errors.New("undergoing maintenance") // 455
	ErrServer              = errors.New("server error")           // 500 and every other 5xx
)

// sentinels maps the reference's request-level codes to their sentinels.
// 405 is the reference's "rate limit exceeded", 430 its "call frequency too
// high": to a client both mean slow down.
var sentinels = map[int]error{
	400: ErrInvalidRequest,
	401: ErrUnauthorized,
	404: ErrNotFound,
	405: ErrRateLimited,
	413: ErrTooLarge,
	429: ErrInsufficientCredits,
	430: ErrRateLimited,
	455: ErrMaintenance,
}

// sentinel returns the sentinel of code, or nil for a code without one.
func sentinel(code int) error {
	if code >= 500 && code <= 599 {
		return ErrServer
	}
	return sentinels[code]
}

// codeName names a code for Error: its sentinel's text.
func codeName(code int) string {
	if s := sentinel(code); s != nil {
		return s.Error()
	}
	return "undocumented code"
}

// Is reports whether target is the sentinel of e's code.
func (e *APIError) Is(target error) bool {
	s := sentinel(e.Code)
	return s != nil && s == target
}

// Temporary reports whether the same call may succeed later: rate limits
// (405, 430), maintenance (455) and server errors (5xx). Insufficient
// credits (429) need a top-up first.
func (e *APIError) Temporary() bool {
	switch sentinel(e.Code) {
	case ErrRateLimited, ErrMaintenance, ErrServer:
		return true
	}
	return false
}

func newAPIError(resp *http.Response, code int, msg string) *APIError {
	return &APIError{Code: code, Msg: msg, HTTPStatus: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

// retryAfter parses a Retry-After value, seconds or an HTTP date, as a
// duration from now; zero when absent, invalid or past.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0)
	}
	return 0
}
