package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"

	"github.com/google/uuid"

	"github.com/orrery-dev/orrery/internal/anomaly"
	"github.com/orrery-dev/orrery/internal/auth"
	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// AMP's patterns for a detector's alias and ID.
var (
	detectorAliasRE = regexp.MustCompile(`^[0-9A-Za-z][-.0-9A-Z_a-z]{0,63}$`)
	detectorIDRE    = regexp.MustCompile(`^ad-[0-9A-Za-z][-.0-9A-Z_a-z]{0,60}$`)
	clientTokenRE   = regexp.MustCompile(`^[!-~]{1,64}$`)
)

func (a *API) anomalyRoutes() []auth.Route {
	const p = "/workspaces/{id}/anomalydetectors"
	return []auth.Route{
		route("POST "+p, "aps:CreateAnomalyDetector", auth.Workspace, a.createDetector),
		route("GET "+p, "aps:ListAnomalyDetectors", auth.Workspace, a.listDetectors),
		route("GET "+p+"/{detector}", "aps:DescribeAnomalyDetector", auth.AnomalyDetector, a.describeDetector),
		route("PUT "+p+"/{detector}", "aps:PutAnomalyDetector", auth.AnomalyDetector, a.putDetector),
		route("DELETE "+p+"/{detector}", "aps:DeleteAnomalyDetector", auth.AnomalyDetector, a.deleteDetector),
	}
}

func (a *API) detectorARN(id workspace.ID, detector string) string {
	return fmt.Sprintf("arn:aws:aps:%s:%s:anomalydetector/%s/%s", a.cfg.Region, a.cfg.AccountID, id, detector)
}

// detectorRequest is the body of CreateAnomalyDetector and
// PutAnomalyDetector (which has no alias nor tags).
type detectorRequest struct {
	anomaly.Spec
	Alias       string            `json:"alias"`
	ClientToken string            `json:"clientToken"`
	Tags        map[string]string `json:"tags"`
}

// readDetector decodes and validates a detector request; the spec comes
// back canonical (defaults filled in) as stored JSON.
func readDetector(r *http.Request, create bool) (detectorRequest, []byte, error) {
	var req detectorRequest
	if err := decodeStrict(r, &req); err != nil {
		return req, nil, err
	}
	if create && !detectorAliasRE.MatchString(req.Alias) {
		return req, nil, validation("alias %q must be 1 to 64 characters: letters, digits, '.', '-', '_', starting with a letter or digit", req.Alias)
	}
	if !create && (req.Alias != "" || req.Tags != nil) {
		return req, nil, validation("PutAnomalyDetector takes no alias nor tags")
	}
	if req.ClientToken != "" && !clientTokenRE.MatchString(req.ClientToken) {
		return req, nil, validation("clientToken must be 1 to 64 printable ASCII characters")
	}
	if err := checkTags(req.Tags); err != nil {
		return req, nil, err
	}
	if err := req.Spec.Validate(); err != nil {
		return req, nil, validation("%v", err)
	}
	spec, err := json.Marshal(req.Spec)
	if err != nil {
		return req, nil, err
	}
	return req, spec, nil
}

func checkTags(tags map[string]string) error {
	if len(tags) > 50 {
		return validation("a resource has at most 50 tags")
	}
	for k, v := range tags {
		if k == "" || len(k) > 128 || len(v) > 256 {
			return validation("tag %q: keys are 1 to 128 characters, values at most 256", k)
		}
	}
	return nil
}

func (a *API) createDetector(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	req, spec, err := readDetector(r, true)
	if err != nil {
		a.fail(w, err)
		return
	}
	d, _, err := a.cat.CreateAnomalyDetector(r.Context(), catalog.AnomalyDetector{Workspace: id, ID: "ad-" + uuid.NewString(),
		Alias: req.Alias, Spec: spec, Status: catalog.DetectorCreating, Tags: req.Tags, ClientToken: req.ClientToken,
		CreatedAt: a.now()}, a.limits.Limits(id).MaxAnomalyDetectors)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.detectorsChanged(id)
	a.replyDetector(w, d)
}

// putDetector replaces a detector's definition: its status becomes
// UPDATING and the runner trains it again from history, as AMP's put
// retrains whatever changed.
func (a *API) putDetector(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	detector := r.PathValue("detector")
	if !detectorIDRE.MatchString(detector) {
		a.fail(w, validation("anomalyDetectorId %q is not a detector id (ad-…)", detector))
		return
	}
	_, spec, err := readDetector(r, false)
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.cat.PutAnomalyDetector(r.Context(), id, detector, spec, catalog.DetectorUpdating, a.now()); err != nil {
		a.fail(w, err)
		return
	}
	d, err := a.cat.AnomalyDetector(r.Context(), id, detector)
	if err != nil {
		a.fail(w, err)
		return
	}
	a.detectorsChanged(id)
	a.replyDetector(w, d)
}

// replyDetector answers a create or put: 202 with the detector's id, ARN,
// status and tags.
func (a *API) replyDetector(w http.ResponseWriter, d catalog.AnomalyDetector) {
	reply(w, http.StatusAccepted, map[string]any{"anomalyDetectorId": d.ID, "arn": a.detectorARN(d.Workspace, d.ID),
		"status": detectorStatus(d), "tags": d.Tags})
}

type detectorStatusJSON struct {
	StatusCode   string `json:"statusCode"`
	StatusReason string `json:"statusReason,omitempty"`
}

func detectorStatus(d catalog.AnomalyDetector) detectorStatusJSON {
	return detectorStatusJSON{StatusCode: d.Status, StatusReason: d.StatusReason}
}

// detectorSummary is AMP's AnomalyDetectorSummary, as List answers it.
func (a *API) detectorSummary(d catalog.AnomalyDetector) map[string]any {
	return map[string]any{"alias": d.Alias, "anomalyDetectorId": d.ID, "arn": a.detectorARN(d.Workspace, d.ID),
		"createdAt": seconds(d.CreatedAt), "modifiedAt": seconds(d.ModifiedAt), "status": detectorStatus(d), "tags": d.Tags}
}

// detectorDescription is AMP's AnomalyDetectorDescription: the summary and
// the definition.
func (a *API) detectorDescription(d catalog.AnomalyDetector) (map[string]any, error) {
	out := a.detectorSummary(d)
	var spec map[string]json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(d.Spec)).Decode(&spec); err != nil {
		return nil, fmt.Errorf("spec of anomaly detector %s: %w", d.ID, err)
	}
	for k, v := range spec {
		out[k] = v
	}
	return out, nil
}

func (a *API) describeDetector(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	d, err := a.cat.AnomalyDetector(r.Context(), id, r.PathValue("detector"))
	if err != nil {
		a.fail(w, err)
		return
	}
	j, err := a.detectorDescription(d)
	if err != nil {
		a.fail(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"anomalyDetector": j})
}

func (a *API) listDetectors(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	limit, after, err := pageQuery(r)
	if err == nil && after != "" && !detectorIDRE.MatchString(after) {
		err = validation("nextToken is not one this server issued")
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	page, err := a.cat.AnomalyDetectors(r.Context(), id, r.URL.Query().Get("alias"), after, limit+1)
	if err != nil {
		a.fail(w, err)
		return
	}
	replyPage(w, page, limit, "anomalyDetectors", func(d catalog.AnomalyDetector) string { return d.ID },
		func(d catalog.AnomalyDetector) any { return a.detectorSummary(d) })
}

// deleteDetector removes the detector's record at once and answers 202;
// the runner then stops it and removes its model. The series it wrote
// stay, as a deleted recording rule's do.
func (a *API) deleteDetector(w http.ResponseWriter, r *http.Request) {
	id, err := a.activeWorkspace(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	if err := a.cat.RemoveAnomalyDetector(r.Context(), id, r.PathValue("detector")); err != nil {
		a.fail(w, err)
		return
	}
	a.detectorsChanged(id)
	w.WriteHeader(http.StatusAccepted)
}

// detectorsChanged tells the runner, if there is one, to read the
// workspace's detectors again.
func (a *API) detectorsChanged(id workspace.ID) {
	if a.cfg.DetectorsChanged != nil {
		a.cfg.DetectorsChanged(id)
	}
}
