package controlplane

import (
	"encoding/base64"
	"net/http"
	"strings"

	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/template"
	"go.yaml.in/yaml/v2"
)

func (a *API) registerAlertmanager(mux *http.ServeMux) {
	mux.HandleFunc("POST /workspaces/{id}/alertmanager/definition", func(w http.ResponseWriter, r *http.Request) { a.putAlertmanager(w, r, true) })
	mux.HandleFunc("PUT /workspaces/{id}/alertmanager/definition", func(w http.ResponseWriter, r *http.Request) { a.putAlertmanager(w, r, false) })
	mux.HandleFunc("GET /workspaces/{id}/alertmanager/definition", a.describeAlertmanager)
	mux.HandleFunc("DELETE /workspaces/{id}/alertmanager/definition", a.deleteAlertmanager)
}

// ValidateAlertmanagerDefinition checks an AMP alert manager definition:
// YAML with alertmanager_config (parsed by the Alertmanager's own config
// loader) and template_files (parsed by its template package).
func ValidateAlertmanagerDefinition(data []byte) error {
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
	if _, err := amconfig.Load(def.AlertmanagerConfig); err != nil {
		return validation("alertmanager_config: %v", err)
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
	if err := ValidateAlertmanagerDefinition(req.Data); err != nil {
		a.fail(w, err)
		return
	}
	if err := a.cat.PutAlertmanagerDefinition(r.Context(), id, req.Data, a.now(), create); err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusAccepted, map[string]any{"status": statusJSON{"ACTIVE"}})
}

func (a *API) describeAlertmanager(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	d, err := a.cat.AlertmanagerDefinition(r.Context(), id)
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
	w.WriteHeader(http.StatusAccepted)
}
