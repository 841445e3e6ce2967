package controlplane

import (
	"encoding/json"
	"net/http"

	"github.com/orrery-dev/orrery/internal/auth"
)

// NotServedCode is the AWS error type of the AMP operations Orrery does not
// serve yet, answered 501 so that a tool sees at once that the whole family
// is missing, rather than a 404 that reads as a missing resource.
const NotServedCode = "NotImplementedException"

// unservedRoutes are the AMP operation families Orrery does not serve yet:
// anomaly detectors (their own issue). They are in the route table,
// authorized like any operation, so that they answer with a deliberate
// error naming the family.
func (a *API) unservedRoutes() []auth.Route {
	anomaly := unserved("anomaly detectors")
	return []auth.Route{
		route("POST /workspaces/{id}/anomalydetectors", "aps:CreateAnomalyDetector", auth.Workspace, anomaly),
		route("GET /workspaces/{id}/anomalydetectors", "aps:ListAnomalyDetectors", auth.Workspace, anomaly),
		route("GET /workspaces/{id}/anomalydetectors/{anomalyDetectorId}", "aps:DescribeAnomalyDetector", auth.AnomalyDetector, anomaly),
		route("PUT /workspaces/{id}/anomalydetectors/{anomalyDetectorId}", "aps:PutAnomalyDetector", auth.AnomalyDetector, anomaly),
		route("DELETE /workspaces/{id}/anomalydetectors/{anomalyDetectorId}", "aps:DeleteAnomalyDetector", auth.AnomalyDetector, anomaly),
	}
}

// unserved answers 501 NotImplementedException naming the family.
func unserved(family string) http.HandlerFunc {
	msg := "Orrery does not serve AMP's " + family + " yet; see \"AMP operations\" in Orrery's README"
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-ErrorType", NotServedCode)
		w.WriteHeader(http.StatusNotImplemented)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
	}
}
