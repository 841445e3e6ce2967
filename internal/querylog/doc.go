// Package querylog writes the query logs of workspaces that ask for them
// (AMP's query logging configuration): one JSON line per query, to a
// bounded, rotated file per workspace and to the server's log.
package querylog
