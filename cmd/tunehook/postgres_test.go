package main

// End-to-end tests of what only PostgreSQL gives: several instances on one
// database, and a database that goes away and comes back.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tunehook/tunehook"
	"github.com/tunehook/tunehook/internal/pgtest"
)

// taskLease is the Runner's default lease: how long a dead instance's
// stage stays claimed before another instance may take it over.
const taskLease = 30 * time.Second

// Three instances share one database, one media directory and one public
// URL behind a load balancer. One is SIGKILLed mid-run: every task still
// succeeds, every stage's callback arrives, each stage is generated once,
// the survivors take over within the lease time, and the only duplicates
// are attempts that were in flight at the kill.
func TestInstancesShareWork(t *testing.T) {
	t.Parallel()
	const tasks = 240
	lb := &balancer{}
	front := httptest.NewServer(lb)
	t.Cleanup(front.Close)
	// Answering takes a moment, so attempts are in flight when one dies.
	rcv := newReceiver(t, func(delivery, int) int {
		time.Sleep(20 * time.Millisecond)
		return http.StatusOK
	})
	env := []string{
		"TUNEHOOK_DATABASE_URL=" + pgtest.URL(t),
		"TUNEHOOK_MEDIA_DIR=" + t.TempDir(),
		"TUNEHOOK_PUBLIC_URL=" + front.URL,
		"TUNEHOOK_SYNTH_DELAYS=0s,300ms,300ms",
		"TUNEHOOK_SYNTH_DURATION=1s",
	}
	var instances []*server
	for range 3 {
		s := startServer(t, t.TempDir(), env...)
		instances = append(instances, s)
		lb.add(s.URL)
	}
	gateway := &server{t: t, URL: front.URL}

	ids := make([]string, tasks)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < tasks; i += 8 {
				ids[i] = gateway.submit(generateBody(rcv.URL))
			}
		})
	}
	wg.Wait()

	// Only the moment of the kill: generous, for a loaded machine.
	waitUntil(t, 3*time.Minute, "a third of the tasks complete", func() bool { return rcv.count("complete") >= tasks/3 })
	victim := instances[1]
	killed := time.Now()
	victim.kill()
	lb.remove(victim.URL)

	stages := []tunehook.CallbackType{"text", "first", "complete"}
	waitUntil(t, taskLease+60*time.Second, "every stage of every task is delivered", func() bool {
		seen := map[string]int{}
		for _, d := range rcv.deliveries() {
			seen[string(d.body.Data.CallbackType)]++
		}
		return seen["text"] >= tasks && seen["first"] >= tasks && seen["complete"] >= tasks && deliveredAll(rcv, ids, stages)
	})
	// The dead instance's leases ran out and the survivors took over. (A
	// bound on correctness, generous for a loaded machine: the lease plus
	// a render and a delivery, not a speed goal.)
	if took := time.Since(killed); took > taskLease+20*time.Second {
		t.Errorf("the last callback came %v after the kill, want within the %v lease and some slack", took, taskLease)
	}
	for _, id := range ids {
		if st := gateway.recordInfo(id).Status; st != tunehook.StatusSuccess {
			t.Errorf("task %s: status %s, want SUCCESS", id, st)
		}
	}

	got := rcv.deliveries()
	duplicates, inFlight := duplicateCount(got), inFlightAt(got, []time.Time{killed})
	t.Logf("%d callbacks, %d duplicates, %d attempts in flight at the kill", len(got), duplicates, inFlight)
	if duplicates > inFlight {
		t.Errorf("%d duplicate callbacks, more than the %d attempts in flight at the kill", duplicates, inFlight)
	}

	// Each stage was committed once, by whichever instance ran it.
	for _, id := range ids {
		gateway.checkStagesOnce(id, stages)
	}
}

// deliveredAll reports whether every task has called back every stage.
func deliveredAll(rcv *receiver, ids []string, stages []tunehook.CallbackType) bool {
	have := map[string]bool{}
	for _, d := range rcv.deliveries() {
		have[d.body.Data.TaskID+"/"+string(d.body.Data.CallbackType)] = true
	}
	for _, id := range ids {
		for _, st := range stages {
			if !have[id+"/"+string(st)] {
				return false
			}
		}
	}
	return true
}

// Every instance serves every task's media from the shared directory.
func TestInstancesServeEachOthersMedia(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, nil)
	env := []string{"TUNEHOOK_DATABASE_URL=" + pgtest.URL(t), "TUNEHOOK_MEDIA_DIR=" + t.TempDir(), "TUNEHOOK_SYNTH_DELAYS=0s,0s,0s"}
	a := startServer(t, t.TempDir(), env...)
	b := startServer(t, t.TempDir(), env...)
	id := a.submit(generateBody(rcv.URL))
	waitUntil(t, 30*time.Second, "the task completes", func() bool { return b.recordInfo(id).Status == tunehook.StatusSuccess })
	for _, tr := range b.recordInfo(id).Response.SunoData {
		for _, link := range []string{tr.AudioURL, tr.StreamAudioURL, tr.ImageURL} {
			u, err := url.Parse(link)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []*server{a, b} {
				body, _ := download(t, s.URL+u.Path, "")
				if len(body) == 0 {
					t.Errorf("%s%s: empty", s.URL, u.Path)
				}
			}
		}
	}
}

// The database goes away while tasks run: the server stays up, answers API
// calls with a 500 envelope at once instead of hanging, and once the
// database is back it finishes every task and delivers every callback.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	db := pgtest.URL(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, u.Host)
	u.Host = proxy.addr()
	rcv := newReceiver(t, nil)
	srv := startServer(t, t.TempDir(), "TUNEHOOK_DATABASE_URL="+u.String(), "TUNEHOOK_SYNTH_DELAYS=0s,1500ms,1500ms")
	var ids []string
	for range 3 {
		ids = append(ids, srv.submit(generateBody(rcv.URL)))
	}
	waitUntil(t, 20*time.Second, "the text callbacks", func() bool { return rcv.count("text") == 3 })

	proxy.cut()
	for _, call := range []struct{ method, path string }{
		{"POST", "/api/v1/generate"},
		{"GET", "/api/v1/generate/record-info?taskId=" + ids[0]},
	} {
		start := time.Now()
		var body any
		if call.method == "POST" {
			body = generateBody(rcv.URL)
		}
		env := srv.api(call.method, call.path, testKey, body, nil)
		if env.Code != 500 || env.Msg == "" {
			t.Errorf("%s %s with the database away: code %d %q, want 500 and a message", call.method, call.path, env.Code, env.Msg)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s %s took %v with the database away: it should fail fast", call.method, call.path, took)
		}
	}
	time.Sleep(3 * time.Second) // stages fall due and fail meanwhile
	if !healthy(t, srv.URL) {
		t.Fatal("server down during the outage")
	}
	proxy.restore()

	ids = append(ids, srv.submit(generateBody(rcv.URL)))
	waitUntil(t, taskLease+40*time.Second, "every task completes after the outage", func() bool {
		return deliveredAll(rcv, ids, []tunehook.CallbackType{"text", "first", "complete"})
	})
	for _, id := range ids {
		checkDeliveredAtLeastOnce(t, rcv, id)
	}
}

// A database that cannot be reached at start stops the server with a
// message that names it, and a non-zero exit.
func TestDatabaseUnreachableAtStart(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "TUNEHOOK_DATA_DIR="+t.TempDir(), "TUNEHOOK_API_KEYS="+testKey,
		"TUNEHOOK_DATABASE_URL=postgres://postgres@127.0.0.1:1/tunehook?sslmode=disable")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "127.0.0.1:1") {
		t.Errorf("message does not name the database address:\n%s", out)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("gave up after %v, want a prompt failure", took)
	}
}

// With PostgreSQL, every instance must accept the same keys: a key
// generated into one data dir would not do.
func TestPostgresNeedsAPIKeys(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "TUNEHOOK_DATA_DIR="+t.TempDir(), "TUNEHOOK_ADDR=127.0.0.1:0", "TUNEHOOK_DATABASE_URL="+pgtest.URL(t))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "TUNEHOOK_API_KEYS") {
		t.Errorf("exit %v, want a refusal naming TUNEHOOK_API_KEYS:\n%s", err, out)
	}
}

// tunehook migrate brings either database up to date, and a second run is
// a no-op.
func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, st store) {
		for range 2 {
			cmd := exec.Command(binary, "migrate")
			cmd.Env = append(os.Environ(), append(st.env, "TUNEHOOK_DATA_DIR="+t.TempDir())...)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "schema up to date") {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
		}
	})
}

// balancer is the load balancer in front of several instances: round robin,
// skipping instances that do not answer.
type balancer struct {
	mu       sync.Mutex
	backends []string
	next     int
}

func (b *balancer) add(u string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = append(b.backends, u)
}

func (b *balancer) remove(u string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = slices.DeleteFunc(b.backends, func(x string) bool { return x == u })
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	backends, start := slices.Clone(b.backends), b.next
	b.next++
	b.mu.Unlock()
	for i := range backends {
		target := backends[(start+i)%len(backends)]
		req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			continue // a dead instance: the next one answers
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		resp.Body.Close()
		return
	}
	http.Error(w, "no instance answers", http.StatusBadGateway)
}

// tcpProxy stands between tunehook and PostgreSQL so that a test can take
// the database away (every connection cut, new ones refused) and bring it
// back, without touching the server other tests share.
type tcpProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]bool
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, ln: ln, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		go p.pipe(c)
	}
}

func (p *tcpProxy) pipe(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() {
		io.Copy(up, c)
		up.Close()
	}()
	io.Copy(c, up)
	c.Close()
}

// cut closes every connection and refuses new ones until restore.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// PostgreSQL itself restarts while callbacks are being delivered: on a
// private cluster of this test's own, so no other test sees it. tunehook
// rides it out and loses nothing.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	pg := startPrivatePostgres(t)
	rcv := newReceiver(t, func(delivery, int) int {
		time.Sleep(50 * time.Millisecond)
		return http.StatusOK
	})
	srv := startServer(t, t.TempDir(), "TUNEHOOK_DATABASE_URL="+pg.url, "TUNEHOOK_SYNTH_DELAYS=0s,500ms,500ms", "TUNEHOOK_SYNTH_DURATION=1s")
	var ids []string
	for range 20 {
		ids = append(ids, srv.submit(generateBody(rcv.URL)))
	}
	waitUntil(t, 30*time.Second, "callbacks are being delivered", func() bool { return rcv.count("text") >= 5 })
	pg.restart()

	ids = append(ids, srv.submit(generateBody(rcv.URL)))
	waitUntil(t, taskLease+40*time.Second, "every task completes after the restart", func() bool {
		return deliveredAll(rcv, ids, []tunehook.CallbackType{"text", "first", "complete"})
	})
	for _, id := range ids {
		checkDeliveredAtLeastOnce(t, rcv, id)
	}
}

// privatePostgres is a PostgreSQL cluster that one test starts, restarts
// and removes.
type privatePostgres struct {
	t      *testing.T
	bin    string   // the directory of initdb and pg_ctl
	asUser []string // the command prefix that runs them as a user other than root, if needed
	dir    string
	url    string
}

// startPrivatePostgres initialises and starts a cluster in a temporary
// directory on a free port, or skips the test, saying why, where the
// machine has no PostgreSQL server binaries.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb): the PostgreSQL restart test needs them")
	}
	slices.Sort(bins)
	pg := &privatePostgres{t: t, bin: strings.TrimSuffix(bins[len(bins)-1], "/initdb")}
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		if _, err := exec.LookPath("runuser"); err != nil {
			t.Skip("running as root without runuser: cannot start a private PostgreSQL")
		}
		pg.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	dir, err := os.MkdirTemp("", "tunehook-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg.dir = dir
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	port := freeAddr(t)[len("127.0.0.1:"):]
	pg.run(pg.bin+"/initdb", "-D", dir+"/data", "-U", "postgres", "-A", "trust", "--no-sync")
	pg.ctl("start", "-w", "-l", dir+"/log", "-o",
		fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir))
	t.Cleanup(func() {
		pg.ctl("stop", "-m", "immediate", "-w")
		os.RemoveAll(dir)
	})
	pg.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable", port)
	return pg
}

// restart restarts the cluster, cutting every connection (mode fast), and
// returns once it accepts connections again.
func (pg *privatePostgres) restart() {
	pg.t.Helper()
	// -l: the server's output must not go to this process's pipes, or
	// running pg_ctl would wait for the server to exit.
	pg.ctl("restart", "-m", "fast", "-w", "-l", pg.dir+"/log")
}

// ctl runs pg_ctl on the cluster.
func (pg *privatePostgres) ctl(args ...string) {
	pg.t.Helper()
	pg.run(pg.bin+"/pg_ctl", append([]string{"-D", pg.dir + "/data"}, args...)...)
}

func (pg *privatePostgres) run(name string, args ...string) {
	pg.t.Helper()
	argv := append(slices.Clone(pg.asUser), append([]string{name}, args...)...)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(pg.dir + "/log")
		pg.t.Fatalf("%s: %v\n%s\nserver log:\n%s", strings.Join(argv, " "), err, out, log)
	}
}
