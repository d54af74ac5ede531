package httprec_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tocsin-dev/tocsin/internal/httprec"
)

func TestRecorder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(http.ResponseWriter)
		written bool
		status  int
	}{
		{"nothing", func(http.ResponseWriter) {}, false, http.StatusOK},
		{"body only", func(w http.ResponseWriter) { w.Write([]byte("x")) }, true, http.StatusOK},
		{"status", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) }, true, http.StatusTeapot},
		{"first status wins", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNotFound)
			w.WriteHeader(http.StatusInternalServerError)
		}, true, http.StatusNotFound},
		{"status after body", func(w http.ResponseWriter) {
			w.Write([]byte("x"))
			w.WriteHeader(http.StatusNotFound)
		}, true, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			under := httptest.NewRecorder()
			rec := httprec.New(under)
			tc.handler(rec)
			if rec.Written() != tc.written || rec.Status() != tc.status {
				t.Errorf("Written %v, Status %d; want %v, %d", rec.Written(), rec.Status(), tc.written, tc.status)
			}
			if rec.Unwrap() != under {
				t.Error("Unwrap does not return the wrapped writer")
			}
		})
	}
}

func TestRecorderFlushAndHijack(t *testing.T) {
	under := httptest.NewRecorder()
	rec := httprec.New(under)
	rec.Flush()
	if !under.Flushed {
		t.Error("Flush did not reach the wrapped writer")
	}
	if _, _, err := rec.Hijack(); err == nil {
		t.Error("Hijack of a writer that cannot be hijacked succeeded")
	}
}
