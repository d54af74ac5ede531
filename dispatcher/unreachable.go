package dispatcher

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// StoreUnreachable tells whether err means Redis could not be reached or
// could not take writes for now: a network error (refused, reset, timed
// out, closed), or a reply of a server that is loading, read-only (a
// demoted master), without its master, or of a cluster that is down or
// moving slots. A cancelled context is not: the worker is stopping.
// Redis's replies are told by go-redis's redis.Error (a RedisError
// method), so the dispatcher needs no Redis client of its own.
func StoreUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var re redisError
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"LOADING ", "READONLY ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "NOREPLICAS "} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
	}
	return false
}

// redisError is go-redis's redis.Error: a reply of the server.
type redisError interface {
	error
	RedisError()
}
