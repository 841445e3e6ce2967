package auth

import (
	"net/http"
	"strings"
)

// Route is one endpoint of the server and what authorizing it takes. The
// server's route table is a list of them, read by one middleware:
// adding an endpoint is adding a Route.
type Route struct {
	// Pattern is the http.ServeMux pattern, with its method:
	// "DELETE /workspaces/{id}".
	Pattern string
	// Action is the AMP (aps:…) or Orrery (orrery:…) action a request
	// needs; empty for the few open routes (probes, the web UI, which has
	// its own sessions).
	Action string
	// Resource is what the action acts on.
	Resource Resource
	// Audited routes leave an audit line for every request but GET and
	// HEAD.
	Audited bool
	Handler http.Handler
}

// Resource names how a route's resource ARN is built from the request.
type Resource uint8

// The resources of routes.
const (
	AnyResource         Resource = iota // "*": the server's own endpoints, keys, tokens, users.
	AllWorkspaces                       // arn:…:workspace/*: creating and listing workspaces.
	Workspace                           // arn:…:workspace/{id}.
	RuleGroupsNamespace                 // arn:…:rulegroupsnamespace/{id}/{name}.
	TaggedResource                      // the ARN in the path: /tags/{arn...}.
	AllScrapers                         // arn:…:scraper/*: creating and listing scrapers.
	Scraper                             // arn:…:scraper/{scraperId}.
	AnomalyDetector                     // arn:…:anomalydetector/{id}/{anomalyDetectorId}.
)

// ARN returns the resource of a request to the route, given the workspace
// ARN prefix (arn:aws:aps:REGION:ACCOUNT:workspace/).
func (rt Route) ARN(r *http.Request, arnPrefix string) string {
	switch rt.Resource {
	case AllWorkspaces:
		return arnPrefix + "*"
	case Workspace:
		return arnPrefix + r.PathValue("id")
	case RuleGroupsNamespace:
		return strings.TrimSuffix(arnPrefix, "workspace/") + "rulegroupsnamespace/" + r.PathValue("id") + "/" + r.PathValue("name")
	case TaggedResource:
		return r.PathValue("arn")
	case AllScrapers:
		return strings.TrimSuffix(arnPrefix, "workspace/") + "scraper/*"
	case Scraper:
		return strings.TrimSuffix(arnPrefix, "workspace/") + "scraper/" + r.PathValue("scraperId")
	case AnomalyDetector:
		return strings.TrimSuffix(arnPrefix, "workspace/") + "anomalydetector/" + r.PathValue("id") + "/" + r.PathValue("anomalyDetectorId")
	default:
		return "*"
	}
}

// PolicyWorkspace returns the workspace whose resource policy is evaluated
// for a request to the route, "" for none: the workspace in the path of
// workspace, rule groups namespace and anomaly detector routes, or the
// workspace a tagged resource's ARN names (given the workspace ARN prefix).
// The resource policy operations themselves are left to the caller's own
// policy, so that a policy denying too much can always be replaced by the
// workspace's owner.
func (rt Route) PolicyWorkspace(r *http.Request, arnPrefix string) string {
	if strings.HasSuffix(rt.Action, "ResourcePolicy") {
		return ""
	}
	switch rt.Resource {
	case Workspace, RuleGroupsNamespace, AnomalyDetector:
		return r.PathValue("id")
	case TaggedResource:
		id, _ := strings.CutPrefix(r.PathValue("arn"), arnPrefix)
		if id == r.PathValue("arn") {
			return ""
		}
		return id
	}
	return ""
}

// Method returns the route's method, GET for a pattern without one.
func (rt Route) Method() string {
	m, _, ok := strings.Cut(rt.Pattern, " ")
	if !ok {
		return http.MethodGet
	}
	return m
}

// Path returns the route's path pattern, without its method.
func (rt Route) Path() string {
	_, p, ok := strings.Cut(rt.Pattern, " ")
	if !ok {
		return rt.Pattern
	}
	return p
}

// SignedBody reports whether requests to the route change what a
// workspace holds: their body is then what matters, and must be signed.
func (rt Route) SignedBody() bool {
	switch rt.Action {
	case "aps:RemoteWrite", "aps:DeleteSeries", "aps:CreateAlertManagerAlerts", "aps:PutAlertManagerSilences", "aps:DeleteAlertManagerSilence":
		return true
	}
	return false
}
