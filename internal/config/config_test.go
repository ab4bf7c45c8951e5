package config

import (
	"io"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load("tunehook serve", nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr:                "127.0.0.1:8080",
		DataDir:             "tunehook-data",
		MediaDir:            filepath.Join("tunehook-data", "media"),
		CallbackTimeout:     15 * time.Second,
		CallbackRetryDelays: []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute},
		CallbackPerHost:     256,
		SynthDelays:         [3]time.Duration{10 * time.Second, 25 * time.Second, 30 * time.Second},
		CreditsPerTask:      10,
		IdempotencyTTL:      24 * time.Hour,
		RateLimitRequests:   20,
		RateLimitPer:        10 * time.Second,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v,\nwant %+v", c, want)
	}
}

func TestLoadEveryName(t *testing.T) {
	t.Parallel()
	e := map[string]string{
		"TUNEHOOK_ADDR":                    "0.0.0.0:9000",
		"TUNEHOOK_DATA_DIR":                "/var/lib/tunehook/",
		"TUNEHOOK_DATABASE_URL":            "postgres://u@db/tunehook",
		"TUNEHOOK_MEDIA_DIR":               "/srv/media",
		"TUNEHOOK_PUBLIC_URL":              "https://music.example.com/",
		"TUNEHOOK_API_KEYS":                " key-one , key-two,,",
		"TUNEHOOK_CALLBACK_TIMEOUT":        "2s",
		"TUNEHOOK_CALLBACK_RETRY_DELAYS":   "1s, 2s,3s",
		"TUNEHOOK_CALLBACK_PER_HOST":       "32",
		"TUNEHOOK_ALLOW_PRIVATE_CALLBACKS": "true",
		"TUNEHOOK_CALLBACK_ALLOW_CIDRS":    "10.1.2.0/24, fd00:1::/64",
		"TUNEHOOK_REQUIRE_HTTPS_CALLBACKS": "true",
		"TUNEHOOK_WEBHOOK_HMAC_KEY":        "whsec_c2VjcmV0",
		"TUNEHOOK_SIMULATION":              "1",
		"TUNEHOOK_SYNTH_DELAYS":            "0s,100ms,200ms",
		"TUNEHOOK_SYNTH_DURATION":          "5s",
		"TUNEHOOK_CREDITS":                 "0",
		"TUNEHOOK_CREDITS_PER_TASK":        "25",
		"TUNEHOOK_IDEMPOTENCY_TTL":         "48h",
		"TUNEHOOK_RATE_LIMIT":              "5/1m",
		"TUNEHOOK_MAINTENANCE":             "true",
	}
	c, err := Load("tunehook serve", nil, env(e), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr:                  "0.0.0.0:9000",
		DataDir:               "/var/lib/tunehook",
		DatabaseURL:           "postgres://u@db/tunehook",
		MediaDir:              "/srv/media",
		PublicURL:             "https://music.example.com",
		APIKeys:               []string{"key-one", "key-two"},
		CallbackTimeout:       2 * time.Second,
		CallbackRetryDelays:   []time.Duration{time.Second, 2 * time.Second, 3 * time.Second},
		CallbackPerHost:       32,
		AllowPrivateCallbacks: true,
		CallbackAllowCIDRs:    []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24"), netip.MustParsePrefix("fd00:1::/64")},
		RequireHTTPSCallbacks: true,
		WebhookHMACKeys:       []string{"whsec_c2VjcmV0"},
		Simulation:            true,
		SynthDelays:           [3]time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond},
		SynthDuration:         5 * time.Second,
		Credits:               new(0),
		CreditsPerTask:        25,
		IdempotencyTTL:        48 * time.Hour,
		RateLimitRequests:     5,
		RateLimitPer:          time.Minute,
		Maintenance:           true,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v,\nwant %+v", c, want)
	}
}

func TestLoadPrecedence(t *testing.T) {
	t.Parallel()
	e := env(map[string]string{"TUNEHOOK_CALLBACK_TIMEOUT": "3s", "TUNEHOOK_SYNTH_DURATION": "9s"})
	c, err := Load("tunehook serve", []string{"--callback-timeout", "4s", "--dev"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.CallbackTimeout != 4*time.Second {
		t.Errorf("flag over env: got %v, want 4s", c.CallbackTimeout)
	}
	if c.SynthDuration != 9*time.Second {
		t.Errorf("env over --dev default: got %v, want 9s", c.SynthDuration)
	}
	if !c.Dev || !c.Simulation || !c.AllowPrivateCallbacks || c.SynthDelays[2] != 2*time.Second {
		t.Errorf("--dev preset not applied: %+v", c)
	}
}

func TestLoadNoRetries(t *testing.T) {
	t.Parallel()
	c, err := Load("tunehook serve", nil, env(map[string]string{"TUNEHOOK_CALLBACK_RETRY_DELAYS": "none"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.CallbackRetryDelays == nil || len(c.CallbackRetryDelays) != 0 {
		t.Errorf("got %#v, want an empty, non-nil list", c.CallbackRetryDelays)
	}
}

// Every bad value is refused with a message that names where it came from.
func TestLoadRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		wantInError string
	}{
		{"TUNEHOOK_ADDR", "8080", "host:port"},
		{"TUNEHOOK_ADDR", "localhost:http", "port"},
		{"TUNEHOOK_ADDR", "localhost:70000", "port"},
		{"TUNEHOOK_DATABASE_URL", "mysql://db", "postgres"},
		{"TUNEHOOK_PUBLIC_URL", "music.example.com", "absolute"},
		{"TUNEHOOK_PUBLIC_URL", "ftp://music.example.com", "http"},
		{"TUNEHOOK_PUBLIC_URL", "https://x.example/?a=1", "query"},
		{"TUNEHOOK_API_KEYS", "good,bad key", "printable"},
		{"TUNEHOOK_CALLBACK_TIMEOUT", "15", "duration"},
		{"TUNEHOOK_CALLBACK_TIMEOUT", "0s", "from"},
		{"TUNEHOOK_CALLBACK_TIMEOUT", "-1s", "from"},
		{"TUNEHOOK_CALLBACK_TIMEOUT", "11m", "from"},
		{"TUNEHOOK_CALLBACK_RETRY_DELAYS", "1m,,5m", "duration"},
		{"TUNEHOOK_CALLBACK_RETRY_DELAYS", "1m,-5m", "from"},
		{"TUNEHOOK_CALLBACK_RETRY_DELAYS", strings.Repeat("1s,", 20) + "1s", "20"},
		{"TUNEHOOK_CALLBACK_PER_HOST", "0", "from 1 to 4096"},
		{"TUNEHOOK_CALLBACK_PER_HOST", "4097", "from 1 to 4096"},
		{"TUNEHOOK_CALLBACK_PER_HOST", "many", "whole number"},
		{"TUNEHOOK_ALLOW_PRIVATE_CALLBACKS", "yes", "true or false"},
		{"TUNEHOOK_CALLBACK_ALLOW_CIDRS", "10.1.2.0", "CIDR"},
		{"TUNEHOOK_CALLBACK_ALLOW_CIDRS", "10.1.2.0/33", "CIDR"},
		{"TUNEHOOK_CALLBACK_ALLOW_CIDRS", "internal.example/24", "CIDR"},
		{"TUNEHOOK_CALLBACK_ALLOW_CIDRS", "fe80::%eth0/64", "CIDR"},
		{"TUNEHOOK_CALLBACK_ALLOW_CIDRS", "10.1.2.0/24,10.1.2.3/24", "did you mean 10.1.2.0/24?"},
		{"TUNEHOOK_CALLBACK_ALLOW_CIDRS", "fd00:1::1/64", "did you mean fd00:1::/64?"},
		{"TUNEHOOK_REQUIRE_HTTPS_CALLBACKS", "yes", "true or false"},
		{"TUNEHOOK_WEBHOOK_HMAC_KEY", "whsec_!!!", "base64"},
		{"TUNEHOOK_WEBHOOK_HMAC_KEY", "whsec_bmV3,whsec_", "key 2: a whsec_ key must be followed by standard base64"},
		{"TUNEHOOK_SIMULATION", "on", "true or false"},
		{"TUNEHOOK_SYNTH_DELAYS", "1s,2s", "3 durations"},
		{"TUNEHOOK_SYNTH_DELAYS", "1s,2s,3s,4s", "3 durations"},
		{"TUNEHOOK_SYNTH_DELAYS", "1s,2s,2h", "from"},
		{"TUNEHOOK_SYNTH_DURATION", "9m", "from"},
		{"TUNEHOOK_SYNTH_DURATION", "500ms", "from"},
		{"TUNEHOOK_CREDITS", "-1", "from 0 to 2147483647"},
		{"TUNEHOOK_CREDITS", "2147483648", "from 0 to 2147483647"},
		{"TUNEHOOK_CREDITS", "lots", "whole number"},
		{"TUNEHOOK_CREDITS_PER_TASK", "0", "from 1 to 1000000"},
		{"TUNEHOOK_CREDITS_PER_TASK", "2.5", "whole number"},
		{"TUNEHOOK_IDEMPOTENCY_TTL", "23h59m", "from 24h0m0s"},
		{"TUNEHOOK_IDEMPOTENCY_TTL", "721h", "to 720h0m0s"},
		{"TUNEHOOK_IDEMPOTENCY_TTL", "1d", "duration"},
		{"TUNEHOOK_RATE_LIMIT", "20", "N/DURATION"},
		{"TUNEHOOK_RATE_LIMIT", "20/10", "duration"},
		{"TUNEHOOK_RATE_LIMIT", "x/10s", "N/DURATION"},
		{"TUNEHOOK_RATE_LIMIT", "-1/10s", "N from 1 to 10000"},
		{"TUNEHOOK_RATE_LIMIT", "10001/10s", "N from 1 to 10000"},
		{"TUNEHOOK_RATE_LIMIT", "20/0s", "from"},
		{"TUNEHOOK_RATE_LIMIT", "none", "or off"},
		{"TUNEHOOK_MAINTENANCE", "soon", "true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			_, err := Load("tunehook serve", nil, env(map[string]string{tt.name: tt.value}), io.Discard)
			if err == nil {
				t.Fatalf("got no error, want one")
			}
			for _, want := range []string{tt.name, tt.wantInError} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got %q, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestLoadFlagErrors(t *testing.T) {
	t.Parallel()
	if _, err := Load("tunehook serve", []string{"--callback-timeout", "soon"}, env(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "--callback-timeout") {
		t.Errorf("got %v, want an error naming --callback-timeout", err)
	}
	if _, err := Load("tunehook serve", []string{"--no-such-flag"}, env(nil), io.Discard); err == nil {
		t.Error("got no error for an unknown flag")
	}
	if _, err := Load("tunehook serve", []string{"extra"}, env(nil), io.Discard); err == nil {
		t.Error("got no error for a stray argument")
	}
}

func TestLoadBoolFlags(t *testing.T) {
	t.Parallel()
	c, err := Load("tunehook serve", []string{"--simulation", "--allow-private-callbacks=false"}, env(map[string]string{"TUNEHOOK_ALLOW_PRIVATE_CALLBACKS": "true"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Simulation || c.AllowPrivateCallbacks {
		t.Errorf("got simulation %v, allow private %v; want true, false", c.Simulation, c.AllowPrivateCallbacks)
	}
}

// Several keys rotate: the first is the current one, all of them sign.
func TestLoadWebhookKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value    string
		wantKeys []string
	}{
		{"", nil},
		{"secret", []string{"secret"}},
		{"whsec_bmV3, whsec_b2xk", []string{"whsec_bmV3", "whsec_b2xk"}},
		{" new-key ,, old-key, ", []string{"new-key", "old-key"}},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			t.Parallel()
			c, err := Load("tunehook serve", nil, env(map[string]string{"TUNEHOOK_WEBHOOK_HMAC_KEY": tt.value}), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.WebhookHMACKeys, tt.wantKeys) {
				t.Errorf("got keys %q, want %q", c.WebhookHMACKeys, tt.wantKeys)
			}
		})
	}
}

func TestLoadCallbackSecurityFlags(t *testing.T) {
	t.Parallel()
	args := []string{"--require-https-callbacks", "--callback-allow-cidrs", "192.168.7.0/24,::1/128", "--webhook-hmac-key", "k1,k2"}
	e := env(map[string]string{"TUNEHOOK_CALLBACK_ALLOW_CIDRS": "10.0.0.0/8", "TUNEHOOK_REQUIRE_HTTPS_CALLBACKS": "false"})
	c, err := Load("tunehook serve", args, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	wantCIDRs := []netip.Prefix{netip.MustParsePrefix("192.168.7.0/24"), netip.MustParsePrefix("::1/128")}
	if !c.RequireHTTPSCallbacks || !reflect.DeepEqual(c.CallbackAllowCIDRs, wantCIDRs) || !reflect.DeepEqual(c.WebhookHMACKeys, []string{"k1", "k2"}) {
		t.Errorf("got https %v, CIDRs %v, keys %q; want true, %v, [k1 k2]", c.RequireHTTPSCallbacks, c.CallbackAllowCIDRs, c.WebhookHMACKeys, wantCIDRs)
	}
}

// An error about a setting that may hold a credential names the setting but
// does not repeat its value.
func TestLoadHidesSecrets(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"TUNEHOOK_DATABASE_URL":     "mysql://user:hunter2@db/x",
		"TUNEHOOK_API_KEYS":         "good,hunter2 x",
		"TUNEHOOK_WEBHOOK_HMAC_KEY": "whsec_hunter2!",
	} {
		_, err := Load("tunehook serve", nil, env(map[string]string{name: value}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: got %v, want an error naming the setting without its value", name, err)
		}
	}
}

// Credits are off unless a balance is given, by flag or variable.
func TestLoadCredits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want *int
	}{
		{"default", nil, nil, nil},
		{"variable", nil, map[string]string{"TUNEHOOK_CREDITS": "500"}, new(500)},
		{"flag", []string{"--credits", "20"}, nil, new(20)},
		{"empty flag over the variable", []string{"--credits="}, map[string]string{"TUNEHOOK_CREDITS": "500"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load("tunehook serve", tt.args, env(tt.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Credits, tt.want) {
				t.Errorf("got credits %v, want %v", c.Credits, tt.want)
			}
		})
	}
}

func TestLoadRateLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		n     int
		per   time.Duration
	}{
		{"off", 0, 0},
		{"0", 0, 0},
		{"1/1ms", 1, time.Millisecond},
		{" 20 / 10s ", 20, 10 * time.Second},
		{"10000/24h", 10000, 24 * time.Hour},
	}
	for _, tt := range tests {
		c, err := Load("tunehook serve", []string{"--rate-limit", tt.value}, env(nil), io.Discard)
		if err != nil || c.RateLimitRequests != tt.n || c.RateLimitPer != tt.per {
			t.Errorf("--rate-limit %q: got %d per %v, %v; want %d per %v", tt.value, c.RateLimitRequests, c.RateLimitPer, err, tt.n, tt.per)
		}
	}
}

// --dev uses a temporary data dir (left empty for serve to make) unless a
// data dir is given by flag or variable; a given media dir stays.
func TestLoadDevDataDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		args              []string
		env               map[string]string
		wantData, wantMed string
	}{
		{"temporary", []string{"--dev"}, nil, "", ""},
		{"temporary with a media dir", []string{"--dev"}, map[string]string{"TUNEHOOK_MEDIA_DIR": "/srv/m"}, "", "/srv/m"},
		{"flag", []string{"--dev", "--data-dir", "/d"}, nil, "/d", "/d/media"},
		{"variable", []string{"--dev"}, map[string]string{"TUNEHOOK_DATA_DIR": "/e"}, "/e", "/e/media"},
		{"without --dev", nil, nil, "tunehook-data", filepath.Join("tunehook-data", "media")},
	}
	for _, tt := range tests {
		c, err := Load("tunehook serve", tt.args, env(tt.env), io.Discard)
		if err != nil || c.DataDir != tt.wantData || c.MediaDir != tt.wantMed {
			t.Errorf("%s: got data dir %q, media dir %q, %v; want %q, %q", tt.name, c.DataDir, c.MediaDir, err, tt.wantData, tt.wantMed)
		}
	}
}
