// Package catalog keeps the control-plane state of Orrery — workspaces and,
// later, their rule groups namespaces, alert manager definitions and access
// keys — in a SQL database: an embedded SQLite file by default, written in
// SQL that PostgreSQL runs unchanged.
package catalog
