package sms

import (
	"context"
	"time"
)

// WindowSize is s's window now (for the external tests).
func WindowSize(s *Sender) int {
	size, _, _ := s.window.state()
	return size
}

// AheadTurns are turns given at once that say that much of turns wait
// before any new one (dispatcher.TurnsAhead).
type AheadTurns time.Duration

func (AheadTurns) Turn(context.Context) error { return nil }
func (a AheadTurns) Ahead() time.Duration     { return time.Duration(a) }
