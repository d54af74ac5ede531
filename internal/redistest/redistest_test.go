package redistest

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewGivesIsolatedDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, aOpts := New(t)
	b, bOpts := New(t)

	if aOpts.Addr != bOpts.Addr {
		t.Errorf("Addr: %q and %q, want the same server", aOpts.Addr, bOpts.Addr)
	}
	if aOpts.DB == bOpts.DB {
		t.Fatalf("both got DB %d", aOpts.DB)
	}
	for _, o := range []*redis.Options{aOpts, bOpts} {
		if o.DB < 1 || o.DB > 255 {
			t.Errorf("DB %d, want 1..255", o.DB)
		}
	}
	if err := a.Set(ctx, "k", "from-a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := b.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("b GET k: err %v, want redis.Nil: a's key leaked into b", err)
	}
	if got, err := a.Get(ctx, "k").Result(); err != nil || got != "from-a" {
		t.Errorf("a GET k = %q, %v; want from-a", got, err)
	}
	if n, err := b.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("b DBSIZE = %d, %v; want 0", n, err)
	}
}

func TestNewOptionsConnectToSameDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, opts := New(t)
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	other := redis.NewClient(opts)
	defer other.Close()
	if got, err := other.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET k through a client built from the returned options = %q, %v; want v", got, err)
	}
}

func TestNewFlushesOnCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var opts *redis.Options
	t.Run("writer", func(t *testing.T) {
		var rdb *redis.Client
		rdb, opts = New(t)
		if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		// Closing the client itself must not break the cleanup.
		if err := rdb.Close(); err != nil {
			t.Fatal(err)
		}
	})
	check := redis.NewClient(opts)
	defer check.Close()
	if n, err := check.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE of DB %d after the test ended = %d, %v; want 0", opts.DB, n, err)
	}
}

func TestNewParallelCallsGetDistinctDatabases(t *testing.T) {
	t.Parallel()
	const n = 8
	var (
		mu   sync.Mutex
		seen = map[int]bool{}
	)
	for i := range n {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			_, opts := New(t)
			mu.Lock()
			defer mu.Unlock()
			if seen[opts.DB] {
				t.Errorf("call %d: DB %d handed out twice", i, opts.DB)
			}
			seen[opts.DB] = true
		})
	}
}

func TestStartAndClose(t *testing.T) {
	t.Parallel()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if host != "127.0.0.1" || port == "6379" {
		t.Errorf("Addr %q, want 127.0.0.1 and a port other than 6379", s.Addr)
	}
	if def := defaultServer.Load(); def != nil && def.Addr == s.Addr {
		t.Errorf("Start reused the default server's address %s", s.Addr)
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, DB: 255})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING DB 255: %v", err)
	}
	cfg, err := rdb.ConfigGet(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"save": "", "appendonly": "no", "databases": "256"} {
		if cfg[k] != want {
			t.Errorf("config %s = %q, want %q", k, cfg[k], want)
		}
	}
	dir := cfg["dir"]
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := pingPID(s.Addr); err == nil {
		t.Error("PING answered after Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("working dir %s still there after Close: %v", dir, err)
	}
}

func TestStartWithoutBinary(t *testing.T) {
	// t.Setenv forbids t.Parallel.
	t.Setenv(EnvServer, filepath.Join(t.TempDir(), "no-such-redis-server"))
	s, err := Start()
	if err == nil {
		s.Close()
		t.Fatal("Start succeeded without a binary")
	}
	for _, want := range []string{"make test", "apt-get install redis-server"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestStartWithBinaryThatFails(t *testing.T) {
	sh := filepath.Join(t.TempDir(), "broken-redis-server")
	if err := os.WriteFile(sh, []byte("#!/bin/sh\necho 'FATAL: broken on purpose' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvServer, sh)
	s, err := Start()
	if err == nil {
		s.Close()
		t.Fatal("Start succeeded with a binary that exits at once")
	}
	if !strings.Contains(err.Error(), "broken on purpose") {
		t.Errorf("error %q does not carry the server's output", err)
	}
}

// fatalTB records Fatal calls; the real ones stop the goroutine.
type fatalTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = format
	f.mu.Unlock()
	runtime.Goexit()
}

func TestNewFailsWhenDatabasesRunOut(t *testing.T) {
	t.Parallel()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	s.lastDB.Store(maxDB - 1)
	rdb, opts := s.newDB(t)
	if opts.DB != maxDB {
		t.Fatalf("DB %d, want %d", opts.DB, maxDB)
	}
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}

	ftb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.newDB(ftb)
		t.Error("newDB returned a database past the last one")
	}()
	<-done
	if !strings.Contains(ftb.msg, "databases") {
		t.Errorf("Fatal message %q, want one about running out of databases", ftb.msg)
	}
}

func TestLaunchOnTakenPortAsksForRetry(t *testing.T) {
	t.Parallel()
	bin, err := findBinary()
	if err != nil {
		t.Fatal(err)
	}
	// A plain listener, and a redis-server that is not ours (the default one).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ports := []int{l.Addr().(*net.TCPAddr).Port}
	if def := defaultServer.Load(); def != nil {
		_, p, _ := net.SplitHostPort(def.Addr)
		n, _ := strconv.Atoi(p)
		ports = append(ports, n)
	}
	for _, port := range ports {
		s, err := launch(bin, port, "", false, "", nil)
		if err == nil {
			s.Close()
			t.Errorf("launch on taken port %d succeeded", port)
			continue
		}
		if !errors.Is(err, errPortTaken) {
			t.Errorf("launch on taken port %d: %v, want errPortTaken", port, err)
		}
	}
}

// TestNewTakesEndedTestsDatabases: once every database was handed out
// (go test -count=N), New takes one whose test has ended, flushed; while
// that one is in use, none is left.
func TestNewTakesEndedTestsDatabases(t *testing.T) {
	t.Parallel()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()

	s.lastDB.Store(maxDB - 1)
	t.Run("first", func(t *testing.T) {
		rdb, opts := s.newDB(t)
		if opts.DB != maxDB {
			t.Fatalf("DB %d, want %d", opts.DB, maxDB)
		}
		if err := rdb.Set(ctx, "left", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("again", func(t *testing.T) {
		rdb, opts := s.newDB(t)
		if opts.DB != maxDB {
			t.Fatalf("DB %d, want %d again", opts.DB, maxDB)
		}
		if n, err := rdb.Exists(ctx, "left").Result(); err != nil || n != 0 {
			t.Errorf("the key the first test left: EXISTS = %d, %v; want 0", n, err)
		}
		ftb := &fatalTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.newDB(ftb)
			t.Error("newDB returned a database that is in use")
		}()
		<-done
		if !strings.Contains(ftb.msg, "databases") {
			t.Errorf("Fatal message %q, want one about running out of databases", ftb.msg)
		}
	})
}
