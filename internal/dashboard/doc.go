// Package dashboard reads Grafana's dashboard JSON model and interpolates
// template variables into PromQL the way Grafana's Prometheus data source does.
package dashboard
