// Package config loads tunehook's settings from flags and TUNEHOOK_*
// environment variables, fills in defaults and checks every value, so a bad
// setting stops the server at start with a message that names it.
package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of tunehook serve.
type Config struct {
	Addr string
	// DataDir is empty under --dev when no data dir is given: serve then
	// uses a temporary directory, removed at exit.
	DataDir     string
	DatabaseURL string // empty: SQLite in DataDir
	MediaDir    string
	// PublicURL is the base of media URLs, without a final slash. Empty
	// means "http://" and the address the server actually listens on.
	PublicURL             string
	APIKeys               []string // empty: a generated key kept in DataDir
	CallbackTimeout       time.Duration
	CallbackRetryDelays   []time.Duration // one entry per retry
	CallbackPerHost       int             // attempts in flight to one receiving host
	AllowPrivateCallbacks bool
	// CallbackAllowCIDRs are ranges callbacks may reach even though they
	// are not public, such as an internal receiver's 10.1.2.0/24.
	CallbackAllowCIDRs    []netip.Prefix
	RequireHTTPSCallbacks bool
	// WebhookHMACKeys sign callbacks: the first is the current key, and
	// during a rotation every one of them signs. Empty: unsigned.
	WebhookHMACKeys []string
	Simulation      bool
	SynthDelays     [3]time.Duration // pauses before text, first, complete
	SynthDuration   time.Duration    // 0: each track lasts 2 to 4 minutes
	Dev             bool
	// Credits is every API key's starting balance; nil: credits are off,
	// and keys are unlimited.
	Credits        *int
	CreditsPerTask int           // the cost of one task, when credits are on
	IdempotencyTTL time.Duration // how long an Idempotency-Key is kept
	// RateLimitRequests submits per RateLimitPer are allowed to each key;
	// 0 means no limit.
	RateLimitRequests int
	RateLimitPer      time.Duration
	Maintenance       bool
}

// A setting is one row of the configuration table: its flag, its variable,
// its default (and the default under --dev), and how to store its value.
type setting struct {
	flag, env   string
	def, devDef string
	usage       string
	set         func(c *Config, v string) error
}

// secret names the settings whose values may hold credentials: an error
// about them does not repeat the value into logs.
var secret = map[string]bool{
	"TUNEHOOK_DATABASE_URL":     true,
	"TUNEHOOK_API_KEYS":         true,
	"TUNEHOOK_WEBHOOK_HMAC_KEY": true,
}

var settings = []setting{
	{"addr", "TUNEHOOK_ADDR", "127.0.0.1:8080", "", "listen `host:port`", func(c *Config, v string) error {
		_, port, err := net.SplitHostPort(v)
		if err != nil {
			return errors.New("want host:port, such as 127.0.0.1:8080")
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return errors.New("the port must be a number from 0 to 65535")
		}
		c.Addr = v
		return nil
	}},
	{"data-dir", "TUNEHOOK_DATA_DIR", "./tunehook-data", "", "`directory` of the SQLite database, the media and the generated API key", func(c *Config, v string) error {
		c.DataDir = filepath.Clean(v)
		return nil
	}},
	{"database-url", "TUNEHOOK_DATABASE_URL", "", "", "`postgres://...` URL of a PostgreSQL database shared by instances; empty: SQLite in the data dir", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return errors.New("want a postgres:// or postgresql:// URL, or nothing for SQLite")
		}
		c.DatabaseURL = v
		return nil
	}},
	{"media-dir", "TUNEHOOK_MEDIA_DIR", "", "", "`directory` of audio and covers (default: media/ in the data dir; a shared path when several instances run)", func(c *Config, v string) error {
		if v != "" {
			c.MediaDir = filepath.Clean(v)
		}
		return nil
	}},
	{"public-url", "TUNEHOOK_PUBLIC_URL", "", "", "base `URL` of the media links in results (default: http://ADDR)", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return errors.New("want an absolute http or https URL without query, such as https://music.example.com")
		}
		c.PublicURL = strings.TrimRight(v, "/")
		return nil
	}},
	{"api-keys", "TUNEHOOK_API_KEYS", "", "", "accepted bearer `keys`, comma-separated (default: generate one on first start and keep it in the data dir)", func(c *Config, v string) error {
		for k := range strings.SplitSeq(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			for _, r := range k {
				if r <= ' ' || r > '~' {
					return errors.New("keys must be printable ASCII without spaces")
				}
			}
			c.APIKeys = append(c.APIKeys, k)
		}
		return nil
	}},
	{"callback-timeout", "TUNEHOOK_CALLBACK_TIMEOUT", "15s", "", "time limit (a `duration`) of one callback attempt, connect to last byte", func(c *Config, v string) error {
		d, err := parseDuration(v, time.Millisecond, 10*time.Minute)
		c.CallbackTimeout = d
		return err
	}},
	{"callback-retry-delays", "TUNEHOOK_CALLBACK_RETRY_DELAYS", "1m,5m,15m", "", "`durations` to pause before each retry of a failed callback; their count is the number of retries (\"none\": no retries)", func(c *Config, v string) error {
		if v == "none" {
			c.CallbackRetryDelays = []time.Duration{}
			return nil
		}
		ds, err := parseDurations(v, time.Millisecond, 7*24*time.Hour)
		if err != nil {
			return err
		}
		if len(ds) > 20 {
			return errors.New("at most 20 retries")
		}
		c.CallbackRetryDelays = ds
		return nil
	}},
	{"callback-per-host", "TUNEHOOK_CALLBACK_PER_HOST", "256", "", "most callback attempts (a `number`) in flight to one receiving host (host:port) at once", func(c *Config, v string) error {
		n, err := parseCount(v, 1, 4096)
		c.CallbackPerHost = n
		return err
	}},
	{"allow-private-callbacks", "TUNEHOOK_ALLOW_PRIVATE_CALLBACKS", "false", "true", "allow callbacks to loopback and private addresses (development)", func(c *Config, v string) error {
		b, err := parseBool(v)
		c.AllowPrivateCallbacks = b
		return err
	}},
	{"callback-allow-cidrs", "TUNEHOOK_CALLBACK_ALLOW_CIDRS", "", "", "`CIDRs` callbacks may reach even though they are private, comma-separated, such as 10.1.2.0/24", func(c *Config, v string) error {
		for s := range strings.SplitSeq(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("%q: want a CIDR such as 10.1.2.0/24 or fd00:1::/64", s)
			}
			if m := p.Masked(); m != p {
				// A typo in the prefix length would otherwise widen or
				// narrow the range silently.
				return fmt.Errorf("%q has bits set after the prefix: did you mean %s?", s, m)
			}
			c.CallbackAllowCIDRs = append(c.CallbackAllowCIDRs, p)
		}
		return nil
	}},
	{"require-https-callbacks", "TUNEHOOK_REQUIRE_HTTPS_CALLBACKS", "false", "", "refuse plain http callBackUrls", func(c *Config, v string) error {
		b, err := parseBool(v)
		c.RequireHTTPSCallbacks = b
		return err
	}},
	{"webhook-hmac-key", "TUNEHOOK_WEBHOOK_HMAC_KEY", "", "", "`keys` that sign callbacks, comma-separated: the first is the current one, all sign during a rotation (a whsec_<base64> secret is decoded); empty: unsigned", func(c *Config, v string) error {
		for k := range strings.SplitSeq(v, ",") {
			k = strings.TrimSpace(k)
			if k == "" {
				continue
			}
			if rest, ok := strings.CutPrefix(k, "whsec_"); ok {
				if _, err := base64.StdEncoding.DecodeString(rest); err != nil || rest == "" {
					return fmt.Errorf("key %d: a whsec_ key must be followed by standard base64", len(c.WebhookHMACKeys)+1)
				}
			}
			c.WebhookHMACKeys = append(c.WebhookHMACKeys, k)
		}
		return nil
	}},
	{"simulation", "TUNEHOOK_SIMULATION", "false", "true", "honour the tunehook:fail:CODE and tunehook:slow tokens in prompts, styles and titles", func(c *Config, v string) error {
		b, err := parseBool(v)
		c.Simulation = b
		return err
	}},
	{"synth-delays", "TUNEHOOK_SYNTH_DELAYS", "10s,25s,30s", "1s,2s,2s", "`durations` to pause before the text, first and complete stages", func(c *Config, v string) error {
		ds, err := parseDurations(v, 0, time.Hour)
		if err != nil {
			return err
		}
		if len(ds) != 3 {
			return fmt.Errorf("want 3 durations (text, first, complete), got %d", len(ds))
		}
		c.SynthDelays = [3]time.Duration(ds)
		return nil
	}},
	{"synth-duration", "TUNEHOOK_SYNTH_DURATION", "", "30s", "fixed `duration` of every track (default: 2 to 4 minutes per track)", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		d, err := parseDuration(v, time.Second, 8*time.Minute)
		c.SynthDuration = d
		return err
	}},
	{"credits", "TUNEHOOK_CREDITS", "", "", "starting balance (a `number`) of every API key, each task costing --credits-per-task, refunded if it fails with 531; empty: unlimited", func(c *Config, v string) error {
		if v == "" {
			return nil
		}
		n, err := parseCount(v, 0, math.MaxInt32)
		c.Credits = &n
		return err
	}},
	{"credits-per-task", "TUNEHOOK_CREDITS_PER_TASK", "10", "", "credits (a `number`) one task costs, when --credits is set", func(c *Config, v string) error {
		n, err := parseCount(v, 1, 1_000_000)
		c.CreditsPerTask = n
		return err
	}},
	{"idempotency-ttl", "TUNEHOOK_IDEMPOTENCY_TTL", "24h", "", "how long (a `duration`) an Idempotency-Key of a submit is kept, at least 24h", func(c *Config, v string) error {
		d, err := parseDuration(v, 24*time.Hour, 30*24*time.Hour)
		c.IdempotencyTTL = d
		return err
	}},

	{"rate-limit", "TUNEHOOK_RATE_LIMIT", "20/10s", "", "submits allowed to each key, as `N/DURATION` (counted per instance); off or 0: no limit", func(c *Config, v string) error {
		n, per, err := parseRateLimit(v)
		c.RateLimitRequests, c.RateLimitPer = n, per
		return err
	}},
	{"maintenance", "TUNEHOOK_MAINTENANCE", "false", "", "answer every /api/v1 call with code 455 (maintenance)", func(c *Config, v string) error {
		b, err := parseBool(v)
		c.Maintenance = b
		return err
	}},
}

// maxRateLimit bounds N of a rate limit: the limiter keeps the time of
// each of the last N submits of every key.
const maxRateLimit = 10000

// parseRateLimit reads "N/DURATION", or "off" or "0" for no limit (0, 0).
func parseRateLimit(v string) (int, time.Duration, error) {
	if v == "off" || v == "0" {
		return 0, 0, nil
	}
	const want = "want N/DURATION, such as 20/10s, or off"
	ns, ds, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err != nil {
		return 0, 0, errors.New(want)
	}
	if n < 1 || n > maxRateLimit {
		return 0, 0, fmt.Errorf("%s; N from 1 to %d", want, maxRateLimit)
	}
	per, err := parseDuration(strings.TrimSpace(ds), time.Millisecond, 24*time.Hour)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", want, err)
	}
	return n, per, nil
}

// Load reads the settings of command (such as "tunehook serve") from args
// (the flags after the subcommand) and getenv. A flag wins over its
// variable, which wins over the default; --dev changes some defaults into
// the sandbox preset. Usage and flag errors go to output.
func Load(command string, args []string, getenv func(string) string, output io.Writer) (Config, error) {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(output)
	dev := fs.Bool("dev", false, "sandbox preset: a temporary data dir (unless one is given), private callbacks allowed, simulation on, short stages and tracks")
	values := make([]flagValue, len(settings))
	for i, s := range settings {
		usage := fmt.Sprintf("%s (env %s", s.usage, s.env)
		if s.def != "" {
			usage += fmt.Sprintf(", default %q", s.def)
		}
		values[i].isBool = s.def == "true" || s.def == "false"
		fs.Var(&values[i], s.flag, usage+")")
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	c := Config{Dev: *dev}
	for i, s := range settings {
		v, source := s.def, "default of "+s.env
		if c.Dev && s.devDef != "" {
			v, source = s.devDef, "--dev default of "+s.env
		}
		if e := getenv(s.env); e != "" {
			v, source = strings.TrimSpace(e), s.env
		}
		if given[s.flag] {
			v, source = strings.TrimSpace(values[i].v), "--"+s.flag
		}
		if err := s.set(&c, v); err != nil {
			shown := strconv.Quote(v)
			if secret[s.env] {
				shown = "(not shown: it may hold a secret)"
			}
			return Config{}, fmt.Errorf("%s: invalid value %s: %w", source, shown, err)
		}
	}
	if c.Dev && !given["data-dir"] && getenv("TUNEHOOK_DATA_DIR") == "" {
		// The sandbox starts from nothing each time: serve makes a
		// temporary data dir.
		c.DataDir = ""
	}
	if c.MediaDir == "" && c.DataDir != "" {
		c.MediaDir = filepath.Join(c.DataDir, "media")
	}
	return c, nil
}

// flagValue holds a flag's text until Load resolves it against the
// environment and the defaults. A boolean setting's flag may stand alone
// (--simulation) or take a value (--simulation=false).
type flagValue struct {
	v      string
	isBool bool
}

func (f *flagValue) String() string     { return f.v }
func (f *flagValue) Set(v string) error { f.v = v; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.isBool }

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

func parseDuration(v string, low, high time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("want a duration such as 15s, 1m30s or 500ms")
	}
	if d < low || d > high {
		return 0, fmt.Errorf("want a duration from %v to %v", low, high)
	}
	return d, nil
}

// parseCount parses a whole number from low to high.
func parseCount(v string, low, high int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < low || n > high {
		return 0, fmt.Errorf("want a whole number from %d to %d", low, high)
	}
	return n, nil
}

func parseDurations(v string, low, high time.Duration) ([]time.Duration, error) {
	var ds []time.Duration
	for part := range strings.SplitSeq(v, ",") {
		d, err := parseDuration(strings.TrimSpace(part), low, high)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", strings.TrimSpace(part), err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}
