package cortex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"sort"

	"github.com/prometheus/prometheus/model/rulefmt"
	yaml3 "go.yaml.in/yaml/v3"

	"github.com/orrery-dev/orrery/internal/ruler"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// RuleFiles gives a workspace's rule groups namespaces (rule files), as
// ruler.Namespaces does: none for a workspace that does not exist or is
// being deleted.
type RuleFiles interface {
	RuleFiles(ctx context.Context, id workspace.ID) ([]ruler.RuleFile, error)
}

// Definitions gives a workspace's alert manager definition in AMP's format
// (which is Cortex's: alertmanager_config and template_files); ok is false
// if it has none.
type Definitions interface {
	AlertmanagerDefinition(ctx context.Context, id workspace.ID) (data []byte, ok bool, err error)
}

// Configs keeps Cortex's ruler and Alertmanager configuration of each
// tenant equal to the catalog's rule groups namespaces and alert manager
// definition of its workspace. Every method reads the catalog afresh, so
// any replica may call it after any change; concurrent calls for one
// workspace converge on the catalog's state. Safe for concurrent use.
type Configs struct {
	c      *Client
	rules  RuleFiles
	defs   Definitions
	logger *slog.Logger
}

// NewConfigs returns the configuration syncer.
func NewConfigs(c *Client, rules RuleFiles, defs Definitions, logger *slog.Logger) *Configs {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Configs{c: c, rules: rules, defs: defs, logger: logger}
}

// cortexGroups returns the tenant's rule groups in Cortex by namespace
// and group name.
func (s *Configs) cortexGroups(ctx context.Context, id workspace.ID) (map[string]map[string]rulefmt.RuleGroup, error) {
	b, err := s.c.do(ctx, "list rule groups", id, http.MethodGet, "/api/v1/rules", nil, nil)
	if isNotFound(err) { // Cortex answers 404 when the tenant has none.
		return map[string]map[string]rulefmt.RuleGroup{}, nil
	}
	if err != nil {
		return nil, err
	}
	var all map[string][]rulefmt.RuleGroup
	if err := yaml3.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("cortex list rule groups of workspace %s: %w", id, err)
	}
	out := make(map[string]map[string]rulefmt.RuleGroup, len(all))
	for ns, groups := range all {
		out[ns] = make(map[string]rulefmt.RuleGroup, len(groups))
		for _, g := range groups {
			out[ns][g.Name] = g
		}
	}
	return out, nil
}

// SyncRules makes the tenant's rule groups in Cortex those of the
// workspace's namespaces: groups Cortex does not have as they are are set
// (Cortex's ruler config API takes one group per call), groups and
// namespaces no longer in the catalog are deleted. A sync with nothing
// changed costs one GET.
func (s *Configs) SyncRules(ctx context.Context, id workspace.ID) error {
	files, err := s.rules.RuleFiles(ctx, id)
	if err != nil {
		return err
	}
	have, err := s.cortexGroups(ctx, id)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range files {
		groups, err := ruleGroups(f.Data)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule groups namespace %s: %w", f.Name, err))
			continue
		}
		want := map[string]bool{}
		for _, g := range groups {
			name := g.name
			want[name] = true
			body := g.yaml
			var parsed rulefmt.RuleGroup
			if err := yaml3.Unmarshal(body, &parsed); err == nil && reflect.DeepEqual(parsed, have[f.Name][name]) {
				continue // Cortex has it already.
			}
			if _, err := s.c.do(ctx, "set rule group", id, http.MethodPost, "/api/v1/rules/"+url.PathEscape(f.Name), body,
				http.Header{"Content-Type": {"application/yaml"}}); err != nil {
				errs = append(errs, err)
			}
		}
		for g := range have[f.Name] {
			if !want[g] {
				if _, err := s.c.do(ctx, "delete rule group", id, http.MethodDelete, "/api/v1/rules/"+url.PathEscape(f.Name)+"/"+url.PathEscape(g), nil, nil); err != nil && !isNotFound(err) {
					errs = append(errs, err)
				}
			}
		}
		delete(have, f.Name)
	}
	stale := make([]string, 0, len(have))
	for ns := range have {
		stale = append(stale, ns)
	}
	sort.Strings(stale)
	for _, ns := range stale {
		if _, err := s.c.do(ctx, "delete rule groups namespace", id, http.MethodDelete, "/api/v1/rules/"+url.PathEscape(ns), nil, nil); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sync rules of workspace %s to cortex: %w", id, err)
	}
	return nil
}

// ruleGroup is one group of a rule file, re-encoded on its own.
type ruleGroup struct {
	name string
	yaml []byte
}

// ruleGroups splits a rule file into its groups. It goes through YAML
// nodes, not Go values, so that every scalar keeps its exact form (YAML 1.1
// decoders would turn a label value such as y or off into a boolean).
func ruleGroups(data []byte) ([]ruleGroup, error) {
	var doc yaml3.Node
	if err := yaml3.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml3.MappingNode {
		return nil, errors.New("not a rule file: want a mapping with groups")
	}
	var out []ruleGroup
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "groups" {
			continue
		}
		for _, g := range root.Content[i+1].Content {
			var rg ruleGroup
			for j := 0; j+1 < len(g.Content); j += 2 {
				if g.Content[j].Value == "name" {
					rg.name = g.Content[j+1].Value
				}
			}
			b, err := yaml3.Marshal(g)
			if err != nil {
				return nil, fmt.Errorf("rule group %s: %w", rg.name, err)
			}
			rg.yaml = b
			out = append(out, rg)
		}
	}
	return out, nil
}

// Sync makes the tenant's Alertmanager configuration in Cortex the
// workspace's alert manager definition, or deletes it if there is none.
// The server calls it when a definition changes (the control plane's SyncAlertmanager).
func (s *Configs) Sync(ctx context.Context, id workspace.ID) error {
	data, ok, err := s.defs.AlertmanagerDefinition(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		_, err = s.c.do(ctx, "delete alertmanager config", id, http.MethodDelete, "/api/v1/alerts", nil, nil)
		if isNotFound(err) {
			err = nil
		}
		return err
	}
	cur, err := s.c.do(ctx, "get alertmanager config", id, http.MethodGet, "/api/v1/alerts", nil, nil)
	if err != nil && !isNotFound(err) {
		return err
	}
	if err == nil && sameDefinition(cur, data) {
		return nil
	}
	_, err = s.c.do(ctx, "set alertmanager config", id, http.MethodPost, "/api/v1/alerts", data, http.Header{"Content-Type": {"application/yaml"}})
	return err
}

// sameDefinition reports whether two alert manager definitions (AMP's and
// Cortex's format) have the same configuration and templates.
func sameDefinition(a, b []byte) bool {
	type def struct {
		AlertmanagerConfig string            `yaml:"alertmanager_config"`
		TemplateFiles      map[string]string `yaml:"template_files"`
	}
	var da, db def
	if yaml3.Unmarshal(a, &da) != nil || yaml3.Unmarshal(b, &db) != nil {
		return false
	}
	return da.AlertmanagerConfig == db.AlertmanagerConfig && maps.Equal(da.TemplateFiles, db.TemplateFiles)
}

// Reconcile syncs the rules of the workspaces in rules and the
// Alertmanager configurations of those in alertmanagers, so that a change
// whose immediate push failed (Cortex unreachable) applies at the next
// pass. It returns the errors of all workspaces.
func (s *Configs) Reconcile(ctx context.Context, rules, alertmanagers []workspace.ID) error {
	var errs []error
	for _, id := range rules {
		if err := s.SyncRules(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	for _, id := range alertmanagers {
		if err := s.Sync(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("sync alertmanager of workspace %s to cortex: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// DeleteTenant removes the workspace from Cortex: its rule groups and
// Alertmanager configuration at once, and asks Cortex to delete its blocks
// (the tenant deletion API; Cortex's compactor deletes them later). Call it
// once the catalog no longer serves the workspace.
func (s *Configs) DeleteTenant(ctx context.Context, id workspace.ID) error {
	have, err := s.cortexGroups(ctx, id)
	if err != nil {
		return err
	}
	var errs []error
	for ns := range have {
		if _, err := s.c.do(ctx, "delete rule groups namespace", id, http.MethodDelete, "/api/v1/rules/"+url.PathEscape(ns), nil, nil); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	if _, err := s.c.do(ctx, "delete alertmanager config", id, http.MethodDelete, "/api/v1/alerts", nil, nil); err != nil && !isNotFound(err) {
		errs = append(errs, err)
	}
	if _, err := s.c.do(ctx, "delete tenant", id, http.MethodPost, "/purger/delete_tenant", nil, nil); err != nil {
		s.logger.Warn("cortex did not accept the tenant deletion; its blocks stay until deleted by hand", "workspace", id, "err", err)
	}
	return errors.Join(errs...)
}
