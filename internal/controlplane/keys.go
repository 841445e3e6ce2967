package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/policy"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// KeysAPI issues, lists and revokes Orrery access keys and bearer tokens
// (an Orrery extension: AMP leaves this to IAM). Routes live below
// /orrery/v1/accesskeys and /orrery/v1/tokens. Secrets are in the answer to
// the create call only.
type KeysAPI struct {
	api    *API
	sealer *catalog.Sealer
}

// Keys returns the access-key API, sealing secrets with sealer.
func (a *API) Keys(sealer *catalog.Sealer) *KeysAPI { return &KeysAPI{api: a, sealer: sealer} }

// Routes returns the routes with the Orrery action each needs; the
// handlers name the key or token they acted on in the audit line.
func (k *KeysAPI) Routes() []auth.Route {
	return []auth.Route{
		route("POST /orrery/v1/accesskeys", "orrery:CreateAccessKey", auth.AnyResource, k.create),
		route("GET /orrery/v1/accesskeys", "orrery:ListAccessKeys", auth.AnyResource, k.list),
		route("DELETE /orrery/v1/accesskeys/{id}", "orrery:RevokeAccessKey", auth.AnyResource, k.revoke),
		route("POST /orrery/v1/tokens", "orrery:CreateAPIToken", auth.AnyResource, k.createToken),
		route("GET /orrery/v1/tokens", "orrery:ListAPITokens", auth.AnyResource, k.listTokens),
		route("DELETE /orrery/v1/tokens/{id}", "orrery:RevokeAPIToken", auth.AnyResource, k.revokeToken),
	}
}

// readPolicy decodes a request carrying a policy (a JSON object, or a JSON
// string holding one) and a description, and validates the policy.
//
// A policy naming a workspace that does not exist (or is being deleted)
// is refused with ResourceNotFoundException: a credential for a missing
// workspace is a typo, or waits for a workspace of that id to appear.
func (k *KeysAPI) readPolicy(r *http.Request) (doc []byte, description string, err error) {
	var req struct {
		Policy      json.RawMessage `json:"policy"`
		Description string          `json:"description"`
	}
	if err := decode(r, &req); err != nil {
		return nil, "", err
	}
	if len(req.Policy) == 0 {
		return nil, "", validation("policy is missing: give an IAM-style policy document")
	}
	doc = []byte(req.Policy)
	var s string
	if json.Unmarshal(doc, &s) == nil {
		doc = []byte(s)
	}
	p, err := policy.Parse(doc)
	if err != nil {
		return nil, "", validation("%v", err)
	}
	if err := k.workspacesExist(r.Context(), p); err != nil {
		return nil, "", err
	}
	// A caller hands out no more than it holds.
	if caller, ok := auth.FromContext(r.Context()); ok {
		if err := policy.WithinBoundary(p, caller.Policy); err != nil {
			return nil, "", failure.E(failure.Forbidden, "", err)
		}
	}
	if len(req.Description) > 256 {
		return nil, "", validation("description must be at most 256 characters")
	}
	return doc, req.Description, nil
}

func (k *KeysAPI) create(w http.ResponseWriter, r *http.Request) {
	doc, _, err := k.readPolicy(r)
	if err != nil {
		k.api.fail(w, err)
		return
	}
	key := catalog.AccessKey{ID: catalog.NewAccessKeyID(), Secret: catalog.NewSecret(), Policy: string(doc), CreatedAt: k.api.now()}
	auth.AuditFrom(r.Context()).SetResource("accesskey/" + key.ID)
	if err := k.api.cat.CreateAccessKey(r.Context(), k.sealer, key); err != nil {
		k.api.fail(w, err)
		return
	}
	reply(w, http.StatusCreated, map[string]any{"accessKeyId": key.ID, "secretAccessKey": key.Secret, "policy": json.RawMessage(doc)})
}

type credentialJSON struct {
	ID          string          `json:"id"`
	Description string          `json:"description,omitempty"`
	Policy      json.RawMessage `json:"policy"`
	CreatedAt   float64         `json:"createdAt"`
	Revoked     bool            `json:"revoked"`
}

func (k *KeysAPI) list(w http.ResponseWriter, r *http.Request) {
	keys, err := k.api.cat.AccessKeys(r.Context())
	if err != nil {
		k.api.fail(w, err)
		return
	}
	out := make([]credentialJSON, 0, len(keys))
	for _, key := range keys {
		out = append(out, credentialJSON{ID: key.ID, Policy: json.RawMessage(key.Policy), CreatedAt: seconds(key.CreatedAt), Revoked: key.Revoked})
	}
	reply(w, http.StatusOK, map[string]any{"accessKeys": out})
}

func (k *KeysAPI) revoke(w http.ResponseWriter, r *http.Request) {
	auth.AuditFrom(r.Context()).SetResource("accesskey/" + r.PathValue("id"))
	if err := k.api.cat.RevokeAccessKey(r.Context(), r.PathValue("id"), time.Now()); err != nil {
		k.api.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (k *KeysAPI) createToken(w http.ResponseWriter, r *http.Request) {
	doc, desc, err := k.readPolicy(r)
	if err != nil {
		k.api.fail(w, err)
		return
	}
	token, id, hash := auth.NewToken()
	auth.AuditFrom(r.Context()).SetResource("token/" + id)
	t := catalog.APIToken{ID: id, SecretHash: hash, Policy: string(doc), Description: desc, CreatedAt: k.api.now()}
	if err := k.api.cat.CreateAPIToken(r.Context(), t); err != nil {
		k.api.fail(w, err)
		return
	}
	reply(w, http.StatusCreated, map[string]any{"id": id, "token": token, "description": desc, "policy": json.RawMessage(doc)})
}

func (k *KeysAPI) listTokens(w http.ResponseWriter, r *http.Request) {
	toks, err := k.api.cat.APITokens(r.Context())
	if err != nil {
		k.api.fail(w, err)
		return
	}
	out := make([]credentialJSON, 0, len(toks))
	for _, t := range toks {
		out = append(out, credentialJSON{ID: t.ID, Description: t.Description, Policy: json.RawMessage(t.Policy), CreatedAt: seconds(t.CreatedAt), Revoked: t.Revoked})
	}
	reply(w, http.StatusOK, map[string]any{"tokens": out})
}

func (k *KeysAPI) revokeToken(w http.ResponseWriter, r *http.Request) {
	auth.AuditFrom(r.Context()).SetResource("token/" + r.PathValue("id"))
	if err := k.api.cat.RevokeAPIToken(r.Context(), r.PathValue("id"), time.Now()); err != nil {
		k.api.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// seconds is AWS's JSON timestamp: seconds since the epoch, fractional.
func seconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

// workspaceResource matches the ARN of a workspace, or of something in one,
// capturing the workspace id.
var workspaceResource = regexp.MustCompile(`^arn:aws:aps:[^:]*:[^:]*:(?:workspace|rulegroupsnamespace|anomalydetector)/([^/]+)`)

// workspacesExist checks that every workspace p's Allow statements name
// without a wildcard exists and is active.
func (k *KeysAPI) workspacesExist(ctx context.Context, p *policy.Policy) error {
	for _, st := range p.Statement {
		if st.Effect != policy.Allow {
			continue
		}
		for _, res := range st.Resource {
			m := workspaceResource.FindStringSubmatch(res)
			if m == nil || strings.ContainsAny(m[1], "*?") {
				continue
			}
			id, err := workspace.ParseID(m[1])
			if err != nil {
				return validation("policy Resource %s: %v", res, err)
			}
			ws, err := k.api.cat.GetWorkspace(ctx, id)
			if errors.Is(err, catalog.ErrNotFound) || (err == nil && ws.Status != catalog.StatusActive) {
				return failure.Errorf(failure.NotFound, "policy Resource %s: workspace %s does not exist", res, id)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
