//go:build tools

// Package victoriametrics pins VictoriaMetrics single-node, the peer the
// query benchmark (scripts/bench-query.sh) runs beside Orrery. It is built
// from its Go module as the reference Prometheus is (test/reference).
package victoriametrics

import _ "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics"
