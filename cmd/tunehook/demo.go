package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tunehook/tunehook"
)

// demoPrompt is what the demo asks for without --prompt.
const demoPrompt = "an upbeat synth-pop song about a city waking up"

// demo shows the whole round trip on this machine: it starts a sandbox
// server in-process (a temporary SQLite database, simulation on, private
// callbacks allowed, short stages, a fresh API key and signing key) and a
// local receiver built on the SDK's Receiver, submits one task through the
// SDK's Client, prints each callback as it arrives and each status Wait
// sees, and once the task is complete and its complete callback has
// arrived, saves the two tracks and their covers into --out.
func demo(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tunehook demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	outDir := fs.String("out", "tunehook-demo", "`directory` to save the tracks and covers in")
	prompt := fs.String("prompt", demoPrompt, "the song's `description` (simulation is on: add tunehook:fail:501 to see a failure)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this `long`")
	verbose := fs.Bool("verbose", false, "show the server's log on stderr")
	if _, err := parseFlags(fs, args, 0, stderr); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	out := &syncWriter{w: stdout}
	err := runDemo(ctx, demoConfig{outDir: *outDir, prompt: *prompt, verbose: *verbose, stderr: stderr}, out)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (no result within --timeout %v)", err, *timeout)
	}
	return err
}

// demoConfig is what runDemo needs from the command line.
type demoConfig struct {
	outDir, prompt string
	verbose        bool
	stderr         io.Writer
}

// runDemo runs the demo until the files are saved or something fails.
func runDemo(ctx context.Context, cfg demoConfig, out *syncWriter) error {
	dataDir, err := os.MkdirTemp("", "tunehook-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dataDir)
	apiKey := "th_demo_" + rand.Text()
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte(rand.Text()))

	// The receiver first: its URL goes into the task.
	rcv, err := startDemoReceiver(tunehook.SigningKey(secret), out)
	if err != nil {
		return err
	}
	defer rcv.close()

	serverURL, stopServer, err := startSandbox(ctx, dataDir, apiKey, secret, cfg)
	if err != nil {
		return err
	}
	defer stopServer()
	out.printf("sandbox server on %s (data in %s, removed at exit)\n", serverURL, dataDir)
	out.printf("receiver on %s, verifying signatures\n", rcv.url)

	client := tunehook.NewClient(serverURL, apiKey)
	taskID, err := client.Generate(ctx, tunehook.GenerateRequest{
		Model:       "V5",
		Prompt:      cfg.prompt,
		CallBackURL: rcv.url + "/suno-callback",
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	out.printf("submitted task %s: %q\n", taskID, cfg.prompt)
	start := time.Now()
	rec, err := client.Wait(ctx, taskID, tunehook.WaitOptions{
		// The sandbox long-polls; the interval only matters if it did not.
		PollInterval: 250 * time.Millisecond,
		OnStatus: func(r *tunehook.RecordInfo) {
			out.printf("status %-21s %5.1fs  %s\n", r.Status, time.Since(start).Seconds(), statusDetail(r))
		},
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// record-info says SUCCESS when the complete stage is stored; its
	// callback follows at once. Show it before the files.
	select {
	case cb := <-rcv.final:
		if err := cb.Err(); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	case <-ctx.Done():
		return fmt.Errorf("demo: waiting for the complete callback: %w", ctx.Err())
	}

	saved, err := saveTracks(ctx, client, rec, cfg.outDir, out)
	if err != nil {
		return fmt.Errorf("demo: save: %w", err)
	}
	out.printf("done: %d tracks and their covers in %s\n", len(saved)/2, cfg.outDir)
	return nil
}

// startSandbox starts tunehook serve in-process on a free port of
// 127.0.0.1 with the sandbox settings, given explicitly: none of the
// caller's TUNEHOOK_* variables applies. It returns the server's URL and a
// function that stops it and waits until it has.
func startSandbox(ctx context.Context, dataDir, apiKey, secret string, cfg demoConfig) (string, func(), error) {
	env := map[string]string{
		"TUNEHOOK_ADDR":                    "127.0.0.1:0",
		"TUNEHOOK_DATA_DIR":                dataDir,
		"TUNEHOOK_API_KEYS":                apiKey,
		"TUNEHOOK_WEBHOOK_HMAC_KEY":        secret,
		"TUNEHOOK_ALLOW_PRIVATE_CALLBACKS": "true",
		"TUNEHOOK_SIMULATION":              "true",
		"TUNEHOOK_SYNTH_DELAYS":            "1s,2s,2s",
		"TUNEHOOK_SYNTH_DURATION":          "30s",
		"TUNEHOOK_CALLBACK_RETRY_DELAYS":   "1s,2s,5s",
	}
	logs := io.Discard
	if cfg.verbose {
		logs = cfg.stderr
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- serveNotify(sctx, nil, func(k string) string { return env[k] }, io.Discard, logs, func(url string) { ready <- url })
	}()
	stopAndWait := func() {
		stop()
		<-served
	}
	select {
	case url := <-ready:
		return url, stopAndWait, nil
	case err := <-served:
		stop()
		return "", nil, fmt.Errorf("demo: sandbox server: %w", err)
	case <-ctx.Done():
		stopAndWait()
		return "", nil, fmt.Errorf("demo: starting the sandbox server: %w", ctx.Err())
	}
}

// demoReceiver is the demo's callback receiver: the SDK's Receiver behind
// a handler that prints each callback as it arrives.
type demoReceiver struct {
	url      string
	srv      *http.Server
	receiver *tunehook.Receiver
	// final gets the task's complete or error callback once the Receiver
	// has processed it.
	final chan *tunehook.Callback
}

// startDemoReceiver listens on a free port of 127.0.0.1 and receives
// callbacks signed with key.
func startDemoReceiver(key []byte, out *syncWriter) (*demoReceiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: receiver: %w", err)
	}
	keys := [][]byte{key}
	r := &demoReceiver{url: "http://" + ln.Addr().String(), final: make(chan *tunehook.Callback, 1)}
	r.receiver = tunehook.NewReceiver(func(ctx context.Context, cb *tunehook.Callback) error {
		if cb.Data.CallbackType.Final() {
			select {
			case r.final <- cb:
			default: // one task: one final callback
			}
		}
		return nil
	}, tunehook.ReceiverOptions{Keys: keys, Logger: slog.New(slog.DiscardHandler)})
	r.srv = &http.Server{
		Handler:           printCallbacks(r.receiver, keys, out),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go r.srv.Serve(ln)
	return r, nil
}

// close stops the receiver's server and lets the Receiver finish.
func (r *demoReceiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx)
	r.receiver.Shutdown(ctx)
}

// printCallbacks passes each request to next and then prints the callback
// it carried (as tunehook listen does), the check of its signature, and
// what next answered.
func printCallbacks(next http.Handler, keys [][]byte, out *syncWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, tunehook.DefaultMaxBodyBytes))
		if err != nil {
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &answerRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)

		var b strings.Builder
		fmt.Fprintf(&b, "\n--- callback %s\n", time.Now().UTC().Format("15:04:05.000"))
		describe(&b, body)
		fmt.Fprintf(&b, "signature:  %s\n", signatureResult(r.Header, body, keys))
		fmt.Fprintf(&b, "answered:   %d %s\n\n", rec.status, strings.TrimSpace(rec.body.String()))
		out.printf("%s", b.String())
	})
}

// answerRecorder passes an answer on and keeps its status and body.
type answerRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (a *answerRecorder) WriteHeader(status int) {
	a.status = status
	a.ResponseWriter.WriteHeader(status)
}

func (a *answerRecorder) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	if a.body.Len() < 200 {
		a.body.Write(p)
	}
	return a.ResponseWriter.Write(p)
}

// syncWriter serializes the writes of the demo's goroutines to stdout.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) printf(format string, args ...any) {
	fmt.Fprintf(s, format, args...)
}
