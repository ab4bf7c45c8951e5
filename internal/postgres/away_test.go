package postgres

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tunehook/tunehook/internal/pgtest"
	"github.com/tunehook/tunehook/internal/task"
)

// TestDatabaseAway takes the database away from a store, by killing its
// connections or by making the server unreachable: calls must return at
// once, never hang, and work again once the database is back, with every
// committed task kept; the listener must connect again too.
func TestDatabaseAway(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// away takes the database away from the store and returns the
		// function that brings it back.
		away func(t *testing.T, dsn, applicationName string, p *proxy) (back func())
		// wantErr is whether the calls fail while it is away: killed
		// connections are replaced at once, so none does then, while an
		// unreachable server fails every one.
		wantErr bool
	}{
		{"connections killed", func(t *testing.T, dsn, name string, _ *proxy) func() {
			if n := terminate(t, dsn, name) + terminate(t, dsn, name+listenSuffix); n < 2 {
				t.Fatalf("terminated %d connections, want the pool's and the listener's", n)
			}
			return func() {}
		}, false},
		{"unreachable", func(t *testing.T, _, _ string, p *proxy) func() {
			p.down()
			return p.up
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.URL(t)
			p := startProxy(t, dsn)
			name := uniqueName()
			s := openStore(t, withParams(t, p.dsn, map[string]string{"application_name": name}), fixedNow)
			waitListening(t, s)
			// From here on, nothing signals CallbackReady but the listener
			// when it connects again: no callback is ever stored.
			before := createTasks(t, s, 2)
			got, err := s.ClaimTasks(t.Context(), "holder", 2, time.Hour)
			if err != nil || len(got) != 2 {
				t.Fatalf("ClaimTasks: got %d tasks, %v, want 2, nil", len(got), err)
			}
			// A busy instance's pool holds several idle connections, all
			// of which die with the database.
			conns := make([]*pgxpool.Conn, s.pool.Config().MaxConns)
			for i := range conns {
				if conns[i], err = s.pool.Acquire(t.Context()); err != nil {
					t.Fatalf("Acquire: %v", err)
				}
			}
			for _, c := range conns {
				c.Release()
			}
			back := tt.away(t, dsn, name, p)

			// The calls' own deadline is far away: a call that reaches it
			// hangs.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			calls := []struct {
				name string
				call func() error
			}{
				{"CreateTask", func() error { return s.CreateTask(ctx, newTask()) }},
				{"Task", func() error { _, err := s.Task(ctx, before[0].ID); return err }},
				{"ClaimTasks", func() error { _, err := s.ClaimTasks(ctx, "claimer", 1, time.Hour); return err }},
				{"ExtendTaskLease", func() error { return s.ExtendTaskLease(ctx, before[0].ID, "holder", time.Hour) }},
				{"NextTaskDue", func() error { _, err := s.NextTaskDue(ctx); return err }},
				{"ClaimCallbacks", func() error { _, err := s.ClaimCallbacks(ctx, "claimer", task.LaneFirst, 1, time.Hour); return err }},
				{"NextCallbackDue", func() error { _, err := s.NextCallbackDue(ctx); return err }},
				{"Callbacks", func() error { _, err := s.Callbacks(ctx, before[0].ID); return err }},
			}
			for _, c := range calls {
				err := c.call()
				if ctx.Err() != nil {
					t.Fatalf("%s while the database is away: hung until the test's deadline", c.name)
				}
				if (err != nil) != tt.wantErr {
					t.Errorf("%s while the database is away: got error %v, want error: %t", c.name, err, tt.wantErr)
				}
			}

			back()
			for _, c := range calls {
				if err := c.call(); err != nil {
					t.Errorf("%s once the database is back: %v", c.name, err)
				}
			}
			for _, tk := range before {
				if got, err := s.Task(ctx, tk.ID); err != nil || got.ID != tk.ID {
					t.Errorf("Task(%s) once the database is back: got %v, %v, want the task", tk.ID, got, err)
				}
			}
			waitListening(t, s)
		})
	}
}

// proxy forwards TCP connections to a PostgreSQL server and can make the
// server unreachable: cut every connection and refuse new ones.
type proxy struct {
	t      *testing.T
	target string // host:port of the server
	addr   string // host:port of the proxy
	dsn    string // the test's database URL, through the proxy

	mu     sync.Mutex
	ln     net.Listener
	isDown bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

// startProxy starts a proxy to the server of the database at dsn, stopped
// when t ends.
func startProxy(t *testing.T, dsn string) *proxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", dsn, err)
	}
	p := &proxy{t: t, target: u.Host, addr: "127.0.0.1:0", conns: make(map[net.Conn]bool)}
	p.up()
	u.Host = p.addr
	p.dsn = u.String()
	t.Cleanup(func() {
		p.down()
		p.wg.Wait()
	})
	return p
}

// up listens on p.addr, the same port after the first time, and forwards
// the connections it accepts.
func (p *proxy) up() {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy: %v", err)
	}
	p.mu.Lock()
	p.ln, p.addr, p.isDown = ln, ln.Addr().String(), false
	p.mu.Unlock()
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by down
			}
			p.forward(c)
		}
	})
}

// forward connects client to the server and copies both ways until either
// side closes or the proxy goes down.
func (p *proxy) forward(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isDown { // went down while dialling
		client.Close()
		server.Close()
		return
	}
	p.conns[client], p.conns[server] = true, true
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src) // ends when either side is closed
		dst.Close()
		src.Close()
	}
	p.wg.Go(func() { pipe(server, client) })
	p.wg.Go(func() { pipe(client, server) })
}

// down stops listening and cuts every connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = true
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}
