// Package failure is Orrery's error vocabulary: a small set of kinds that
// say what went wrong in terms a client can act on, each mapped to an HTTP
// status once per surface (AWS JSON, Prometheus JSON, remote-write text).
package failure
