package controlplane

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v2"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

var namespaceNameRE = regexp.MustCompile(`^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$`)

func (a *API) ruleRoutes() []auth.Route {
	return []auth.Route{
		route("POST /workspaces/{id}/rulegroupsnamespaces", "aps:CreateRuleGroupsNamespace", auth.Workspace, a.createRuleNamespace),
		route("GET /workspaces/{id}/rulegroupsnamespaces", "aps:ListRuleGroupsNamespaces", auth.Workspace, a.listRuleNamespaces),
		route("PUT /workspaces/{id}/rulegroupsnamespaces/{name}", "aps:PutRuleGroupsNamespace", auth.RuleGroupsNamespace, a.putRuleNamespace),
		route("GET /workspaces/{id}/rulegroupsnamespaces/{name}", "aps:DescribeRuleGroupsNamespace", auth.RuleGroupsNamespace, a.describeRuleNamespace),
		route("DELETE /workspaces/{id}/rulegroupsnamespaces/{name}", "aps:DeleteRuleGroupsNamespace", auth.RuleGroupsNamespace, a.deleteRuleNamespace),
	}
}

func (a *API) namespaceARN(id workspace.ID, name string) string {
	return fmt.Sprintf("arn:aws:aps:%s:%s:rulegroupsnamespace/%s/%s", a.cfg.Region, a.cfg.AccountID, id, name)
}

// ValidateRules checks a rule file as strictly as `promtool check rules`;
// the error lists every problem with its rule group, rule and line.
func ValidateRules(data []byte) error {
	if len(data) == 0 {
		return validation("data is empty: send a Prometheus rule file (YAML), base64-encoded")
	}
	_, errs := rulefmt.Parse(data, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return validation("invalid rule file: %s", strings.Join(msgs, "; "))
}

// activeWorkspace checks the workspace in the path exists.
func (a *API) activeWorkspace(r *http.Request) (workspace.ID, error) {
	id, err := a.workspaceID(r)
	if err != nil {
		return "", err
	}
	if _, err := a.cat.GetWorkspace(r.Context(), id); err != nil {
		return "", err
	}
	return id, nil
}

type ruleNamespaceRequest struct {
	Name        string            `json:"name"`
	Data        []byte            `json:"data"` // base64 in JSON, as AMP's blob.
	ClientToken string            `json:"clientToken"`
	Tags        map[string]string `json:"tags"`
}

func (a *API) createRuleNamespace(w http.ResponseWriter, r *http.Request) {
	a.writeRuleNamespace(w, r, true)
}

func (a *API) putRuleNamespace(w http.ResponseWriter, r *http.Request) {
	a.writeRuleNamespace(w, r, false)
}

func (a *API) writeRuleNamespace(w http.ResponseWriter, r *http.Request, create bool) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req ruleNamespaceRequest
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if !create {
		req.Name = r.PathValue("name")
	}
	if !namespaceNameRE.MatchString(req.Name) {
		a.fail(w, validation("name %q must be 1 to 64 characters: letters, digits, '.', '-', '_'", req.Name))
		return
	}
	if err := ValidateRules(req.Data); err != nil {
		a.fail(w, err)
		return
	}
	if err := a.checkRuleQuotas(r.Context(), id, req.Name, req.Data); err != nil {
		a.fail(w, err)
		return
	}
	ns := catalog.RuleNamespace{Workspace: id, Name: req.Name, Data: req.Data, ModifiedAt: a.now(), Tags: req.Tags}
	if err := a.cat.PutRuleNamespace(r.Context(), ns, create); err != nil {
		a.fail(w, err)
		return
	}
	a.syncRules(r.Context(), id)
	stored, err := a.cat.RuleNamespace(r.Context(), id, req.Name)
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusAccepted, map[string]any{"arn": a.namespaceARN(id, req.Name), "name": req.Name,
		"status": statusJSON{"ACTIVE"}, "tags": stored.Tags})
}

// syncRules tells the engine a workspace's namespaces changed.
func (a *API) syncRules(ctx context.Context, id workspace.ID) {
	if err := a.engine.SyncRules(ctx, id); err != nil {
		a.logger.Warn("apply rule groups namespaces; the engine's periodic resync will retry", "workspace", id, "err", err)
	}
}

// checkRuleQuotas enforces the workspace's rule quotas on the namespace
// name about to hold data: rules per group, and rule groups across all
// of the workspace's namespaces.
func (a *API) checkRuleQuotas(ctx context.Context, id workspace.ID, name string, data []byte) error {
	lim := a.limits.Limits(id)
	groups := countGroups(data)
	if lim.MaxRulesPerRuleGroup > 0 {
		for _, g := range groups {
			if g.rules > lim.MaxRulesPerRuleGroup {
				return quotaExceeded("rule group %q has %d rules, more than the %d per rule group workspace %s may have (max_rules_per_rule_group)",
					g.name, g.rules, lim.MaxRulesPerRuleGroup, id)
			}
		}
	}
	if lim.MaxRuleGroups <= 0 {
		return nil
	}
	total := len(groups)
	after := ""
	for {
		page, err := a.cat.RuleNamespaces(ctx, id, "", after, 500)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for _, ns := range page {
			if ns.Name != name {
				total += len(countGroups(ns.Data))
			}
		}
		after = page[len(page)-1].Name
	}
	if total > lim.MaxRuleGroups {
		return quotaExceeded("workspace %s would have %d rule groups across its rule groups namespaces, more than its limit of %d (max_rule_groups)",
			id, total, lim.MaxRuleGroups)
	}
	return nil
}

type groupSize struct {
	name  string
	rules int
}

// countGroups returns the groups of a rule file and their sizes; a file
// that does not parse counts as none (it was validated when stored).
func countGroups(data []byte) []groupSize {
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []any  `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil
	}
	out := make([]groupSize, 0, len(f.Groups))
	for _, g := range f.Groups {
		out = append(out, groupSize{g.Name, len(g.Rules)})
	}
	return out
}

func (a *API) namespaceJSON(ns catalog.RuleNamespace, withData bool) map[string]any {
	out := map[string]any{"arn": a.namespaceARN(ns.Workspace, ns.Name), "name": ns.Name, "status": statusJSON{"ACTIVE"},
		"createdAt": float64(ns.CreatedAt.UnixMilli()) / 1000, "modifiedAt": float64(ns.ModifiedAt.UnixMilli()) / 1000, "tags": ns.Tags}
	if withData {
		out["data"] = base64.StdEncoding.EncodeToString(ns.Data)
	}
	return out
}

func (a *API) describeRuleNamespace(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	ns, err := a.cat.RuleNamespace(r.Context(), id, r.PathValue("name"))
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"ruleGroupsNamespace": a.namespaceJSON(ns, true)})
}

func (a *API) listRuleNamespaces(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	q := r.URL.Query()
	limit, after, err := pageRequest(q)
	if err != nil {
		a.fail(w, err)
		return
	}
	page, err := a.cat.RuleNamespaces(r.Context(), id, q.Get("name"), after, limit+1)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := map[string]any{}
	if len(page) > limit {
		page = page[:limit]
		out["nextToken"] = pageToken(page[limit-1].Name)
	}
	list := make([]map[string]any, 0, len(page))
	for _, ns := range page {
		list = append(list, a.namespaceJSON(ns, false))
	}
	out["ruleGroupsNamespaces"] = list
	reply(w, http.StatusOK, out)
}

func (a *API) deleteRuleNamespace(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	name := r.PathValue("name")
	if err := a.cat.DeleteRuleNamespace(r.Context(), id, name); err != nil {
		a.fail(w, err)
		return
	}
	a.syncRules(r.Context(), id)
	w.WriteHeader(http.StatusAccepted)
}
