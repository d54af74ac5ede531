// Command tocsin tells customers and merchants about outages. `tocsin serve`
// runs the REST API and the workers; `tocsin bench` measures the fan-out.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv, Environ: os.Environ}
	code := m.Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
