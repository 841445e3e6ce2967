//go:build unix

package main

import "syscall"

// privateFiles makes every file and directory the process creates
// readable by its own user only (0600 and 0700), whatever creates it: the
// catalog, keys, TSDB blocks and WAL, Alertmanager snapshots, the agent's
// WAL. They hold tenants' data and secrets.
func privateFiles() { syscall.Umask(0o077) }
