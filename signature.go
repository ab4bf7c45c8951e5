package tunehook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of the two signature schemes tunehook signs callbacks with.
const (
	// HeaderTimestamp and HeaderSignature are the widely copied scheme:
	// base64(HMAC-SHA256(key, task_id + "." + timestamp)). It does not cover
	// the body.
	HeaderTimestamp = "X-Webhook-Timestamp"
	HeaderSignature = "X-Webhook-Signature"
	// HeaderWebhookID, HeaderWebhookTimestamp and HeaderWebhookSignature are
	// Standard Webhooks: "v1," + base64(HMAC-SHA256(key, id + "." +
	// timestamp + "." + body)). The id is stable across the retries of one
	// callback and differs between stages.
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// SigningKey returns the HMAC key bytes of a configured secret. A secret in
// the Standard Webhooks form "whsec_<base64>" stands for its decoded bytes,
// so that Standard Webhooks libraries verify what tunehook signs; any other
// secret is used as it is.
func SigningKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if b, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return b
		}
	}
	return []byte(secret)
}

// Sign sets on h the headers of both signature schemes for a callback body
// of task taskID, sent as webhook id at time ts and signed with key. It is
// SignKeys with one key.
func Sign(h http.Header, key []byte, id, taskID string, ts time.Time, body []byte) {
	SignKeys(h, [][]byte{key}, id, taskID, ts, body)
}

// SignKeys sets on h the headers of both signature schemes for a callback
// body of task taskID, sent as webhook id at time ts, signed with every key
// of keys: the current key first, then the keys being rotated out.
//
// The Standard Webhooks header carries one "v1,<signature>" per key,
// space-separated, as that specification allows, so receivers that know
// either the old or the new key verify the callback during a rotation. The
// legacy X-Webhook-Signature has room for one signature only and carries the
// first key's. With no keys SignKeys leaves h unchanged.
func SignKeys(h http.Header, keys [][]byte, id, taskID string, ts time.Time, body []byte) {
	if len(keys) == 0 {
		return
	}
	stamp := strconv.FormatInt(ts.Unix(), 10)
	h.Set(HeaderTimestamp, stamp)
	h.Set(HeaderSignature, legacyMAC(keys[0], taskID, stamp))
	sigs := make([]string, len(keys))
	for i, key := range keys {
		sigs[i] = "v1," + standardMAC(key, id, stamp, body)
	}
	// Standard Webhooks header names are lower-case; set them as written.
	h[HeaderWebhookID] = []string{id}
	h[HeaderWebhookTimestamp] = []string{stamp}
	h[HeaderWebhookSignature] = []string{strings.Join(sigs, " ")}
}

// legacyMAC is the X-Webhook-Signature of taskID at stamp.
func legacyMAC(key []byte, taskID, stamp string) string {
	return mac(key, []byte(taskID), []byte("."), []byte(stamp))
}

// standardMAC is the Standard Webhooks v1 signature, without its "v1,".
func standardMAC(key []byte, id, stamp string, body []byte) string {
	return mac(key, []byte(id), []byte("."), []byte(stamp), []byte("."), body)
}

func mac(key []byte, parts ...[]byte) string {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
