package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tocsin-dev/tocsin/dispatcher"
)

// UnreachedReports is what GET /v1/incidents/{id}/unreached calls;
// *dispatcher.UnreachedReport implements it.
type UnreachedReports interface {
	Unreached(ctx context.Context, incidentID, cursor string, limit int) (*dispatcher.UnreachedPage, error)
}

var _ UnreachedReports = (*dispatcher.UnreachedReport)(nil)

// CodeUnreachedDisabled is the code of the 404 the report answers when
// the server has none.
const CodeUnreachedDisabled = "unreached_disabled"

type unreachedInput struct {
	ID     string `path:"id"`
	Cursor string `query:"cursor" doc:"next_cursor of the previous page; empty starts at the beginning."`
	Limit  int    `query:"limit" default:"100" minimum:"1" maximum:"1000"`
}

type unreachedOutput = bodyOutput[*dispatcher.UnreachedPage]

// unreachedForOperators: the report names recipients with their reasons,
// so only operator keys read it.
func unreachedForOperators(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/incidents/") && strings.HasSuffix(r.URL.Path, "/unreached")
}

func (s *server) routeUnreached() {
	register(s, huma.Operation{
		OperationID: "list-unreached", Method: http.MethodGet, Path: "/v1/incidents/{id}/unreached", Tags: []string{"incidents"},
		Summary: "Who of an incident's audiences was never reached, and why",
		Description: "Role: operator. The recipients of any of the incident's audiences (every update's, and the late members " +
			"catch-up added) who were never sent nor delivered anything of the incident, each with its last delivery's update, " +
			"channel, status and reason (no_channel, queued quiet_hours, failed with the provider's reason, rate_limited, …), " +
			"its phone and email masked. A page may hold fewer than limit recipients (even none) while next_cursor is not " +
			"empty: keep following next_cursor until it is absent.",
		Errors: []int{http.StatusForbidden, http.StatusNotFound},
	}, func(ctx context.Context, in *unreachedInput) (*unreachedOutput, error) {
		if s.cfg.Unreached == nil {
			return nil, newProblem(http.StatusNotFound, CodeUnreachedDisabled, "the unreached report is not enabled on this server")
		}
		page, err := s.cfg.Unreached.Unreached(ctx, in.ID, in.Cursor, in.Limit)
		if err != nil {
			return nil, err
		}
		return &unreachedOutput{Body: page}, nil
	})
}
