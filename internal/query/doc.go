// Package query serves the Prometheus HTTP API (/api/v1/...) for one
// workspace at a time, built from Prometheus' own web/api/v1 package so that
// every answer has exactly Prometheus' JSON, status codes and semantics.
package query
