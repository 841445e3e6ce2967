package ingest

import (
	"testing"

	"github.com/prometheus/common/model"
)

// TestIsLegacyNameAgreesWithPrometheus compares the fast path's name check
// with Prometheus' legacy validation on every string of one and two bytes.
func TestIsLegacyNameAgreesWithPrometheus(t *testing.T) {
	for a := range 256 {
		for _, b := range [][]byte{{byte(a)}, {'a', byte(a)}, {byte(a), '0'}} {
			if got, want := isLegacyName(b, false), model.LegacyValidation.IsValidLabelName(string(b)); got != want {
				t.Errorf("label name %q: got %v, Prometheus says %v", b, got, want)
			}
			if got, want := isLegacyName(b, true), model.LegacyValidation.IsValidMetricName(string(b)); got != want {
				t.Errorf("metric name %q: got %v, Prometheus says %v", b, got, want)
			}
		}
	}
}
