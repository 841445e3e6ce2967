// Package app wires Orrery's components into the processes the orrery binary
// runs, and owns their lifecycle: start, serve, and orderly shutdown.
package app
