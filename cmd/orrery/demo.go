package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/orrery-dev/orrery/internal/demo"
)

const demoUsage = `Usage: orrery demo [flags]

One command, no external services: starts an Orrery server (SigV4, a generated admin key), creates a workspace, a
remote-write key for the agent and a query token, runs the service mesh (see 'orrery mesh --help') with traffic, runs
the agent scraping every sidecar (its configuration is written to DATA-DIR/demo/agent.yml), installs the seed's alert
(p99 upstream latency above --alert.threshold-ms for 1m) with an alert manager that delivers to a webhook, by email to a
local SMTP sink and to a local SNS-compatible endpoint (whose email subscription mails the sink), all printed here, and prints a
status line every few seconds. Logs of the server, agent and mesh go to DATA-DIR/demo/orrery.log.

Inject latency at start with --latency-ms 100, or at run time through the printed mesh control URL:

  curl -X POST http://CONTROL/faults -d '{"service":"payments","latency_ms":100}'
  curl -X DELETE http://CONTROL/faults

Flags:
`

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("orrery demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, demoUsage)
		fs.VisitAll(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "testing.") {
				return
			}
			fmt.Fprintf(stderr, "  --%s\n    \t%s", f.Name, f.Usage)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
				fmt.Fprintf(stderr, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(stderr)
		})
	}
	var cfg demo.Config
	var faults faultFlags
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for the demo's data (default: a new temporary directory)")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9090", "address of the Orrery server")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0: run until interrupted)")
	fs.IntVar(&cfg.RequestsPerSecond, "rps", 20, "requests per second sent to the mesh's frontend")
	fs.DurationVar(&cfg.StatusInterval, "status-interval", 5*time.Second, "how often the status line is printed")
	fs.IntVar(&cfg.MeshBasePort, "mesh.base-port", 0, "first of consecutive ports for the mesh's services, sidecars and control endpoint (0: free ports)")
	fs.StringVar(&cfg.WebhookListen, "webhook.listen", "127.0.0.1:0", "address of the console webhook the alert manager notifies (port 0: a free one)")
	fs.StringVar(&cfg.AgentListen, "agent.listen", "127.0.0.1:0", "address of the agent's /metrics, /-/ready and /api/v1/targets (port 0: a free one)")
	fs.Float64Var(&cfg.AlertThresholdMS, "alert.threshold-ms", demo.DefaultAlertThresholdMS, "the latency alert's p99 threshold in milliseconds")
	faults.register(fs)
	level := logLevelFlag(fs, slog.LevelInfo, "level of the log file: debug, info, warn, error")
	logStderr := fs.Bool("log.stderr", false, "log to stderr instead of DATA-DIR/demo/orrery.log")
	// Testing flags, hidden from --help: shorter timings for tests.
	fs.DurationVar(&cfg.RuleFor, "testing.rule-for", time.Minute, "the latency alert's for duration")
	fs.DurationVar(&cfg.RuleInterval, "testing.rule-interval", 15*time.Second, "the latency alert's evaluation interval")
	fs.DurationVar(&cfg.ScrapeInterval, "testing.scrape-interval", 5*time.Second, "the agent's scrape interval")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if cfg.DataDir == "" {
		dir, err := os.MkdirTemp("", "orrery-demo-")
		if err != nil {
			fmt.Fprintf(stderr, "orrery demo: create data directory: %v\n", err)
			return 1
		}
		cfg.DataDir = dir
	}
	cfg.Faults = faults.faults()
	var logOut io.Writer = stderr
	if !*logStderr {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, "demo"), 0o700); err != nil {
			fmt.Fprintf(stderr, "orrery demo: %v\n", err)
			return 1
		}
		f, err := os.OpenFile(filepath.Join(cfg.DataDir, "demo", "orrery.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "orrery demo: open log file: %v\n", err)
			return 1
		}
		defer func() { _ = f.Close() }()
		logOut = f
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: *level}))
	// The Envoy dashboard and the UI login.
	cfg.Dashboards = demo.UIDashboards{DataDir: cfg.DataDir}
	fmt.Fprintf(stdout, "orrery demo: data in %s\n", cfg.DataDir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo.Run(ctx, cfg, stdout, logger); err != nil {
		msg := err.Error()
		if errors.Is(err, syscall.EADDRINUSE) {
			msg += " (another process uses the port: pick another with --listen, --mesh.base-port, --webhook.listen or --agent.listen)"
		}
		fmt.Fprintf(stderr, "orrery demo: %s\n", msg)
		return 1
	}
	return 0
}
