package app

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// Request body limits. Every API reads at most this much of a body; a
// larger one is refused with 413 before it is read whole. Remote write's
// limit is the workspace's max_request_bytes.
const (
	// controlPlaneMaxBody bounds the control plane's and the web UI's
	// bodies: rule groups namespaces, alert manager definitions,
	// dashboards, policies, silences made in the UI.
	controlPlaneMaxBody = 8 << 20
	// queryMaxBody bounds the query API's bodies (POSTed forms).
	queryMaxBody = 2 << 20
	// alertmanagerMaxBody bounds the Alertmanager API's bodies (alerts,
	// silences).
	alertmanagerMaxBody = 4 << 20
)

// maxBody returns the body limit of a data-plane request to workspace id.
func (s *Server) maxBody(r *http.Request, id workspace.ID) int64 {
	switch {
	case strings.HasSuffix(r.URL.Path, "/api/v1/remote_write"), strings.HasSuffix(r.URL.Path, "/api/v1/otlp/v1/metrics"):
		// OTLP exports are bounded as remote write requests are.
		return int64(s.overrides.Limits(id).MaxRequestBytes)
	case strings.Contains(r.URL.Path, "/alertmanager/api/"):
		return alertmanagerMaxBody
	default:
		return queryMaxBody
	}
}

// limitBody bounds r's body to limit bytes: a body announced larger is
// refused at once with 413 (and false), one that turns out larger fails to
// read with *http.MaxBytesError.
func limitBody(w http.ResponseWriter, r *http.Request, limit int64) bool {
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, limit), http.StatusRequestEntityTooLarge)
		return false
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	return true
}

// bodyLimited bounds the bodies of every request to next to limit bytes.
func bodyLimited(next http.Handler, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limitBody(w, r, limit) {
			next.ServeHTTP(w, r)
		}
	})
}
