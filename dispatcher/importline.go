package dispatcher

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/tocsin-dev/tocsin/internal/strictjson"
)

// utf8BOM is the byte order mark some tools write at the start of a file;
// an import ignores it at the start of its first line.
var utf8BOM = []byte("\uFEFF")

// decodeImportLine decodes one NDJSON line of an import into rec. The line
// must be one JSON value and nothing more ({"id":"a"}{"id":"b"} is
// refused, not read as "a"), in valid UTF-8, with no member name given
// twice, no lone surrogate escaped ("\ud800") and no unknown field, member
// names compared exactly ("ID" is not "id", in a push token too): the rules
// of a JSON request body. The error is the line's reason for being
// rejected.
func decodeImportLine(raw []byte, rec *Recipient) error {
	if err := strictjson.Check(raw); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if err := strictjson.Fields(raw, rec); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(rec); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}
