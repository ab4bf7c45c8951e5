package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tunehook/tunehook"
)

// forwardTimeout bounds one forward, below the 15 s a sender waits for the
// answer, so that a hanging forward target does not make listen time out.
const forwardTimeout = 10 * time.Second

// listen runs a local callback receiver for developers: it prints every
// callback it gets as a readable block (stage, code, task, tracks, the
// signature's check), answers 200, and forwards the callback, body and
// headers unchanged, to --forward-to when set. The first line it prints is
// the URL it listens on.
func listen(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tunehook listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:3000", "listen `address`")
	forwardTo := fs.String("forward-to", "", "`URL` to forward each callback to, with its body and headers unchanged")
	var secrets []string
	fs.Func("key", "signing `secret` to verify callbacks with; repeat it during a key rotation (default env TUNEHOOK_WEBHOOK_HMAC_KEY, comma-separated)", func(v string) error {
		if v == "" {
			return errors.New("empty key")
		}
		secrets = append(secrets, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // the flag set has shown the error and the usage
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("listen: unexpected argument %q", fs.Arg(0))
	}
	if secrets == nil {
		for s := range strings.SplitSeq(getenv("TUNEHOOK_WEBHOOK_HMAC_KEY"), ",") {
			if s = strings.TrimSpace(s); s != "" {
				secrets = append(secrets, s)
			}
		}
	}
	if *forwardTo != "" {
		u, err := url.Parse(*forwardTo)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("listen: --forward-to %q is not an http or https URL", *forwardTo)
		}
	}

	l := &listener{
		forwardTo: *forwardTo,
		client: &http.Client{
			Timeout: forwardTimeout,
			// The forward shows what the target answers; following a
			// redirect would turn the POST into a GET.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now: time.Now,
		out: stdout,
	}
	for _, s := range secrets {
		l.keys = append(l.keys, tunehook.SigningKey(s))
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	switch n := len(l.keys); n {
	case 0:
		fmt.Fprintln(stdout, "signatures are not checked: no --key and no TUNEHOOK_WEBHOOK_HMAC_KEY")
	case 1:
		fmt.Fprintln(stdout, "verifying signatures with 1 key")
	default:
		fmt.Fprintf(stdout, "verifying signatures with %d keys\n", n)
	}
	if l.forwardTo != "" {
		fmt.Fprintf(stdout, "forwarding callbacks to %s\n", l.forwardTo)
	}

	srv := &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("listen: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), forwardTimeout+time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// listener prints each callback it receives and forwards it.
type listener struct {
	keys      [][]byte
	forwardTo string
	client    *http.Client
	now       func() time.Time

	mu  sync.Mutex // one block at a time on out
	out io.Writer
}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "tunehook listen receives callbacks: POST them", http.StatusMethodNotAllowed)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n--- %s  %s %s\n", l.now().UTC().Format("2006-01-02 15:04:05 UTC"), r.Method, r.URL.RequestURI())
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, tunehook.DefaultMaxBodyBytes))
	if err != nil {
		fmt.Fprintf(&b, "body:       unreadable: %v\n", err)
		l.print(b.String())
		http.Error(w, "read body: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	describe(&b, body)
	if id := r.Header.Get(tunehook.HeaderWebhookID); id != "" {
		fmt.Fprintf(&b, "webhook-id: %s\n", id)
	}
	fmt.Fprintf(&b, "signature:  %s\n", signatureResult(r.Header, body, l.keys))
	if l.forwardTo != "" {
		fmt.Fprintf(&b, "forward:    %s\n", l.forward(r, body))
	}
	l.print(b.String())
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintln(w, `{"status":"received"}`)
}

func (l *listener) print(block string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.out, block)
}

// describe writes the callback in body: stage, code, task and tracks, or
// why it is not a callback.
func describe(b *strings.Builder, body []byte) {
	cb, err := tunehook.ParseCallback(body)
	if err != nil {
		fmt.Fprintf(b, "INVALID:    %v\n", err)
		fmt.Fprintf(b, "body:       %.300q\n", body)
		return
	}
	describeCallback(b, cb)
}

// describeCallback writes a parsed callback: stage, code, task and tracks.
func describeCallback(b *strings.Builder, cb *tunehook.Callback) {
	fmt.Fprintf(b, "stage:      %s\n", cb.Data.CallbackType)
	if cb.Failed() {
		fmt.Fprintf(b, "code:       %d FAILED (%s): %s\n", cb.Code, tunehook.CodeMeaning(cb.Code), cb.Msg)
	} else {
		fmt.Fprintf(b, "code:       %d %s\n", cb.Code, cb.Msg)
	}
	fmt.Fprintf(b, "task:       %s\n", cb.Data.TaskID)
	for i, tr := range cb.Data.Data {
		fmt.Fprintf(b, "track %d:    %q  %.2f s  id %s  model %s  created %s\n", i+1, tr.Title, tr.Duration, tr.ID, tr.ModelName, tr.CreateTime)
		fmt.Fprintf(b, "            audio  %s\n", tr.AudioURL)
		fmt.Fprintf(b, "            stream %s\n", tr.StreamAudioURL)
		fmt.Fprintf(b, "            image  %s\n", tr.ImageURL)
	}
}

// signatureResult returns the result of checking a request's signature
// with keys, fit to print.
func signatureResult(h http.Header, body []byte, keys [][]byte) string {
	scheme, err := tunehook.Verify(h, body, keys, tunehook.VerifyOptions{})
	switch {
	case errors.Is(err, tunehook.ErrNoSignature) && len(keys) == 0:
		return "unsigned"
	case errors.Is(err, tunehook.ErrNoKeys):
		return fmt.Sprintf("signed (%s), not checked: no --key", scheme)
	case err != nil:
		return "INVALID: " + err.Error()
	case scheme == tunehook.SchemeLegacy:
		return "verified (" + string(scheme) + ", which does not cover the body)"
	}
	return "verified (" + string(scheme) + ")"
}

// hopByHop are the headers that belong to one connection, not to the
// callback; the forward does not repeat them.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// forward POSTs body with r's headers to the forward URL and returns the
// answer's status, or why there is none.
func (l *listener) forward(r *http.Request, body []byte) string {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, l.forwardTo, bytes.NewReader(body))
	if err != nil {
		return "FAILED: " + err.Error()
	}
	for name, values := range r.Header {
		if !hopByHop[name] {
			req.Header[name] = values
		}
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return "FAILED: " + err.Error()
	}
	defer resp.Body.Close()
	// Drain a little, so that the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Status
}
