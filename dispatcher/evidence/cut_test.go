package evidence_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tocsin-dev/tocsin/dispatcher"
	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
)

// cutStore's scan fails with err after its first chunk of attempts, as a
// failover during the scan makes redisstore's.
type cutStore struct {
	*fakeStore
	err error
}

func (s cutStore) ScanAttempts(ctx context.Context, id string, chunk int, fn func([]dispatcher.AttemptRecord) error) error {
	first := true
	err := s.fakeStore.ScanAttempts(ctx, id, chunk, func(as []dispatcher.AttemptRecord) error {
		if !first {
			return s.err
		}
		first = false
		return fn(as)
	})
	return err
}

// TestCutExportEndsWithAnErrorLine: an export whose scan stops after rows
// were written ends with an error line that says why (interrupted for a
// failover, failed for anything else), which Verify rejects, and LastRow
// finds; a whole export's last row is its head line.
func TestCutExportEndsWithAnErrorLine(t *testing.T) {
	t.Parallel()
	for _, f := range []evidence.Format{evidence.NDJSON, evidence.CSV} {
		for _, tc := range []struct {
			err  error
			key  string
			says string
		}{
			{fmt.Errorf("HSCAN of b:x:d: %w", dispatcher.ErrScanInterrupted), evidence.ErrorInterrupted, "failover"},
			{errors.New("i/o timeout"), evidence.ErrorFailed, "its log says why"},
		} {
			t.Run(string(f)+"/"+tc.key, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				run, err := (&evidence.Ledger{Store: cutStore{newFake(), tc.err}}).Open(ctx, "inc_1")
				if err != nil {
					t.Fatal(err)
				}
				var buf bytes.Buffer
				if _, err := run.Write(ctx, &buf, f); !errors.Is(err, tc.err) {
					t.Fatalf("Write = %v, want %v", err, tc.err)
				}
				out := buf.String()
				if !strings.Contains(out, "attempt") {
					t.Fatalf("no attempt row written before the cut:\n%s", out)
				}
				last := evidence.LastRow(buf.Bytes(), f)
				if last == nil || last[evidence.ColType] != evidence.TypeError || last[evidence.ColKey] != tc.key ||
					!strings.Contains(last[evidence.ColReason], tc.says) || !strings.Contains(last[evidence.ColReason], "run the export again") {
					t.Fatalf("last row %v, want an error line %s saying %q\n%s", last, tc.key, tc.says, out)
				}
				_, err = evidence.Verify(strings.NewReader(out))
				var bl *evidence.BadLineError
				if !errors.As(err, &bl) || bl.Line != strings.Count(out, "\n") || !strings.Contains(bl.Msg, "cut short on the server ("+tc.key+")") {
					t.Fatalf("Verify of a cut export = %v, want its last line named as cut short (%s)", err, tc.key)
				}
			})
		}
		t.Run(string(f)+"/whole", func(t *testing.T) {
			t.Parallel()
			out, _ := export(t, newFake(), f)
			if last := evidence.LastRow(out, f); last == nil || last[evidence.ColType] != evidence.TypeHead {
				t.Errorf("last row of a whole export %v, want the head line", last)
			}
			if last := evidence.LastRow(out[:len(out)-5], f); last != nil && last[evidence.ColType] == evidence.TypeHead {
				t.Errorf("a head line cut in the middle reads as one: %v", last)
			}
		})
	}
}
