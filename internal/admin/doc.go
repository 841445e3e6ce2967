// Package admin is the command-line client for a running Orrery server:
// the workspaces, keys and tokens verbs of the orrery binary. It talks to
// the server's HTTP API (the AMP API through the AWS SDK, Orrery's own
// /orrery/v1 API), never to its files.
package admin
