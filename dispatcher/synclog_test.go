package dispatcher

import (
	"bytes"
	"sync"
)

// SyncLog is a log destination safe for a logger's goroutines, for the
// tests of both test packages (an internal test file's exported names are
// the external package's too).
type SyncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *SyncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *SyncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
