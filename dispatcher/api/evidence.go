package api

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher/evidence"
)

// Evidence is what the evidence routes call; *evidence.Ledger implements it.
type Evidence interface {
	Open(ctx context.Context, incidentID string) (*evidence.Run, error)
}

const (
	evidencePath = "/v1/incidents/{id}/evidence"
	reportPath   = "/v1/incidents/{id}/report"
)

// routeEvidence registers the evidence export and the report. Both stream
// (the export can be millions of rows), so they are registered on the mux
// and added to the OpenAPI document by hand, as the import is.
func (s *server) routeEvidence() {
	s.mux.HandleFunc("GET "+evidencePath, s.exportEvidence)
	s.mux.HandleFunc("GET "+reportPath, s.incidentReport)

	reg := s.api.OpenAPI().Components.Schemas
	report := reg.Schema(reflect.TypeFor[evidence.Report](), true, "EvidenceReport")
	problem := reg.Schema(reflect.TypeFor[huma.ErrorModel](), true, "ErrorModel")
	problemResponse := func(desc string) *huma.Response {
		return &huma.Response{Description: desc, Content: map[string]*huma.MediaType{"application/problem+json": {Schema: problem}}}
	}
	id := &huma.Param{Name: "id", In: "path", Required: true, Schema: &huma.Schema{Type: huma.TypeString}, Description: "Incident id."}
	common := map[string]*huma.Response{
		"401": problemResponse("Missing or unknown API key."),
		"404": problemResponse("No such incident, or no evidence ledger on this server."),
		"422": problemResponse("An unknown or repeated query parameter, or an unknown format or language."),
	}
	with := func(ok *huma.Response) map[string]*huma.Response {
		m := map[string]*huma.Response{"200": ok}
		for k, v := range common {
			m[k] = v
		}
		return m
	}
	exportResponses := with(&huma.Response{Description: "The export.", Content: map[string]*huma.MediaType{
		"application/x-ndjson": {Schema: &huma.Schema{Type: huma.TypeString, Description: "One row object per line."}},
		"text/csv":             {Schema: &huma.Schema{Type: huma.TypeString, Description: "A header line, then one row per line."}},
	}})
	exportResponses["403"] = problemResponse("The key's role is not operator.")
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "export-evidence",
		Method:      http.MethodGet,
		Path:        evidencePath,
		Tags:        []string{"incidents"},
		Summary:     "Export an incident's evidence ledger",
		Description: "Role: operator (it shows recipient ids and the texts they got). Streams one row per delivery attempt of every update of the incident, then its timeline and a summary, " +
			"each row carrying the hash of the row before (a hash chain), and last the chain head. " +
			"`tocsin evidence verify FILE` checks an export; docs/api.md describes the rows and the chain so anyone can. " +
			"A whole export ends with the head line and the HTTP trailer `Tocsin-Evidence-Status: complete`; one the server cannot finish " +
			"(a Redis failover during its scan) ends with a row of type `error` saying to run it again, and its transfer is aborted.",
		Security:   bearer,
		Parameters: []*huma.Param{id, {Name: "format", In: "query", Schema: &huma.Schema{Type: huma.TypeString, Enum: []any{"ndjson", "csv"}, Default: "ndjson"}, Description: "ndjson (default) or csv."}},
		Responses:  exportResponses,
	})
	s.api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: "incident-report",
		Method:      http.MethodGet,
		Path:        reportPath,
		Tags:        []string{"incidents"},
		Summary:     "Report on who was told what and when",
		Description: "Counts by channel, status, reason and locale, the timeline and the unreached count, as JSON, " +
			"or as a one-page printable HTML report (format=html, or Accept: text/html) in the language lang (default en).",
		Security: bearer,
		Parameters: []*huma.Param{id,
			{Name: "format", In: "query", Schema: &huma.Schema{Type: huma.TypeString, Enum: []any{"json", "html"}}, Description: "json (default) or html; without it, Accept: text/html asks for html."},
			{Name: "lang", In: "query", Schema: &huma.Schema{Type: huma.TypeString, Default: "en"}, Description: "BCP 47 tag of the HTML report's language: en, de, fr, it, da or es, or a regional variant of one (de-CH is German with Swiss dates and numbers); any other is English."},
		},
		Responses: with(&huma.Response{Description: "The report.", Content: map[string]*huma.MediaType{
			"application/json": {Schema: report},
			"text/html":        {Schema: &huma.Schema{Type: huma.TypeString}},
		}}),
	})
}

// evidenceForOperators tells a request for an evidence export, which only
// operators may read: it shows recipient ids and the texts they got (a
// self-service subscriber's carry its own manage link). The report shows
// neither and is for viewers too.
func evidenceForOperators(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/incidents/") && strings.HasSuffix(r.URL.Path, "/evidence")
}

func (s *server) openEvidence(w http.ResponseWriter, r *http.Request, names []string) *evidence.Run {
	if p := queryProblem(r.URL.Query(), names); p != nil {
		writeProblem(w, p)
		return nil
	}
	if s.cfg.Evidence == nil {
		writeProblem(w, newProblem(http.StatusNotFound, CodeNotFound, "this server keeps no evidence ledger"))
		return nil
	}
	run, err := s.cfg.Evidence.Open(r.Context(), r.PathValue("id"))
	if err != nil {
		writeProblem(w, s.problemFor(r.Context(), err))
		return nil
	}
	return run
}

func (s *server) exportEvidence(w http.ResponseWriter, r *http.Request) {
	f, ok := evidence.ParseFormat(r.URL.Query().Get("format"))
	if !ok {
		writeProblem(w, newProblem(http.StatusUnprocessableEntity, CodeInvalidInput, "validation failed",
			&huma.ErrorDetail{Location: "query.format", Message: "must be ndjson or csv", Value: r.URL.Query().Get("format")}))
		return
	}
	run := s.openEvidence(w, r, []string{"format"})
	if run == nil {
		return
	}
	// A large export outlives any server-wide write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	ext := ".ndjson"
	if f == evidence.CSV {
		ext = ".csv"
	}
	w.Header().Set("Content-Type", f.ContentType())
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "evidence-" + r.PathValue("id") + ext}))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Trailer", EvidenceStatusTrailer)
	if _, err := run.Write(r.Context(), w, f); err != nil {
		// The status line is out. The export ends with an error line that
		// says why (Verify rejects it), and the response is aborted, so
		// that the client sees a transfer cut short (curl exits 18) and
		// no trailer; the log says why.
		s.log.ErrorContext(r.Context(), "evidence export failed", "incident_id", r.PathValue("id"), "err", err)
		_ = http.NewResponseController(w).Flush() // the error line goes out first
		panic(http.ErrAbortHandler)
	}
	w.Header().Set(EvidenceStatusTrailer, "complete")
}

// EvidenceStatusTrailer is the HTTP trailer of an evidence export:
// "complete" after the head line; a cut export has none.
const EvidenceStatusTrailer = "Tocsin-Evidence-Status"

func (s *server) incidentReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	html := false
	switch f := q.Get("format"); f {
	case "html":
		html = true
	case "json":
	case "":
		html = acceptsHTML(r.Header.Get("Accept"))
	default:
		writeProblem(w, newProblem(http.StatusUnprocessableEntity, CodeInvalidInput, "validation failed",
			&huma.ErrorDetail{Location: "query.format", Message: "must be json or html", Value: f}))
		return
	}
	lang := q.Get("lang")
	if lang == "" {
		lang = "en"
	}
	if !validLang(lang) {
		writeProblem(w, newProblem(http.StatusUnprocessableEntity, CodeInvalidInput, "validation failed",
			&huma.ErrorDetail{Location: "query.lang", Message: "must be a BCP 47 language tag", Value: lang}))
		return
	}
	run := s.openEvidence(w, r, []string{"format", "lang"})
	if run == nil {
		return
	}
	rep, err := run.Report(r.Context())
	if err != nil {
		writeProblem(w, s.problemFor(r.Context(), err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if html {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := evidence.WriteHTML(w, rep, lang); err != nil {
			s.log.ErrorContext(r.Context(), "evidence report failed", "incident_id", rep.IncidentID, "err", err)
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(rep)
}

// acceptsHTML tells whether an Accept header prefers text/html to JSON.
func acceptsHTML(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		switch mt {
		case "text/html":
			return true
		case "application/json", "application/*":
			return false
		}
	}
	return false
}

// validLang accepts tags of letters, digits and hyphens (de, de-CH).
func validLang(s string) bool {
	return len(s) <= 35 && !slices.ContainsFunc([]byte(s), func(c byte) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-')
	})
}
