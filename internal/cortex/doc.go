// Package cortex is the engine that runs workspaces on a Cortex cluster
// over its HTTP APIs, each workspace a Cortex tenant (X-Scope-OrgID):
// remote write is forwarded to the distributor, the query and Alertmanager
// APIs are proxied, rule groups namespaces and alert manager definitions
// are pushed to the ruler's and Alertmanager's configuration APIs.
package cortex
