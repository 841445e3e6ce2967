// Package alerting runs one Alertmanager per workspace that has an alert
// manager definition, assembled from the Alertmanager's own packages, and
// serves each one's v2 API below /workspaces/{id}/alertmanager.
package alerting
