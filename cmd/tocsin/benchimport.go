package main

// `tocsin bench --import N`: the NDJSON recipient import at scale.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/tocsin-dev/tocsin/channels/null"
	"github.com/tocsin-dev/tocsin/config"
	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/api"
	"github.com/tocsin-dev/tocsin/internal/ndjsongen"
)

// benchImportKey is the operator key of the bench's own API server.
const benchImportKey = "bench-import-key-0123456789abcdef"

// benchImport measures the recipient import as a client meets it: n
// generated NDJSON lines (made as they are read, never a file) POSTed in
// one request to /v1/recipients/import of the API this process serves on
// loopback, with serve's default configuration and HTTP timeouts. It
// prints the lines per second, Redis memory per recipient and this
// process's peak resident memory during the import (client and server
// share it).
func benchImport(ctx context.Context, w io.Writer, rdb *redis.Client, addr string, db, n int, logw io.Writer) error {
	if err := flushDB(ctx, rdb); err != nil {
		return err
	}
	cfg, err := config.Load("", func(string) (string, bool) { return "", false })
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := wireBenchConfig(cfg, rdb, asynq.RedisClientOpt{Addr: addr, DB: db}, logger, &null.Sender{})
	if err != nil {
		return err
	}
	defer a.Close()
	handler := api.New(api.Config{
		Service: a.service,
		Authenticate: func(token string) (string, api.Role, bool) {
			return "bench", api.RoleOperator, token == benchImportKey
		},
		Logger:  logger,
		Version: Version,
	})
	srv, base, err := serveLoopback(handler, cfg, logger)
	if err != nil {
		return err
	}
	defer srv.Close()

	fmt.Fprintf(w, "tocsin bench --import: %d NDJSON lines in one POST /v1/recipients/import over loopback, Redis %s at %s\n", n, redisVersion(ctx, rdb), addr)
	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	idleRSS := resetPeakRSS()
	gen := &ndjsongen.Reader{N: n}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/recipients/import",
		bufio.NewReaderSize(gen, 64<<10))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+benchImportKey)
	req.Header.Set("Content-Type", "application/x-ndjson")
	start := dispatcher.SystemClock.Now() // wall time: what the bench measures
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("import after %d lines, %v: %w", gen.Lines(), dispatcher.SystemClock.Now().Sub(start).Round(time.Millisecond), err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	elapsed := dispatcher.SystemClock.Now().Sub(start)
	if err != nil {
		return fmt.Errorf("import: read the report: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("import: %s: %s", resp.Status, raw)
	}
	var rep dispatcher.ImportReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fmt.Errorf("import: report %s: %w", raw, err)
	}
	if rep.Lines != n || rep.Imported != n {
		return fmt.Errorf("import: report %s, want %d lines imported", raw, n)
	}
	peakRSS := peakRSS()
	after, err := usedMemory(ctx, rdb)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "lines %d, imported %d, rejected %d in %.2f s: %.0f lines/s\n", rep.Lines, rep.Imported, rep.Rejected, elapsed.Seconds(), float64(n)/elapsed.Seconds())
	fmt.Fprintf(w, "Redis used_memory %s after, %.0f B per recipient\n", mib(after), float64(after-before)/float64(n))
	if peakRSS > 0 {
		fmt.Fprintf(w, "peak RSS of this process (API server and client): %s during the import, %s before it\n", mib(peakRSS), mib(idleRSS))
	}
	return flushDB(ctx, rdb)
}

// mib formats a byte count in MiB, or GiB from 10 GiB up.
func mib(b int64) string {
	if b >= 10<<30 {
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// resetPeakRSS resets this process's peak resident memory to its current
// one (Linux: /proc/self/clear_refs) and returns that. Where it cannot,
// the peak stays the process's whole-life one.
func resetPeakRSS() int64 {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return peakRSS()
}

// peakRSS is this process's peak resident memory (VmHWM), 0 when the
// system does not say.
func peakRSS() int64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// flushDB empties the bench's database. With millions of recipients
// FLUSHDB takes longer than a client's read timeout (3 s), and a busy box
// makes it slower still: it may take as long as it takes.
func flushDB(ctx context.Context, rdb *redis.Client) error {
	return rdb.WithTimeout(10 * time.Minute).FlushDB(ctx).Err()
}
