// Package catalog keeps the control-plane state of Orrery — workspaces, their
// rule groups namespaces, alert manager definitions and dashboards, access
// keys and tokens, and the web UI's users and sessions — in a SQL database:
// an embedded SQLite file by default, written in SQL that PostgreSQL runs
// unchanged.
package catalog
