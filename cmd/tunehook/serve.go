package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/config"
	"github.com/tunehook/tunehook/internal/httpapi"
	"github.com/tunehook/tunehook/internal/media"
	"github.com/tunehook/tunehook/internal/metrics"
	"github.com/tunehook/tunehook/internal/payload"
	"github.com/tunehook/tunehook/internal/postgres"
	"github.com/tunehook/tunehook/internal/safedial"
	"github.com/tunehook/tunehook/internal/sqlite"
	"github.com/tunehook/tunehook/internal/synth"
	"github.com/tunehook/tunehook/internal/task"
	"github.com/tunehook/tunehook/internal/worker"
)

// shutdownGrace bounds how long open HTTP requests may run on after a stop
// signal; callbacks in flight get the callback timeout on top (the
// dispatcher lets them finish rather than cut them and cause duplicates).
const shutdownGrace = 5 * time.Second

// serve runs the server until ctx is cancelled, then shuts it down: no new
// requests, stages in progress handed back, callbacks in flight finished.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return serveNotify(ctx, args, getenv, stdout, stderr, nil)
}

// serveNotify is serve that, when ready is not nil, calls it with the URL
// the server listens on once it serves: tunehook demo runs it in-process.
func serveNotify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(url string)) error {
	cfg, err := config.Load("tunehook serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	temporary := cfg.DataDir == ""
	if temporary {
		// --dev without a data dir: a sandbox that starts empty and leaves
		// nothing behind. Removed after the store is closed (defers run
		// last in, first out).
		dir, err := os.MkdirTemp("", "tunehook-dev-")
		if err != nil {
			return fmt.Errorf("create temporary data dir: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
		cfg.MediaDir = cmp.Or(cfg.MediaDir, filepath.Join(dir, "media"))
	}

	store, storeName, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	if temporary {
		storeName += " (temporary: removed at exit)"
	}
	mediaStore, err := media.NewDir(cfg.MediaDir)
	if err != nil {
		return err
	}
	keys, err := apiKeys(cfg)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	links := payload.Links{PublicURL: cmp.Or(cfg.PublicURL, "http://"+reachable(ln.Addr()))}

	engine, err := synth.New(synth.Config{Media: mediaStore, Duration: cfg.SynthDuration})
	if err != nil {
		return err
	}
	owner := instanceName()
	stats := metrics.New(store, logger)
	changes := httpapi.NewChanges()
	runner, err := worker.NewRunner(worker.RunnerConfig{
		Store:      store,
		Engine:     engine,
		Links:      links,
		Delays:     cfg.SynthDelays,
		Simulation: cfg.Simulation,
		Owner:      owner,
		OnStage: func(e worker.StageEvent) {
			stats.ObserveStage(e)
			changes.Notify(e.TaskID)
		},
		Logger: logger,
	})
	if err != nil {
		return err
	}
	// The current key first: it alone signs X-Webhook-Signature.
	var signingKeys [][]byte
	for _, k := range cfg.WebhookHMACKeys {
		signingKeys = append(signingKeys, tunehook.SigningKey(k))
	}
	// Callback targets are vetted twice: literal hosts at submit, every
	// resolved address at dial time (names can change their answer).
	targets := safedial.Policy{
		AllowPrivate: cfg.AllowPrivateCallbacks,
		Allow:        cfg.CallbackAllowCIDRs,
		RequireHTTPS: cfg.RequireHTTPSCallbacks,
	}
	dispatcher, err := worker.NewDispatcher(worker.DispatcherConfig{
		Store:       store,
		Targets:     targets,
		Timeout:     cfg.CallbackTimeout,
		RetryDelays: cfg.CallbackRetryDelays,
		PerHost:     cfg.CallbackPerHost,
		SigningKeys: signingKeys,
		Owner:       owner,
		OnAttempt:   stats.ObserveAttempt,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	stopping := make(chan struct{})
	handler, err := httpapi.NewServer(httpapi.Config{
		Store:            store,
		Media:            mediaStore,
		Links:            links,
		Keys:             keys.accepted,
		TextDelay:        cfg.SynthDelays[0],
		CheckCallbackURL: targets.CheckURL,
		IdempotencyTTL:   cfg.IdempotencyTTL,
		Credits:          creditPolicy(cfg),
		RateLimit:        httpapi.RateLimit{Requests: cfg.RateLimitRequests, Per: cfg.RateLimitPer},
		Maintenance:      cfg.Maintenance,
		Changes:          changes,
		Stop:             stopping,
		Metrics:          stats.Handler(),
		Logger:           logger,
	})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for every request, and long-polls and event streams
	// would hold it for up to their end: they end when it begins.
	srv.RegisterOnShutdown(func() { close(stopping) })

	printBanner(stdout, cfg, "http://"+reachable(ln.Addr()), links.PublicURL, storeName, keys)
	logger.Info("serving", "addr", ln.Addr().String(), "public_url", links.PublicURL, "owner", owner,
		"callback_timeout", cfg.CallbackTimeout, "callback_retry_delays", cfg.CallbackRetryDelays,
		"callback_per_host", cfg.CallbackPerHost)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), shutdownGrace)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error { return runner.Run(gctx) })
	g.Go(func() error { return dispatcher.Run(gctx) })
	if ready != nil {
		ready("http://" + reachable(ln.Addr()))
	}
	err = g.Wait()
	logger.Info("stopped")
	return err
}

// openStore opens the store cfg names, PostgreSQL at cfg.DatabaseURL or
// else SQLite in the data dir, and says which for the banner.
func openStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (task.Store, string, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, "", fmt.Errorf("create data dir: %w", err)
	}
	if cfg.DatabaseURL != "" {
		st, err := postgres.Open(ctx, cfg.DatabaseURL, postgres.Options{Logger: logger})
		if err != nil {
			return nil, "", err
		}
		return st, "PostgreSQL " + redacted(cfg.DatabaseURL), nil
	}
	path := filepath.Join(cfg.DataDir, "tunehook.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{Logger: logger})
	if err != nil {
		return nil, "", err
	}
	return st, "SQLite " + path, nil
}

// redacted returns a database URL fit to print: without its password.
func redacted(databaseURL string) string {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// keySet is the API keys the server accepts and where they come from.
type keySet struct {
	accepted []string
	source   string
	// fresh is set when the key was generated by this start: the banner
	// shows it this one time.
	fresh bool
}

// apiKeys returns the configured keys or, with none configured, the key
// kept in the data dir, generated on first start.
func apiKeys(cfg config.Config) (keySet, error) {
	if len(cfg.APIKeys) > 0 {
		return keySet{accepted: cfg.APIKeys, source: fmt.Sprintf("%d from TUNEHOOK_API_KEYS", len(cfg.APIKeys))}, nil
	}
	if cfg.DatabaseURL != "" {
		// A key generated into one instance's data dir would be refused by
		// the others behind the same load balancer.
		return keySet{}, errors.New("TUNEHOOK_API_KEYS: required with TUNEHOOK_DATABASE_URL, so that every instance sharing the database accepts the same keys")
	}
	path := filepath.Join(cfg.DataDir, "api-key")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		key := strings.TrimSpace(string(b))
		if key == "" {
			return keySet{}, fmt.Errorf("API key file %s is empty; delete it to generate a new key", path)
		}
		return keySet{accepted: []string{key}, source: "generated on first start, kept in " + path}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return keySet{}, fmt.Errorf("read API key: %w", err)
	}
	key := "th_" + rand.Text()
	if err := writeNew(path, key+"\n"); err != nil {
		return keySet{}, fmt.Errorf("save API key: %w", err)
	}
	return keySet{accepted: []string{key}, source: "generated now and saved in " + path + "; shown only this once", fresh: true}, nil
}

// writeNew creates path, readable by its owner only, and writes s to it.
func writeNew(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// printBanner tells the user where the server is and how to call it, in one
// write: whoever reads the first line of it has the rest too.
func printBanner(out io.Writer, cfg config.Config, listenURL, publicURL, storeName string, keys keySet) {
	w := new(bytes.Buffer)
	key := "$TUNEHOOK_API_KEY"
	fmt.Fprintf(w, "tunehook %s listening on %s\n", tunehook.Version, listenURL)
	if publicURL != listenURL {
		fmt.Fprintf(w, "  public:   %s\n", publicURL)
	}
	fmt.Fprintf(w, "  database: %s\n", storeName)
	fmt.Fprintf(w, "  media:    %s\n", cfg.MediaDir)
	if keys.fresh || cfg.Dev {
		// A sandbox's key is shown every time: it guards nothing of value.
		key = keys.accepted[0]
		fmt.Fprintf(w, "  API key:  %s  (%s)\n", key, keys.source)
	} else {
		fmt.Fprintf(w, "  API key:  %s\n", keys.source)
	}
	if cfg.Dev {
		fmt.Fprintf(w, "  sandbox:  simulation on: put tunehook:fail:501, tunehook:fail:400@first or tunehook:slow in a prompt\n")
	}
	fmt.Fprintf(w, "  try:      curl -s %s/api/v1/generate -H \"Authorization: Bearer %s\" -H 'Content-Type: application/json' \\\n"+
		"              -d '{\"customMode\":false,\"instrumental\":false,\"model\":\"V5\",\"prompt\":\"a calm piano song about the sea\",\"callBackUrl\":\"https://example.com/callback\"}'\n",
		publicURL, key)
	if cfg.Dev {
		fmt.Fprintf(w, "  poll:     curl -s '%s/api/v1/generate/record-info?taskId=TASK_ID&wait=30' -H \"Authorization: Bearer %s\"\n", publicURL, key)
	}
	out.Write(w.Bytes())
}

// reachable turns a listener address into one a client can use: an
// unspecified host (0.0.0.0, ::) becomes localhost.
func reachable(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// instanceName names this process as a lease owner: unique among instances
// and restarts, readable in the database.
func instanceName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", cmp.Or(host, "tunehook"), os.Getpid(), rand.Text()[:6])
}

// creditPolicy returns the credits cfg sets, or nil when they are off.
func creditPolicy(cfg config.Config) *httpapi.Credits {
	if cfg.Credits == nil {
		return nil
	}
	return &httpapi.Credits{Initial: *cfg.Credits, PerTask: cfg.CreditsPerTask}
}
