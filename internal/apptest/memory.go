package apptest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Memory is a process's resident memory, read from /proc/PID/status.
type Memory struct {
	RSS  int64 // VmRSS: resident now, in bytes.
	Peak int64 // VmHWM: the highest resident size since the process started.
}

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Memory reads the process's resident memory from /proc (Linux only).
func (p *Process) Memory(t testing.TB) Memory {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.PID()))
	if err != nil {
		t.Fatalf("read memory of %s: %v", p.name, err)
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("parse %s of %s: %q: %v", k, p.name, v, err)
		}
		if k == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.Peak = kb << 10
		}
	}
	if err := sc.Err(); err != nil || m.RSS == 0 {
		t.Fatalf("read memory of %s: no VmRSS in /proc/%d/status (%v)", p.name, p.PID(), err)
	}
	return m
}

// Memory reads the server's resident memory from /proc.
func (o *Orrery) Memory() Memory { return o.proc.Memory(o.t) }

// ResetPeak resets the process's peak resident size (VmHWM) to its current
// one, so that a later Memory().Peak is the peak since now.
func (p *Process) ResetPeak(t testing.TB) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.PID()), []byte("5"), 0); err != nil {
		t.Fatalf("reset the peak memory of %s: %v", p.name, err)
	}
}

// ResetPeak resets the server's peak resident size to its current one.
func (o *Orrery) ResetPeak() { o.proc.ResetPeak(o.t) }
