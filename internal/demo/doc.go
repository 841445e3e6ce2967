// Package demo is `orrery demo`: an Orrery server, a workspace, the mesh
// with traffic, the agent scraping its sidecars, the seed's latency alert
// and a console webhook, wired in one process.
package demo
