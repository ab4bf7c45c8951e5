package tunehook

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Scheme is a signature scheme of callbacks.
type Scheme string

// The schemes Verify knows.
const (
	// SchemeStandard is Standard Webhooks: the signature covers the
	// webhook id, the timestamp and the whole body.
	SchemeStandard Scheme = "standard webhooks"
	// SchemeLegacy is X-Webhook-Timestamp + X-Webhook-Signature. Its
	// signature covers the task id and the timestamp only: whoever captures
	// one signed callback can send another body for the same task, with the
	// same headers, until the timestamp leaves the tolerance. Prefer
	// SchemeStandard, and set VerifyOptions.RequireStandard when the sender
	// sends it.
	SchemeLegacy Scheme = "x-webhook-signature"
)

// DefaultTolerance is how far a callback's timestamp may be from the
// receiver's clock, in either direction, unless VerifyOptions says otherwise.
// It bounds how long a captured callback can be replayed.
const DefaultTolerance = 5 * time.Minute

// The errors of Verify. It wraps them with details; test with errors.Is.
var (
	// ErrNoKeys means Verify was given no key to verify with.
	ErrNoKeys = errors.New("no verification keys")
	// ErrNoSignature means the request carries the headers of neither
	// scheme (or only of the legacy one, when the standard one is required).
	ErrNoSignature = errors.New("no signature")
	// ErrMalformedHeader means a signature header is present but unusable:
	// a missing companion header, a timestamp that is not Unix seconds, a
	// signature entry without its version.
	ErrMalformedHeader = errors.New("malformed signature header")
	// ErrBadSignature means no signature matches any of the keys: a wrong
	// key, or a body, id, task or timestamp changed after signing.
	ErrBadSignature = errors.New("signature does not match")
	// ErrStaleTimestamp means the signature matches but its timestamp is
	// older than the tolerance: a late retry of a captured request.
	ErrStaleTimestamp = errors.New("timestamp too old")
	// ErrFutureTimestamp means the signature matches but its timestamp is
	// further ahead than the tolerance: a clock far off, or a request
	// prepared to be replayed later.
	ErrFutureTimestamp = errors.New("timestamp in the future")
)

// VerifyOptions tunes Verify. The zero value is ready to use.
type VerifyOptions struct {
	// Tolerance is how far the timestamp may be from Now, in the past or
	// the future, to the second. Zero or less means DefaultTolerance.
	Tolerance time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// RequireStandard refuses callbacks that carry the legacy scheme only,
	// whose signature does not cover the body.
	RequireStandard bool
}

// Verify checks the signature of a callback request with headers h and
// body body against keys, any of which may have signed it (during a key
// rotation the sender signs with both). It returns the scheme it checked,
// also when that check failed, or "" when there was nothing to check.
//
// When the Standard Webhooks headers are present Verify checks them and
// ignores the legacy headers; otherwise it checks X-Webhook-Signature, which
// does not cover the body (see SchemeLegacy). Signatures are compared in
// constant time. The error wraps ErrNoKeys, ErrNoSignature,
// ErrMalformedHeader, ErrBadSignature, ErrStaleTimestamp or
// ErrFutureTimestamp.
//
// Verify does not remember what it has seen: a callback replayed within the
// tolerance verifies again. Receivers de-duplicate on the webhook id (as
// Receiver does) to refuse replays.
func Verify(h http.Header, body []byte, keys [][]byte, opts VerifyOptions) (Scheme, error) {
	id, hasID := header(h, HeaderWebhookID)
	stdStamp, hasStdStamp := header(h, HeaderWebhookTimestamp)
	stdSig, hasStdSig := header(h, HeaderWebhookSignature)
	legacyStamp, hasLegacyStamp := header(h, HeaderTimestamp)
	legacySig, hasLegacySig := header(h, HeaderSignature)

	switch {
	case hasID || hasStdStamp || hasStdSig:
		return SchemeStandard, verifyStandard(id, stdStamp, stdSig, body, keys, opts)
	case opts.RequireStandard:
		return "", fmt.Errorf("no %s header (the legacy scheme is refused): %w", HeaderWebhookSignature, ErrNoSignature)
	case hasLegacyStamp || hasLegacySig:
		return SchemeLegacy, verifyLegacy(legacyStamp, legacySig, body, keys, opts)
	}
	return "", ErrNoSignature
}

func verifyStandard(id, stamp, sigs string, body []byte, keys [][]byte, opts VerifyOptions) error {
	for _, h := range [][2]string{{HeaderWebhookID, id}, {HeaderWebhookTimestamp, stamp}, {HeaderWebhookSignature, sigs}} {
		if h[1] == "" {
			return fmt.Errorf("%s missing or empty: %w", h[0], ErrMalformedHeader)
		}
	}
	ts, err := parseStamp(HeaderWebhookTimestamp, stamp)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return ErrNoKeys
	}
	var given []string
	for entry := range strings.FieldsSeq(sigs) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version == "" {
			return fmt.Errorf("%s entry %.20q has no version: %w", HeaderWebhookSignature, entry, ErrMalformedHeader)
		}
		// Other versions (v1a, asymmetric) are allowed next to v1; this
		// package knows v1 only.
		if version == "v1" {
			given = append(given, sig)
		}
	}
	if len(given) == 0 {
		return fmt.Errorf("no v1 entry in %s: %w", HeaderWebhookSignature, ErrBadSignature)
	}
	if !anyMatch(keys, given, func(key []byte) string { return standardMAC(key, id, stamp, body) }) {
		return fmt.Errorf("%s: %w", HeaderWebhookSignature, ErrBadSignature)
	}
	return checkTolerance(ts, opts)
}

func verifyLegacy(stamp, sig string, body []byte, keys [][]byte, opts VerifyOptions) error {
	if stamp == "" || sig == "" {
		return fmt.Errorf("%s and %s must both be set: %w", HeaderTimestamp, HeaderSignature, ErrMalformedHeader)
	}
	ts, err := parseStamp(HeaderTimestamp, stamp)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return ErrNoKeys
	}
	// The legacy scheme signs the task id, which only the body names.
	var cb struct {
		Data struct {
			TaskID string `json:"task_id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &cb); err != nil || cb.Data.TaskID == "" {
		return fmt.Errorf("%s: the body names no data.task_id to check it with: %w", HeaderSignature, ErrBadSignature)
	}
	if !anyMatch(keys, []string{sig}, func(key []byte) string { return legacyMAC(key, cb.Data.TaskID, stamp) }) {
		return fmt.Errorf("%s: %w", HeaderSignature, ErrBadSignature)
	}
	return checkTolerance(ts, opts)
}

// anyMatch reports whether one of the given signatures is the expected one
// of one of the keys, comparing in constant time.
func anyMatch(keys [][]byte, given []string, expected func(key []byte) string) bool {
	for _, key := range keys {
		want := []byte(expected(key))
		for _, sig := range given {
			if hmac.Equal([]byte(sig), want) {
				return true
			}
		}
	}
	return false
}

func parseStamp(name, stamp string) (int64, error) {
	sec, err := strconv.ParseInt(stamp, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %.20q is not Unix seconds: %w", name, stamp, ErrMalformedHeader)
	}
	return sec, nil
}

// checkTolerance compares the timestamp sec with the clock in whole
// seconds, as integers: time.Unix wraps around for the extreme values a
// header may carry. The distance is taken as unsigned, where it cannot
// overflow.
func checkTolerance(sec int64, opts VerifyOptions) error {
	tolerance := opts.Tolerance
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	n, tol := now.Unix(), uint64(tolerance/time.Second)
	switch {
	case sec < n && uint64(n)-uint64(sec) > tol:
		return fmt.Errorf("timestamp %d, now %d, tolerance %v: %w", sec, n, tolerance, ErrStaleTimestamp)
	case sec > n && uint64(sec)-uint64(n) > tol:
		return fmt.Errorf("timestamp %d, now %d, tolerance %v: %w", sec, n, tolerance, ErrFutureTimestamp)
	}
	return nil
}

// header returns the values of header name joined by spaces, and whether it
// is present. It finds both the canonical form a server receives
// ("Webhook-Id") and the lower-case form SignKeys sets in a header map.
func header(h http.Header, name string) (string, bool) {
	v, ok := h[http.CanonicalHeaderKey(name)]
	if !ok {
		v, ok = h[name]
	}
	return strings.Join(v, " "), ok
}
