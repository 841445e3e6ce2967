package controlplane

import (
	"net/http"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
)

// AMP sends a workspace's query logs to a CloudWatch log group. Orrery
// stores the configuration as AMP does, and writes the logs of the queries
// that process at least the destination's qspThreshold samples as JSON
// lines to a file per workspace under the data directory and to the
// server's log (package querylog).
func (a *API) queryLoggingRoutes() []auth.Route {
	return []auth.Route{
		route("POST /workspaces/{id}/logging/query", "aps:CreateQueryLoggingConfiguration", auth.Workspace,
			func(w http.ResponseWriter, r *http.Request) { a.putQueryLogging(w, r, true) }),
		route("PUT /workspaces/{id}/logging/query", "aps:UpdateQueryLoggingConfiguration", auth.Workspace,
			func(w http.ResponseWriter, r *http.Request) { a.putQueryLogging(w, r, false) }),
		route("GET /workspaces/{id}/logging/query", "aps:DescribeQueryLoggingConfiguration", auth.Workspace, a.describeQueryLogging),
		route("DELETE /workspaces/{id}/logging/query", "aps:DeleteQueryLoggingConfiguration", auth.Workspace, a.deleteQueryLogging),
	}
}

// destinationJSON is AMP's LoggingDestination.
type destinationJSON struct {
	CloudWatchLogs *struct {
		LogGroupArn string `json:"logGroupArn"`
	} `json:"cloudWatchLogs"`
	Filters *struct {
		QspThreshold *int64 `json:"qspThreshold"`
	} `json:"filters"`
}

func (a *API) putQueryLogging(w http.ResponseWriter, r *http.Request, create bool) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req struct {
		Destinations []destinationJSON `json:"destinations"`
		ClientToken  string            `json:"clientToken"`
	}
	if err := decodeStrict(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	// AMP takes exactly one destination.
	if len(req.Destinations) != 1 {
		a.fail(w, validation("destinations: give exactly one destination, not %d", len(req.Destinations)))
		return
	}
	d := req.Destinations[0]
	switch {
	case d.CloudWatchLogs == nil:
		a.fail(w, validation("destinations[0].cloudWatchLogs is required"))
		return
	case !logGroupARN.MatchString(d.CloudWatchLogs.LogGroupArn):
		a.fail(w, validation("destinations[0].cloudWatchLogs.logGroupArn %q is not a log group ARN (arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*)", d.CloudWatchLogs.LogGroupArn))
		return
	case d.Filters == nil || d.Filters.QspThreshold == nil:
		a.fail(w, validation("destinations[0].filters.qspThreshold is required"))
		return
	case *d.Filters.QspThreshold < 0:
		a.fail(w, validation("destinations[0].filters.qspThreshold must be 0 or more, not %d", *d.Filters.QspThreshold))
		return
	}
	dests := []catalog.QueryLogDestination{{LogGroupARN: d.CloudWatchLogs.LogGroupArn, QSPThreshold: *d.Filters.QspThreshold}}
	if err := a.cat.PutQueryLoggingConfiguration(r.Context(), id, dests, a.now(), create); err != nil {
		a.fail(w, err)
		return
	}
	// As AMP, the change is reported in progress; it holds at once on this
	// server, and within querylog.DefaultTTL on replicas sharing the
	// catalog.
	code := "CREATING"
	if !create {
		code = "UPDATING"
	}
	reply(w, http.StatusAccepted, map[string]any{"status": statusJSON{code}})
}

func (a *API) describeQueryLogging(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	q, err := a.cat.QueryLoggingConfiguration(r.Context(), id)
	if err != nil {
		a.fail(w, err)
		return
	}
	dests := make([]map[string]any, 0, len(q.Destinations))
	for _, d := range q.Destinations {
		dests = append(dests, map[string]any{"cloudWatchLogs": map[string]any{"logGroupArn": d.LogGroupARN},
			"filters": map[string]any{"qspThreshold": d.QSPThreshold}})
	}
	reply(w, http.StatusOK, map[string]any{"queryLoggingConfiguration": map[string]any{
		"createdAt": seconds(q.CreatedAt), "modifiedAt": seconds(q.ModifiedAt), "destinations": dests,
		"status": statusJSON{"ACTIVE"}, "workspace": id.String()}})
}

func (a *API) deleteQueryLogging(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.cat.DeleteQueryLoggingConfiguration(r.Context(), id); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
