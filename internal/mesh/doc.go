// Package mesh is a small, real HTTP service mesh on loopback: services that
// call each other over HTTP, each behind a sidecar proxy that exposes
// Envoy's /stats/prometheus exposition from the traffic it proxies, with a
// traffic generator and run-time fault injection.
package mesh
