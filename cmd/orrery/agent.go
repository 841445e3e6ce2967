package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/orrery-dev/orrery/internal/agent"
)

func runAgent(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("orrery agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg agent.Config
	fs.StringVar(&cfg.ConfigFile, "config.file", "agent.yml", "Prometheus configuration file: global, scrape_configs, remote_write")
	fs.StringVar(&cfg.DataDir, "storage.path", "data-agent", "directory of the write-ahead log")
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9095", "address of the agent's /metrics, /-/ready, /-/reload and /api/v1/targets")
	fs.StringVar(&cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "keep only Kubernetes targets on this node (DaemonSets; default $NODE_NAME)")
	fs.IntVar(&cfg.Shard, "shard", 0, "this agent's shard, 0 to --shards-1 (static fleets)")
	fs.IntVar(&cfg.Shards, "shards", 1, "number of agents sharing the targets by hashmod of their address")
	fs.DurationVar(&cfg.MinWALTime, "storage.agent.min-wal-time", 5*time.Minute, "samples stay in the WAL at least this long")
	fs.DurationVar(&cfg.MaxWALTime, "storage.agent.max-wal-time", 4*time.Hour, "samples not yet sent are dropped from the WAL after this long (bounds the WAL while a receiver is down)")
	fs.DurationVar(&cfg.TruncateFrequency, "storage.agent.wal-truncate-frequency", 2*time.Hour, "how often the WAL is truncated")
	fs.DurationVar(&cfg.FlushDeadline, "flush-deadline", time.Minute, "how long pending samples are sent at shutdown")
	fs.StringVar(&cfg.OTLPListen, "otlp.listen", "", "address of an OTLP/HTTP metrics receiver (POST /v1/metrics), written to the WAL and remote-written like scrapes; translated as the configuration's otlp block says (empty: none)")
	fs.BoolVar(&cfg.OTLPConvertDelta, "otlp.convert-delta", false, "convert OTLP delta temporality to cumulative (without it, deltas are refused)")
	level := logLevelFlag(fs, slog.LevelInfo, "log `level`: debug, info, warn, error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: *level}))
	a, err := agent.New(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "orrery agent: %v\n", err)
		return 2
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
				_ = a.Reload() // Logged by Reload.
			}
		}
	}()
	if err := a.Run(ctx); err != nil {
		logger.Error("agent stopped", "err", err)
		return 1
	}
	return 0
}
