package dashboard

import _ "embed"

//go:embed envoy.json
var envoyJSON []byte

// EnvoyDashboard returns Orrery's own Envoy dashboard, a Grafana JSON model
// covering the panels of the public "Envoy Global" dashboard (11022). The
// caller owns the returned slice.
func EnvoyDashboard() []byte {
	return append([]byte(nil), envoyJSON...)
}
