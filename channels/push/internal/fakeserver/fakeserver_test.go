package fakeserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

func TestTakeFailure(t *testing.T) {
	t.Parallel()
	var s Script[string]
	if f, ok := s.TakeFailure(); ok {
		t.Fatalf("the zero Script fails with %q", f)
	}
	s.FailNext("a", 2)
	s.FailNext("b", 1)
	hooked := 1
	s.SetFailHook(func() (string, bool) {
		if hooked == 0 {
			return "", false
		}
		hooked--
		return "hook", true
	})
	var got []string
	for {
		f, ok := s.TakeFailure()
		if !ok {
			break
		}
		got = append(got, f)
	}
	if want := []string{"hook", "a", "a", "b"}; !slices.Equal(got, want) {
		t.Errorf("failures %q, want %q (the hook first, then FailNext's in order)", got, want)
	}
}

func TestBegin(t *testing.T) {
	t.Parallel()
	var s Script[int]
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	if !s.Begin(r) {
		t.Error("Begin without a delay reported the client gone")
	}
	s.Delay(time.Minute)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if s.Begin(r.WithContext(ctx)) {
		t.Error("Begin reported true for a client that gave up during the delay")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Begin waited %v after the client gave up", d)
	}
	s.Delay(10 * time.Millisecond)
	if !s.Begin(r) {
		t.Error("Begin after a short delay reported the client gone")
	}
	if n := s.Requests(); n != 3 {
		t.Errorf("Requests() = %d, want 3", n)
	}
}
