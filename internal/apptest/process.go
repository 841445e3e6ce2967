package apptest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreeAddr returns a loopback address with a port nobody listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	return addr
}

// Process is a started program whose output is captured for test logs.
type Process struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs a program and stops it (SIGKILL) when the test ends if it is
// still running. Its output is logged if the test fails.
func Start(t testing.TB, name, bin string, args ...string) *Process {
	t.Helper()
	return startCmd(t, name, exec.Command(bin, args...))
}

// StartCommand starts a prepared command (its environment, its working
// directory) as Start does.
func StartCommand(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	return startCmd(t, name, cmd)
}

// startCmd starts a prepared command as Start does.
func startCmd(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	bin := cmd.Path
	p := &Process{t: t, name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = cmd
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s (%s): %v", name, bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("output of %s:\n%s", name, tail(p.out.String(), 8000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output returns what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Kill sends SIGKILL and waits for the process to end.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits for an orderly exit. It fails the test if
// the process does not exit in time or exits with an error.
func (p *Process) Stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, p.err, tail(p.out.String(), 4000))
		}
	case <-time.After(60 * time.Second):
		p.Kill()
		p.t.Fatalf("%s did not exit within 60s of SIGTERM", p.name)
	}
}

// WaitHTTP polls url until it answers 200 or the timeout passes.
func WaitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %s (last error: %v)", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Eventually calls f until it returns nil or the timeout passes, then
// fails the test with f's last error.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// repoRoot finds the module root from this source file's location.
// RepoRoot returns the repository's root directory.
func RepoRoot() string { return repoRoot() }

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// OrreryBinary builds cmd/orrery once per test binary and returns its path.
// ORRERY_BINARY, if set, names a prebuilt binary to use instead.
func OrreryBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ORRERY_BINARY"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "orrery-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "orrery")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", buildPath, "./cmd/orrery")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/orrery: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// LookPath returns the path of a third-party program, failing the test with
// the package to install if it is missing.
func LookPath(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: apt-get install %s (the README's test command does this)", name, pkg)
	}
	return p
}

// ReferencePrometheus returns the Prometheus 3 server built from the same
// module version Orrery embeds (see test/reference). PROMETHEUS3_BINARY
// names a prebuilt one; otherwise it is built once into the temporary
// directory.
func ReferencePrometheus(t testing.TB) string {
	t.Helper()
	return referenceTool(t, "github.com/prometheus/prometheus/cmd/prometheus", "PROMETHEUS3_BINARY")
}

// ReferencePromtool returns promtool of the same Prometheus 3 version
// (PROMTOOL3_BINARY, or built like ReferencePrometheus). Unlike Debian's
// 2.42, it takes --http.config.file for its queries.
func ReferencePromtool(t testing.TB) string {
	t.Helper()
	return referenceTool(t, "github.com/prometheus/prometheus/cmd/promtool", "PROMTOOL3_BINARY")
}

// ReferenceAmtool returns amtool built from the Alertmanager module version
// Orrery embeds (AMTOOL3_BINARY, or built like ReferencePrometheus). Unlike
// Debian's 0.25, it parses the configuration the embedded Alertmanager
// reports, which "amtool config routes" needs.
func ReferenceAmtool(t testing.TB) string {
	t.Helper()
	return referenceTool(t, "github.com/prometheus/alertmanager/cmd/amtool", "AMTOOL3_BINARY")
}

// referenceTool returns the program env names, or builds the package pkg
// once in test/reference.
func referenceTool(t testing.TB, pkg, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	refMu.Lock()
	defer refMu.Unlock()
	name := path.Base(pkg)
	if p, ok := refPaths[name]; ok {
		return p
	}
	out := filepath.Join(os.TempDir(), "orrery-reference-"+name)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Join(repoRoot(), "test", "reference")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build reference %s in test/reference: %v\n%s", name, err, b)
	}
	refPaths[name] = out
	return out
}

var (
	refMu    sync.Mutex
	refPaths = map[string]string{}
)

// Args joins flags for log messages.
func Args(args []string) string { return strings.Join(args, " ") }
