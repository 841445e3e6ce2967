package auth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/orrery-dev/orrery/internal/policy"
)

// Key is what authorization needs of an access key.
type Key struct {
	Secret  string
	Policy  *policy.Policy
	Revoked bool
}

// KeyLookup finds an access key; ok is false for unknown keys.
type KeyLookup func(ctx context.Context, id string) (k Key, ok bool, err error)

// Request says what a request does: its action (e.g. aps:RemoteWrite) and
// the ARN of the resource it acts on.
type Request struct {
	Action   string
	Resource string
}

// Guard authenticates requests with SigV4 and authorizes them with the
// key's policy. It is safe for concurrent use.
type Guard struct {
	verifier *Verifier
	keys     KeyLookup
	tokens   TokenLookup
	logger   *slog.Logger
}

// NewGuard returns a Guard for the given service ("aps"). A nil tokens
// refuses bearer tokens.
func NewGuard(service string, keys KeyLookup, tokens TokenLookup, logger *slog.Logger) *Guard {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{keys: keys, tokens: tokens, logger: logger.With("component", "auth")}
	g.verifier = &Verifier{Service: service, Secrets: func(string) (string, bool, error) { return "", false, nil }}
	return g
}

// Check authenticates r (a SigV4 signature, or a bearer token) and decides
// whether it may do what the request says. It returns the principal (the
// access key id, or "token/<id>"), or an *Error to send back.
func (g *Guard) Check(r *http.Request, what Request) (string, error) {
	if tok, ok := bearer(r); ok {
		who, p, err := g.checkToken(r.Context(), tok)
		if err != nil {
			return "", err
		}
		if err := authorize("bearer "+who, p, what); err != nil {
			return "", err
		}
		return who, nil
	}
	var key Key
	v := *g.verifier
	v.Secrets = func(id string) (string, bool, error) {
		k, ok, err := g.keys(r.Context(), id)
		if err != nil || !ok || k.Revoked {
			return "", false, err
		}
		key = k
		return k.Secret, true, nil
	}
	id, err := v.Verify(r)
	if err != nil {
		return "", err
	}
	if err := authorize("access key "+id.AccessKeyID, key.Policy, what); err != nil {
		return "", err
	}
	return id.AccessKeyID, nil
}

// authorize evaluates a principal's policy for a request.
func authorize(who string, p *policy.Policy, what Request) error {
	switch policy.Evaluate(what.Action, what.Resource, p) {
	case policy.Allowed:
		return nil
	case policy.ExplicitDeny:
		return &Error{Status: http.StatusForbidden, Code: "AccessDeniedException",
			Msg: who + " is explicitly denied " + what.Action + " on " + what.Resource}
	default:
		return &Error{Status: http.StatusForbidden, Code: "AccessDeniedException",
			Msg: who + " is not allowed " + what.Action + " on " + what.Resource}
	}
}

// WriteError answers an authentication or authorization failure the way
// AWS does: x-amzn-ErrorType header and a JSON message.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Code: "InternalServerException", Msg: err.Error()}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", e.Code)
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": e.Msg})
}

// DataPlaneAction maps a workspace API path (below /workspaces/{id}) and
// method to the AMP action it needs.
func DataPlaneAction(method, rest string) string {
	if _, am, ok := strings.Cut(rest, "/alertmanager/api/v2/"); ok {
		return alertmanagerAction(method, am)
	}
	switch {
	case strings.HasSuffix(rest, "/api/v1/remote_write"), strings.HasSuffix(rest, "/api/v1/otlp/v1/metrics"):
		return "aps:RemoteWrite"
	case strings.HasSuffix(rest, "/api/v1/labels"), strings.Contains(rest, "/api/v1/label/"):
		return "aps:GetLabels"
	case strings.HasSuffix(rest, "/api/v1/series"):
		return "aps:GetSeries"
	case strings.HasSuffix(rest, "/api/v1/metadata"):
		return "aps:GetMetricMetadata"
	case strings.Contains(rest, "/api/v1/admin/"):
		return "aps:DeleteSeries"
	case strings.HasSuffix(rest, "/api/v1/rules"):
		return "aps:ListRules"
	case strings.HasSuffix(rest, "/api/v1/alerts"):
		return "aps:ListAlerts"
	default:
		return "aps:QueryMetrics"
	}
}

// alertmanagerAction maps an Alertmanager v2 API path (after /api/v2/) to
// AMP's action for it.
func alertmanagerAction(method, path string) string {
	path = strings.Trim(path, "/")
	switch {
	case path == "alerts" && method == http.MethodPost:
		return "aps:CreateAlertManagerAlerts"
	case path == "alerts":
		return "aps:ListAlertManagerAlerts"
	case path == "alerts/groups":
		return "aps:ListAlertManagerAlertGroups"
	case path == "silences" && method == http.MethodPost:
		return "aps:PutAlertManagerSilences"
	case path == "silences":
		return "aps:ListAlertManagerSilences"
	case strings.HasPrefix(path, "silence/") && method == http.MethodDelete:
		return "aps:DeleteAlertManagerSilence"
	case strings.HasPrefix(path, "silence/"):
		return "aps:GetAlertManagerSilence"
	case path == "receivers":
		return "aps:ListAlertManagerReceivers"
	default:
		// status, and paths the API does not serve.
		return "aps:GetAlertManagerStatus"
	}
}

// ControlPlaneAction maps a control-plane request to its AMP action and
// resource, given the workspace ARN prefix (arn:aws:aps:REGION:ACCOUNT:workspace/).
func ControlPlaneAction(method, path, arnPrefix string) Request {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	all := arnPrefix + "*"
	switch {
	case len(parts) >= 3 && parts[0] == "orrery" && (parts[2] == "accesskeys" || parts[2] == "tokens"):
		noun := map[string]string{"accesskeys": "AccessKey", "tokens": "APIToken"}[parts[2]]
		switch method {
		case http.MethodDelete:
			return Request{"orrery:Revoke" + noun, "*"}
		case http.MethodPost:
			return Request{"orrery:Create" + noun, "*"}
		default:
			return Request{"orrery:List" + noun + "s", "*"}
		}
	case len(parts) >= 3 && parts[0] == "orrery" && parts[2] == "users":
		switch method {
		case http.MethodDelete:
			return Request{"orrery:DeleteUser", "*"}
		case http.MethodPost:
			return Request{"orrery:CreateUser", "*"}
		case http.MethodPut:
			return Request{"orrery:UpdateUser", "*"}
		default:
			return Request{"orrery:ListUsers", "*"}
		}
	case len(parts) == 5 && parts[0] == "orrery" && parts[2] == "workspaces" && parts[4] == "dashboards":
		if method == http.MethodPost {
			return Request{"orrery:PutDashboard", arnPrefix + parts[3]}
		}
		return Request{"orrery:ListDashboards", arnPrefix + parts[3]}
	case len(parts) >= 1 && parts[0] == "tags":
		arn := strings.TrimPrefix(path, "/tags/")
		switch method {
		case http.MethodPost:
			return Request{"aps:TagResource", arn}
		case http.MethodDelete:
			return Request{"aps:UntagResource", arn}
		default:
			return Request{"aps:ListTagsForResource", arn}
		}
	case len(parts) == 1 && method == http.MethodPost:
		return Request{"aps:CreateWorkspace", all}
	case len(parts) == 1:
		return Request{"aps:ListWorkspaces", all}
	case len(parts) == 2 && method == http.MethodDelete:
		return Request{"aps:DeleteWorkspace", arnPrefix + parts[1]}
	case len(parts) == 2:
		return Request{"aps:DescribeWorkspace", arnPrefix + parts[1]}
	case len(parts) == 3 && parts[2] == "rulegroupsnamespaces" && method == http.MethodPost:
		return Request{"aps:CreateRuleGroupsNamespace", arnPrefix + parts[1]}
	case len(parts) == 3 && parts[2] == "rulegroupsnamespaces":
		return Request{"aps:ListRuleGroupsNamespaces", arnPrefix + parts[1]}
	case len(parts) == 4 && parts[2] == "rulegroupsnamespaces":
		nsARN := strings.TrimSuffix(arnPrefix, "workspace/") + "rulegroupsnamespace/" + parts[1] + "/" + parts[3]
		switch method {
		case http.MethodPut:
			return Request{"aps:PutRuleGroupsNamespace", nsARN}
		case http.MethodDelete:
			return Request{"aps:DeleteRuleGroupsNamespace", nsARN}
		default:
			return Request{"aps:DescribeRuleGroupsNamespace", nsARN}
		}
	case len(parts) == 4 && parts[2] == "alertmanager" && parts[3] == "definition":
		switch method {
		case http.MethodPost:
			return Request{"aps:CreateAlertManagerDefinition", arnPrefix + parts[1]}
		case http.MethodPut:
			return Request{"aps:PutAlertManagerDefinition", arnPrefix + parts[1]}
		case http.MethodDelete:
			return Request{"aps:DeleteAlertManagerDefinition", arnPrefix + parts[1]}
		default:
			return Request{"aps:DescribeAlertManagerDefinition", arnPrefix + parts[1]}
		}
	case len(parts) == 3 && parts[2] == "configuration" && method == http.MethodPatch:
		return Request{"aps:UpdateWorkspaceConfiguration", arnPrefix + parts[1]}
	case len(parts) == 3 && parts[2] == "configuration":
		return Request{"aps:DescribeWorkspaceConfiguration", arnPrefix + parts[1]}
	case len(parts) == 3 && parts[2] == "logging":
		verb := map[string]string{http.MethodPost: "Create", http.MethodPut: "Update", http.MethodDelete: "Delete"}[method]
		if verb == "" {
			verb = "Describe"
		}
		return Request{"aps:" + verb + "LoggingConfiguration", arnPrefix + parts[1]}
	case len(parts) == 3 && parts[2] == "alias":
		return Request{"aps:UpdateWorkspaceAlias", arnPrefix + parts[1]}
	default:
		return Request{"aps:" + method, all}
	}
}
