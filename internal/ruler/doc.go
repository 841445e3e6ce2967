// Package ruler evaluates each workspace's recording and alerting rules with
// Prometheus' own rule manager, one manager per workspace.
package ruler
