// Package controlplane serves the workspace control-plane API, wire
// compatible with Amazon Managed Service for Prometheus (REST-JSON, API
// version 2020-08-01), so the AWS SDK's amp client and awscli work against
// Orrery unchanged.
package controlplane
