package api

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

const importPath = "/v1/recipients/import"

// importMediaTypes are the Content-Types the import accepts.
var importMediaTypes = map[string]string{"application/x-ndjson": "ndjson", "application/jsonl": "ndjson"}

// routeImport registers POST /v1/recipients/import on the mux directly:
// huma reads a whole body into memory before its handlers run, and an
// import must stream any number of lines in constant memory. The operation
// is added to the OpenAPI document by hand.
func (s *server) routeImport() {
	s.mux.HandleFunc("POST "+importPath, s.importRecipients)

	reg := s.api.OpenAPI().Components.Schemas
	report := reg.Schema(reflect.TypeFor[dispatcher.ImportReport](), true, "ImportReport")
	problem := reg.Schema(reflect.TypeFor[huma.ErrorModel](), true, "ErrorModel")
	problemResponse := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{
			"application/problem+json": {Schema: problem},
		}}
	}
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "import-recipients",
		Method:      http.MethodPost,
		Path:        importPath,
		Tags:        []string{"recipients"},
		Summary:     "Import recipients from NDJSON",
		Description: "Role: operator. The body is newline-delimited JSON, one recipient object per line " +
			"(the fields of PUT /v1/recipients/{id} plus id; opt_out is ignored) and nothing after it on the line, in UTF-8, each member named once; " +
			"a byte order mark at the start of the file is ignored. It is streamed, so there is no size limit. " +
			"Good lines are stored in chunks; a bad line is reported by number and does not stop the import. " +
			"A store failure stops it: the 500 problem carries the report so far in `report`.",
		Security: bearer,
		RequestBody: &huma.RequestBody{
			Required:    true,
			Description: "One recipient JSON object per line; blank lines are skipped; lines longer than 64 KiB are rejected.",
			Content: map[string]*huma.MediaType{
				"application/x-ndjson": {
					Schema: &huma.Schema{Type: huma.TypeString, Description: "NDJSON: one Recipient object per line."},
					Example: `{"id":"c-1001","locale":"de-CH","phone":"+41791234567","services":["twint"],"regions":["CH"]}` + "\n" +
						`{"id":"m-77","kind":"merchant","locale":"fr-CH","email":"ops@shop.example"}` + "\n",
				},
			},
		},
		Responses: map[string]*huma.Response{
			"200": {Description: "The import report.", Content: map[string]*huma.MediaType{
				"application/json": {Schema: report},
			}},
			"400": problemResponse("The body could not be read."),
			"401": problemResponse("Missing or unknown API key."),
			"403": problemResponse("The key's role is not operator."),
			"415": problemResponse("Content-Type is not application/x-ndjson, or Content-Encoding is not identity."),
			"422": problemResponse("A query parameter was given: the route takes none."),
			"500": problemResponse("The import stopped on a store failure; report holds the lines processed so far."),
		},
	})
}

// readErrRecorder remembers the first error reading the request body, so a
// failed upload is told apart from a failed store.
type readErrRecorder struct {
	r   io.Reader
	err error
}

func (e *readErrRecorder) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// mediaType returns the format types gives r's Content-Type, or answers a
// 415 saying the body must be want and reports false.
func mediaType(w http.ResponseWriter, r *http.Request, types map[string]string, want string) (string, bool) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if format := types[mt]; err == nil && format != "" {
		return format, true
	}
	writeProblem(w, newProblem(http.StatusUnsupportedMediaType, CodeUnsupportedMedia, "the body must be "+want,
		&huma.ErrorDetail{Location: "header.Content-Type", Message: "must be " + want, Value: ct}))
	return "", false
}

// streamProblem is the problem of err, the failure of a streamed body's
// route: a 400 when reading the body failed, else as problemFor maps it.
func (s *server) streamProblem(ctx context.Context, body *readErrRecorder, err error) *Problem {
	if body.err != nil && errors.Is(err, body.err) {
		s.log.WarnContext(ctx, "request body unreadable", "err", err)
		return newProblem(http.StatusBadRequest, CodeBadRequest, "cannot read the request body")
	}
	return s.problemFor(ctx, err)
}

func (s *server) importRecipients(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if p := queryProblem(r.URL.Query(), nil); p != nil {
		writeProblem(w, p)
		return
	}
	if refuseCompressed(w, r, "the import body must not be compressed") {
		return
	}
	if _, ok := mediaType(w, r, importMediaTypes, "application/x-ndjson"); !ok {
		return
	}
	// A large import outlives the server-wide timeouts meant for small
	// JSON bodies (http.read_timeout and http.write_timeout, 5 minutes by
	// default; 10M lines take longer): the body may take as long as it
	// takes, and so may the report written once it is all stored. The
	// write deadline counts from the request's headers, so it is lifted
	// too. The route is authenticated and operator-only.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})

	body := &readErrRecorder{r: r.Body}
	rep, err := s.cfg.Recipients.ImportRecipients(ctx, body, s.chunk)
	if err != nil {
		p := s.streamProblem(ctx, body, err)
		p.Report = rep
		writeProblem(w, p)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
