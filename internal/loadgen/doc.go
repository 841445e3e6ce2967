// Package loadgen sends Envoy-like series to a Prometheus remote write
// endpoint as fast as the receiver takes them, to benchmark receivers
// (Orrery, Prometheus) side by side with the same load.
package loadgen
