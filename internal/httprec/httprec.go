// Package httprec records the status an http.Handler writes: the API's
// request log and the webhook fake's record of its answers both need it.
package httprec

import (
	"bufio"
	"errors"
	"net"
	"net/http"
)

// Recorder is an http.ResponseWriter that remembers the first status
// written through it. It passes Flush and Hijack on, and Unwrap lets
// http.ResponseController reach the connection (read deadlines, flushing).
type Recorder struct {
	http.ResponseWriter
	status int
}

// New wraps w.
func New(w http.ResponseWriter) *Recorder { return &Recorder{ResponseWriter: w} }

func (r *Recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *Recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Written reports whether a status (or a body, which implies 200) was
// written.
func (r *Recorder) Written() bool { return r.status != 0 }

// Status is the status written; 200, as net/http answers, when the
// handler wrote nothing.
func (r *Recorder) Status() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

func (r *Recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *Recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *Recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := r.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}
