package controlplane

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/policy"
)

// KeysAPI issues and revokes Orrery access keys (an Orrery extension: AMP
// leaves this to IAM). Routes live below /orrery/v1/accesskeys.
type KeysAPI struct {
	api    *API
	sealer *catalog.Sealer
}

// Keys returns the access-key API, sealing secrets with sealer.
func (a *API) Keys(sealer *catalog.Sealer) *KeysAPI { return &KeysAPI{api: a, sealer: sealer} }

// Register adds the routes to mux.
func (k *KeysAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /orrery/v1/accesskeys", k.create)
	mux.HandleFunc("DELETE /orrery/v1/accesskeys/{id}", k.revoke)
}

func (k *KeysAPI) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Policy json.RawMessage `json:"policy"`
	}
	if err := decode(r, &req); err != nil {
		k.api.fail(w, err)
		return
	}
	doc := []byte(req.Policy)
	var s string
	if json.Unmarshal(doc, &s) == nil { // The policy may also come as a JSON string.
		doc = []byte(s)
	}
	if _, err := policy.Parse(doc); err != nil {
		k.api.fail(w, validation("%v", err))
		return
	}
	key := catalog.AccessKey{ID: catalog.NewAccessKeyID(), Secret: catalog.NewSecret(), Policy: string(doc), CreatedAt: k.api.now()}
	if err := k.api.cat.CreateAccessKey(r.Context(), k.sealer, key); err != nil {
		k.api.fail(w, err)
		return
	}
	k.api.logger.Info("audit", "action", "orrery:CreateAccessKey", "resource", key.ID, "result", "ok")
	reply(w, http.StatusCreated, map[string]any{"accessKeyId": key.ID, "secretAccessKey": key.Secret, "policy": json.RawMessage(doc)})
}

func (k *KeysAPI) revoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := k.api.cat.RevokeAccessKey(r.Context(), id, time.Now()); err != nil {
		k.api.fail(w, err)
		return
	}
	k.api.logger.Info("audit", "action", "orrery:RevokeAccessKey", "resource", id, "result", "ok")
	w.WriteHeader(http.StatusNoContent)
}
