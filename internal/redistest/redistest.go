// Package redistest starts a real redis-server for tests on a free port and
// hands each test its own empty database.
//
// A test package that talks to Redis calls Main from its TestMain, so the
// package shares one server, and each test calls New for a database of its
// own:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		rdb, opts := redistest.New(t)
//		...
//	}
//
// The server is never the one on port 6379 and keeps nothing on disk. Without
// a redis-server binary the tests fail; they are never skipped.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// EnvServer names the environment variable that overrides the
	// redis-server binary (a path or a name looked up in PATH).
	EnvServer = "TOCSIN_REDIS_SERVER"

	defaultBinary = "redis-server"
	startAttempts = 5
	startTimeout  = 10 * time.Second
	// maxDB is the highest database number; the server is started with
	// maxDB+1 databases and database 0 is never handed out.
	maxDB = 255
	// forbiddenPort is the port of a developer's own Redis, never used.
	forbiddenPort = 6379
)

// Server is one redis-server process.
type Server struct {
	// Addr is the server's host:port, always on 127.0.0.1.
	Addr string

	cmd     *exec.Cmd
	dir     string
	bin     string
	port    int
	aof     bool
	conf    string   // a config file to start with ("" for none), first argument
	extra   []string // more options, after the usual ones
	out     *capWriter
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // the process's exit status; read after exited is closed

	lastDB    atomic.Int32 // last database number handed out by New
	freeMu    sync.Mutex
	free      []int // databases whose tests have ended, flushed, oldest first
	closeOnce sync.Once
	closeErr  error
}

// Start launches redis-server (binary from $TOCSIN_REDIS_SERVER or
// "redis-server" in PATH) on a free 127.0.0.1 port with no persistence, 256
// databases and a temporary working directory, and waits until it answers
// PING. It retries with another port when the chosen one was taken in the
// meantime. The caller must Close the server.
func Start() (*Server, error) { return start(false) }

// start launches a server, with an append-only file when aof is set, on
// a free port, trying another when the chosen one was taken meanwhile.
func start(aof bool) (*Server, error) { return startWith("", aof, "", nil) }

// startWith is start in dir (a new temporary directory when empty), with
// the config file conf and the options extra (see launch).
func startWith(dir string, aof bool, conf string, extra []string) (*Server, error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("redistest: find a free port: %w", err)
		}
		s, err := launch(bin, port, dir, aof, conf, extra)
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
		lastErr = err
	}
	return nil, fmt.Errorf("redistest: no free port after %d attempts: %w", startAttempts, lastErr)
}

// Close kills the redis-server process, waits for it to exit and removes its
// working directory. Closing twice is harmless.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		select {
		case <-s.exited:
		default:
			if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				s.closeErr = fmt.Errorf("redistest: kill redis-server: %w", err)
			}
			<-s.exited
		}
		if err := os.RemoveAll(s.dir); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("redistest: remove %s: %w", s.dir, err)
		}
	})
	return s.closeErr
}

var defaultServer atomic.Pointer[Server]

// atExit holds what AtExit was given.
var atExit struct {
	sync.Mutex
	fns []func()
}

// AtExit makes Main call fn once the tests ran, before it exits: how a
// package closes what its tests share (a cluster started on first use).
func AtExit(fn func()) {
	atExit.Lock()
	defer atExit.Unlock()
	atExit.fns = append(atExit.fns, fn)
}

// Main is for TestMain: it starts a server shared by the package's tests,
// makes it the default that New uses, runs the tests, closes the server and
// exits with the tests' code. When no server can be started it prints why and
// exits 1: tests that need Redis fail without it, they are never skipped.
func Main(m *testing.M) {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defaultServer.Store(s)
	code := m.Run()
	atExit.Lock()
	for _, fn := range atExit.fns {
		fn()
	}
	atExit.Unlock()
	defaultServer.Store(nil)
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// New returns a client connected to a fresh, empty database of the default
// server (the one Main started) and the options it was made from; callers
// that build their own clients (asynq) need Options.Addr and Options.DB. Each
// call takes the next database number, 1 to 255; once all were handed out,
// the one whose test ended longest ago (go test -count=N), and fails the
// test when none is free. The database is flushed and the client closed when the test ends;
// the test may close the client itself.
func New(tb testing.TB) (*redis.Client, *redis.Options) {
	tb.Helper()
	s := defaultServer.Load()
	if s == nil {
		tb.Fatal("redistest: no server: call redistest.Main(m) from the package's TestMain")
		return nil, nil
	}
	return s.newDB(tb)
}

func (s *Server) newDB(tb testing.TB) (*redis.Client, *redis.Options) {
	tb.Helper()
	db := s.lastDB.Add(1)
	if db > maxDB {
		// Every database has been handed out once (go test -count=N): take
		// the one whose test ended longest ago, flushed since.
		s.freeMu.Lock()
		if len(s.free) > 0 {
			db, s.free = int32(s.free[0]), s.free[1:]
		}
		s.freeMu.Unlock()
	}
	if db > maxDB {
		tb.Fatalf("redistest: all %d databases of %s are taken: split the tests into more packages", maxDB, s.Addr)
		return nil, nil
	}
	opts := &redis.Options{Addr: s.Addr, DB: int(db)}
	// NewClient fills in defaults on the options it is given: keep the
	// returned copy as plain as the caller would write it.
	clientOpts := *opts
	rdb := redis.NewClient(&clientOpts)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		_ = rdb.Close()
		tb.Fatalf("redistest: flush database %d of %s: %v", db, s.Addr, err)
		return nil, nil
	}
	tb.Cleanup(func() {
		if err := rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			tb.Errorf("redistest: close client of database %d: %v", db, err)
		}
		// Flush through a client of our own: the test may have closed its.
		flusher := redis.NewClient(&redis.Options{Addr: s.Addr, DB: int(db)})
		defer flusher.Close()
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := flusher.FlushDB(ctx).Err(); err != nil {
			tb.Errorf("redistest: flush database %d of %s: %v", db, s.Addr, err)
			return
		}
		s.freeMu.Lock()
		s.free = append(s.free, int(db))
		s.freeMu.Unlock()
	})
	return rdb, opts
}

func findBinary() (string, error) {
	name := os.Getenv(EnvServer)
	from := "$" + EnvServer
	if name == "" {
		name, from = defaultBinary, "PATH"
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("redistest: redis-server not found (%s from %s: %v); tests need a real Redis: run `make test`, which installs it, or `apt-get install redis-server` (or set %s to its path)",
			name, from, err, EnvServer)
	}
	return bin, nil
}

// freePort asks the kernel for a free port on 127.0.0.1 and releases it.
func freePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, err
		}
		if port != forbiddenPort {
			return port, nil
		}
	}
}

var errPortTaken = errors.New("port taken")

// StartAOF is Start for a server that keeps its data in an append-only
// file (fsync on every write, as a careful production setup does) in its
// working directory, so that Restart brings it back with its data.
func StartAOF() (*Server, error) { return start(true) }

// Kill stops the server with SIGKILL, as a crash would, and waits for the
// process to exit; its working directory stays for Restart.
func (s *Server) Kill() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("redistest: kill redis-server: %w", err)
	}
	<-s.exited
	return nil
}

// Restart starts a killed server again on the same port and working
// directory (with StartAOF, with the data it had) and waits until it
// answers PING.
func (s *Server) Restart() error {
	if err := s.Kill(); err != nil {
		return err
	}
	n, err := launch(s.bin, s.port, s.dir, s.aof, s.conf, s.extra)
	if err != nil {
		return err
	}
	s.cmd, s.out, s.exited = n.cmd, n.out, n.exited
	return nil
}

// launch starts redis-server on port in dir (a new temporary directory when
// empty), with an append-only file when aof is set, the config file conf
// when not empty, and the options extra after the usual ones.
func launch(bin string, port int, dir string, aof bool, conf string, extra []string) (*Server, error) {
	owned := dir == "" // a restart's directory holds the data: never removed here
	if owned {
		var err error
		if dir, err = os.MkdirTemp("", "redistest-"); err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
	}
	p := strconv.Itoa(port)
	appendonly := []string{"--appendonly", "no"}
	if aof {
		appendonly = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	var args []string
	if conf != "" {
		args = append(args, conf)
	}
	args = append(args,
		"--port", p,
		"--bind", "127.0.0.1",
		"--save", "",
		"--databases", strconv.Itoa(maxDB+1),
		"--dir", dir,
		"--loglevel", "warning",
	)
	cmd := exec.Command(bin, append(append(args, appendonly...), extra...)...)
	out := &capWriter{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("redistest: start %s: %w", bin, err)
	}
	s := &Server{
		Addr:   net.JoinHostPort("127.0.0.1", p),
		cmd:    cmd,
		dir:    dir,
		bin:    bin,
		port:   port,
		aof:    aof,
		conf:   conf,
		extra:  extra,
		out:    out,
		exited: make(chan struct{}),
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(); err != nil {
		if owned {
			_ = s.Close()
		} else {
			_ = s.Kill()
		}
		return nil, err
	}
	return s, nil
}

// waitReady waits until the server answers PING and is the process we
// started, not some other server that took the port first.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			output := s.out.String()
			if strings.Contains(strings.ToLower(output), "address already in use") {
				return fmt.Errorf("redistest: %s: %w", s.Addr, errPortTaken)
			}
			return fmt.Errorf("redistest: redis-server exited before it answered (%v): %s", s.waitErr, strings.TrimSpace(output))
		default:
		}
		// Ask in the background: whatever holds the port may never answer,
		// and the process's exit is the quicker news.
		res := make(chan pingResult, 1)
		go func() {
			pid, err := pingPID(s.Addr)
			res <- pingResult{pid, err}
		}()
		var r pingResult
		select {
		case <-s.exited:
			continue
		case r = <-res:
		}
		pid, err := r.pid, r.err
		if err == nil {
			if pid != s.cmd.Process.Pid {
				return fmt.Errorf("redistest: %s answered from process %d, not %d: %w", s.Addr, pid, s.cmd.Process.Pid, errPortTaken)
			}
			return nil
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("redistest: redis-server on %s did not answer PING within %s: %v; output: %s",
		s.Addr, startTimeout, lastErr, strings.TrimSpace(s.out.String()))
}

type pingResult struct {
	pid int
	err error
}

// pingPID sends PING and INFO server over a raw connection and returns the
// server's process id.
func pingPID(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return 0, err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "+PONG\r\n" {
		return 0, fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	line, err = r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(line, "$") {
		return 0, fmt.Errorf("INFO answered %q", strings.TrimSpace(line))
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("INFO answered %q", strings.TrimSpace(line))
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(r, info); err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(info), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// capWriter keeps the first max bytes written to it, for error messages.
type capWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - w.buf.Len(); room > 0 {
		w.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (w *capWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
