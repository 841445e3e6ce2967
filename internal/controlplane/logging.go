package controlplane

import (
	"net/http"
	"regexp"

	"github.com/orrery-dev/orrery/internal/auth"
)

// AMP sends a workspace's rule and Alertmanager errors to a CloudWatch log
// group. Orrery stores and reports the configuration so that tools which
// manage it (Terraform, the SDK) work unchanged; the errors themselves go
// to the server's log with the workspace's id, and to the rules API's
// lastError.
func (a *API) loggingRoutes() []auth.Route {
	return []auth.Route{
		route("POST /workspaces/{id}/logging", "aps:CreateLoggingConfiguration", auth.Workspace,
			func(w http.ResponseWriter, r *http.Request) { a.putLogging(w, r, true) }),
		route("PUT /workspaces/{id}/logging", "aps:UpdateLoggingConfiguration", auth.Workspace,
			func(w http.ResponseWriter, r *http.Request) { a.putLogging(w, r, false) }),
		route("GET /workspaces/{id}/logging", "aps:DescribeLoggingConfiguration", auth.Workspace, a.describeLogging),
		route("DELETE /workspaces/{id}/logging", "aps:DeleteLoggingConfiguration", auth.Workspace, a.deleteLogging),
	}
}

// logGroupARN is AMP's pattern for logGroupArn.
var logGroupARN = regexp.MustCompile(`^arn:aws[a-z0-9-]*:logs:[a-z0-9-]+:\d{12}:log-group:[A-Za-z0-9\.\-\_\#/]{1,512}\:\*$`)

func (a *API) putLogging(w http.ResponseWriter, r *http.Request, create bool) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req struct {
		LogGroupArn string `json:"logGroupArn"`
		ClientToken string `json:"clientToken"`
	}
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if !logGroupARN.MatchString(req.LogGroupArn) {
		a.fail(w, validation("logGroupArn %q is not a log group ARN (arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*)", req.LogGroupArn))
		return
	}
	if err := a.cat.PutLoggingConfiguration(r.Context(), id, req.LogGroupArn, a.now(), create); err != nil {
		a.fail(w, err)
		return
	}
	code := "ACTIVE"
	if !create {
		code = "UPDATING"
	}
	reply(w, http.StatusAccepted, map[string]any{"status": statusJSON{code}})
}

func (a *API) describeLogging(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	l, err := a.cat.LoggingConfiguration(r.Context(), id)
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"loggingConfiguration": map[string]any{
		"createdAt": seconds(l.CreatedAt), "modifiedAt": seconds(l.ModifiedAt), "logGroupArn": l.LogGroupARN,
		"status": statusJSON{"ACTIVE"}, "workspace": id.String()}})
}

func (a *API) deleteLogging(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.cat.DeleteLoggingConfiguration(r.Context(), id); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
