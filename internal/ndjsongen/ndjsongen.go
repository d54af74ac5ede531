// Package ndjsongen makes NDJSON recipient imports of any size as they are
// read: an io.Reader that holds one line at a time, for the import's
// constant-memory test and `tocsin bench --import` (no file on disk).
package ndjsongen

import (
	"fmt"
	"io"
)

var locales = []string{"en-US", "de-CH", "fr-CH", "it-CH", "da-DK"}

// Reader reads N recipient lines of the README's example shape (five
// locales in turn, a Swiss mobile number, services cards and twint,
// region CH, channel sms), line i with id "c<i>". Every BadEvery-th line
// (0: none) is malformed JSON, which an import rejects. At, when set, is
// called with the number of lines handed out so far just before line
// number Marks[k] (0-based) is made, for each mark.
type Reader struct {
	N, BadEvery int
	Marks       []int
	At          func(lines int)

	i   int
	buf []byte
	off int
}

// Read implements io.Reader.
func (g *Reader) Read(p []byte) (int, error) {
	if g.off == len(g.buf) {
		if g.i == g.N {
			return 0, io.EOF
		}
		if g.At != nil {
			for _, m := range g.Marks {
				if m == g.i {
					g.At(g.i)
				}
			}
		}
		g.buf, g.off = AppendLine(g.buf[:0], g.i, g.BadEvery), 0
		g.i++
	}
	n := copy(p, g.buf[g.off:])
	g.off += n
	return n, nil
}

// Lines is how many lines were handed out so far.
func (g *Reader) Lines() int { return g.i }

// AppendLine appends line i (0-based, with its newline) of a Reader with
// badEvery to b.
func AppendLine(b []byte, i, badEvery int) []byte {
	if badEvery > 0 && i%badEvery == badEvery-1 {
		return fmt.Appendf(b, `{"id":"bad%d","locale":`+"\n", i)
	}
	return fmt.Appendf(b, `{"id":"c%d","kind":"customer","locale":"%s","timezone":"Europe/Zurich","phone":"+4179%07d","services":["cards","twint"],"regions":["CH"],"channels":["sms"]}`+"\n",
		i, locales[i%len(locales)], i%10000000)
}
