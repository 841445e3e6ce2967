// Package deploy tests the reference deployment under deploy/ as written:
// the Kubernetes manifests decode strictly into the Kubernetes API types,
// the systemd units and the containers run against a real PostgreSQL and a
// real Cortex with only hosts, paths and ports substituted, and the Cortex
// configuration agrees with the test Cortex on what Orrery relies on.
package deploy
