package controlplane

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"go.yaml.in/yaml/v2"

	"github.com/orrery-dev/orrery/internal/alerting"
	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// syncAlertmanager tells the engine that id's definition was created,
// replaced or deleted, so it applies it at once rather than at its next
// poll; the engine reads the definition back from the catalog. The change
// is stored either way: a failure is logged, not returned.
func (a *API) syncAlertmanager(ctx context.Context, id workspace.ID) {
	if err := a.engine.SyncAlertmanager(ctx, id); err != nil {
		a.logger.Warn("apply alert manager definition; the stored definition is retried at the next poll", "workspace", id, "err", err)
	}
}

func (a *API) alertmanagerRoutes() []auth.Route {
	return []auth.Route{
		route("POST /workspaces/{id}/alertmanager/definition", "aps:CreateAlertManagerDefinition", auth.Workspace,
			func(w http.ResponseWriter, r *http.Request) { a.putAlertmanager(w, r, true) }),
		route("PUT /workspaces/{id}/alertmanager/definition", "aps:PutAlertManagerDefinition", auth.Workspace,
			func(w http.ResponseWriter, r *http.Request) { a.putAlertmanager(w, r, false) }),
		route("GET /workspaces/{id}/alertmanager/definition", "aps:DescribeAlertManagerDefinition", auth.Workspace, a.describeAlertmanager),
		route("DELETE /workspaces/{id}/alertmanager/definition", "aps:DeleteAlertManagerDefinition", auth.Workspace, a.deleteAlertmanager),
	}
}

// ValidateAlertmanagerDefinition checks an AMP alert manager definition:
// YAML with alertmanager_config (parsed by the Alertmanager's own config
// loader) and template_files (parsed by its template package). Settings
// naming files on the server are refused, and so, unless
// allowServerAWSCredentials, are SNS receivers that would publish with the
// server's own AWS credentials.
func ValidateAlertmanagerDefinition(data []byte, allowServerAWSCredentials bool) error {
	var def struct {
		AlertmanagerConfig string            `yaml:"alertmanager_config"`
		TemplateFiles      map[string]string `yaml:"template_files"`
	}
	if err := yaml.UnmarshalStrict(data, &def); err != nil {
		return validation("definition is not YAML with alertmanager_config and template_files: %v", err)
	}
	if strings.TrimSpace(def.AlertmanagerConfig) == "" {
		return validation("definition has no alertmanager_config")
	}
	conf, err := amconfig.Load(def.AlertmanagerConfig)
	if err != nil {
		return validation("alertmanager_config: %v", err)
	}
	if err := alerting.CheckNoFiles(conf); err != nil {
		return validation("alertmanager_config: %v", err)
	}
	if !allowServerAWSCredentials {
		if err := alerting.CheckSNSCredentials(conf); err != nil {
			return validation("alertmanager_config: %v (this server does not let workspaces use its credentials)", err)
		}
	}
	for name, body := range def.TemplateFiles {
		t, err := template.New()
		if err != nil {
			return err
		}
		if err := t.Parse(strings.NewReader(body)); err != nil {
			return validation("template file %q: %v", name, err)
		}
	}
	return nil
}

func (a *API) putAlertmanager(w http.ResponseWriter, r *http.Request, create bool) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	var req struct {
		Data        []byte `json:"data"`
		ClientToken string `json:"clientToken"`
	}
	if err := decode(r, &req); err != nil {
		a.fail(w, err)
		return
	}
	if err := ValidateAlertmanagerDefinition(req.Data, a.cfg.AllowServerAWSCredentials); err != nil {
		a.fail(w, err)
		return
	}
	if err := a.cat.PutAlertmanagerDefinition(r.Context(), a.cfg.Sealer, id, req.Data, a.now(), create); err != nil {
		a.fail(w, err)
		return
	}
	a.syncAlertmanager(r.Context(), id)
	reply(w, http.StatusAccepted, map[string]any{"status": statusJSON{"ACTIVE"}})
}

func (a *API) describeAlertmanager(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	d, err := a.cat.AlertmanagerDefinition(r.Context(), a.cfg.Sealer, id)
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"alertManagerDefinition": map[string]any{
		"createdAt": float64(d.CreatedAt.UnixMilli()) / 1000, "modifiedAt": float64(d.ModifiedAt.UnixMilli()) / 1000,
		"data": base64.StdEncoding.EncodeToString(d.Data), "status": statusJSON{"ACTIVE"}}})
}

func (a *API) deleteAlertmanager(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.cat.DeleteAlertmanagerDefinition(r.Context(), id); err != nil {
		a.fail(w, err)
		return
	}
	a.syncAlertmanager(r.Context(), id)
	w.WriteHeader(http.StatusAccepted)
}
