package cortex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"

	"go.yaml.in/yaml/v2"
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

// ruleGroupNames lists the tenant's rule groups in Cortex by namespace.
func (s *Configs) ruleGroupNames(ctx context.Context, id workspace.ID) (map[string][]string, error) {
	b, err := s.c.do(ctx, "list rule groups", id, http.MethodGet, "/api/v1/rules", nil, nil)
	if isNotFound(err) { // Cortex answers 404 when the tenant has none.
		return map[string][]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	var all map[string][]struct {
		Name string `yaml:"name"`
	}
	if err := yaml.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("cortex list rule groups of workspace %s: %w", id, err)
	}
	out := make(map[string][]string, len(all))
	for ns, groups := range all {
		for _, g := range groups {
			out[ns] = append(out[ns], g.Name)
		}
	}
	return out, nil
}

// SyncRules makes the tenant's rule groups in Cortex those of the
// workspace's namespaces: every group is set (Cortex's ruler config API
// takes one group per call), groups and namespaces no longer in the
// catalog are deleted.
func (s *Configs) SyncRules(ctx context.Context, id workspace.ID) error {
	files, err := s.rules.RuleFiles(ctx, id)
	if err != nil {
		return err
	}
	have, err := s.ruleGroupNames(ctx, id)
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
			if _, err := s.c.do(ctx, "set rule group", id, http.MethodPost, "/api/v1/rules/"+url.PathEscape(f.Name), body,
				http.Header{"Content-Type": {"application/yaml"}}); err != nil {
				errs = append(errs, err)
			}
		}
		for _, g := range have[f.Name] {
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
// It implements controlplane.AlertmanagerHook.
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
	_, err = s.c.do(ctx, "set alertmanager config", id, http.MethodPost, "/api/v1/alerts", data, http.Header{"Content-Type": {"application/yaml"}})
	return err
}

// DeleteTenant removes the workspace from Cortex: its rule groups and
// Alertmanager configuration at once, and asks Cortex to delete its blocks
// (the tenant deletion API; Cortex's compactor deletes them later). Call it
// once the catalog no longer serves the workspace.
func (s *Configs) DeleteTenant(ctx context.Context, id workspace.ID) error {
	have, err := s.ruleGroupNames(ctx, id)
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
