// Command orrery is a self-hosted, Prometheus-compatible metrics service:
// multi-tenant workspaces with remote write ingestion and the Prometheus
// query API. Run `orrery help` for its subcommands.
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
	"syscall"

	"github.com/prometheus/common/version"

	"github.com/orrery-dev/orrery/internal/admin"
	"github.com/orrery-dev/orrery/internal/app"
)

const usage = `orrery — a self-hosted, Prometheus-compatible metrics service.

Usage:
  orrery server [flags]   run the server (remote write + Prometheus query API per workspace)
  orrery agent [flags]    scrape targets and remote-write them through a WAL (Prometheus config format)
  orrery loadgen [flags]  send Envoy-like remote write load to a receiver (benchmarks)
  orrery demo [flags]     the whole walkthrough in one command: server, workspace, mesh, agent, latency alert
  orrery mesh [flags]     a local service mesh whose sidecars expose Envoy's /stats/prometheus, with fault injection
  orrery migrate-to-cortex [flags]  write a workspace of the embedded engine as Cortex blocks (the server stopped)
  orrery workspaces ...   create, list, describe, delete workspaces
  orrery keys ...         issue, list, revoke access keys (SigV4) with a policy
  orrery tokens ...       issue, list, revoke bearer tokens with a policy
  orrery version          print the version
  orrery help             show this help

Run 'orrery server --help' for the server's flags.

` + admin.Usage

func main() {
	// The embedded Prometheus and Alertmanager packages report this build's
	// version (the Alertmanager status API, which amtool checks).
	version.Version, version.Revision, version.Branch = app.Version, "orrery", "main"
	privateFiles()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "server":
		return runServer(args[1:], stderr)
	case "loadgen":
		return runLoadgen(args[1:], stdout, stderr)
	case "agent":
		return runAgent(args[1:], stderr)
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "mesh":
		return runMesh(args[1:], stdout, stderr)
	case "migrate-to-cortex":
		return runMigrate(args[1:], stdout, stderr)
	case "workspaces", "keys", "tokens", "users":
		return admin.Run(context.Background(), args, os.Getenv, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "orrery %s (Prometheus engine %s)\n", app.Version, app.EngineVersion)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "orrery: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func runServer(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("orrery server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := app.DefaultServerConfig()
	cfg.RegisterFlags(fs)
	printOverrides := fs.Bool("cortex.print-overrides", false, "with --engine=cortex: print Cortex's runtime-config overrides for every workspace (its limits, as Cortex names them) and exit, instead of serving")
	cfg.AdminKeyID, cfg.AdminSecret = os.Getenv("ORRERY_ADMIN_ACCESS_KEY_ID"), os.Getenv("ORRERY_ADMIN_SECRET_ACCESS_KEY")
	cfg.UIAdminPassword = os.Getenv("ORRERY_UI_ADMIN_PASSWORD")
	level := logLevelFlag(fs, slog.LevelInfo, "log `level`: debug, info, warn, error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: *level}))
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "orrery server: %v\n", err)
		return 2
	}
	srv, err := app.NewServer(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "orrery server: %v\n", err)
		return 1
	}
	if *printOverrides {
		b, err := srv.CortexRuntimeConfig(context.Background())
		if err != nil {
			fmt.Fprintf(stderr, "orrery server: %v\n", err)
			return 1
		}
		_, _ = os.Stdout.Write(b)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := srv.ReloadLimits(); err != nil {
					logger.Warn("reload limits file on SIGHUP; the previous limits stay in force", "err", err)
				}
			}
		}
	}()
	if err := srv.Run(ctx); err != nil {
		msg := err.Error()
		if errors.Is(err, syscall.EADDRINUSE) {
			msg += " (another process uses the port: pick another with --listen)"
		}
		fmt.Fprintf(stderr, "orrery server: %s\n", msg)
		return 1
	}
	return 0
}
