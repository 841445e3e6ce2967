package controlplane

import (
	"net/http"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/policy"
)

// MaxPolicyBytes bounds a resource policy document, as IAM bounds resource
// policies.
const MaxPolicyBytes = 20 << 10

// policyRoutes serve a workspace's resource policy, which the auth
// middleware evaluates with the caller's own policy (auth.Guard). Its
// routes are authorized by the caller's policy alone (Route.PolicyWorkspace).
func (a *API) policyRoutes() []auth.Route {
	return []auth.Route{
		route("PUT /workspaces/{id}/policy", "aps:PutResourcePolicy", auth.Workspace, a.putPolicy),
		route("GET /workspaces/{id}/policy", "aps:DescribeResourcePolicy", auth.Workspace, a.describePolicy),
		route("DELETE /workspaces/{id}/policy", "aps:DeleteResourcePolicy", auth.Workspace, a.deletePolicy),
	}
}

func (a *API) putPolicy(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req struct {
		PolicyDocument *string `json:"policyDocument"`
		RevisionID     string  `json:"revisionId"`
		ClientToken    string  `json:"clientToken"`
	}
	if err := decodeStrict(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if req.PolicyDocument == nil {
		a.fail(w, validation("policyDocument is required"))
		return
	}
	if n := len(*req.PolicyDocument); n > MaxPolicyBytes {
		a.fail(w, validation("policyDocument is %d bytes, more than the %d a resource policy may have", n, MaxPolicyBytes))
		return
	}
	if _, err := policy.ParseResource([]byte(*req.PolicyDocument)); err != nil {
		a.fail(w, validation("policyDocument: %v", err))
		return
	}
	rev, created, err := a.cat.PutResourcePolicy(r.Context(), id, *req.PolicyDocument, req.RevisionID, a.now())
	if err != nil {
		a.fail(w, err)
		return
	}
	// AMP reports the put as in progress; Orrery applies it at once, and
	// DescribeResourcePolicy reports it ACTIVE.
	status := "UPDATING"
	if created {
		status = "CREATING"
	}
	reply(w, http.StatusAccepted, map[string]any{"policyStatus": status, "revisionId": rev})
}

func (a *API) describePolicy(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	p, err := a.cat.ResourcePolicy(r.Context(), id)
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"policyDocument": p.Document, "policyStatus": "ACTIVE", "revisionId": p.RevisionID})
}

func (a *API) deletePolicy(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	rev := r.URL.Query().Get("revisionId")
	if rev == catalog.NoPolicy {
		a.fail(w, validation("revisionId %s names no policy to delete", catalog.NoPolicy))
		return
	}
	if err := a.cat.DeleteResourcePolicy(r.Context(), id, rev); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
