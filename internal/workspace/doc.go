// Package workspace names Orrery's unit of tenancy: a workspace ID, its
// per-workspace limits, and the request context that carries the ID from the
// authentication middleware to every component that serves the request.
package workspace
