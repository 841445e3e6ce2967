package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/orrery-dev/orrery/internal/loadgen"
)

func runLoadgen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("orrery loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	fs.StringVar(&cfg.URL, "url", "", "remote write URL, e.g. http://127.0.0.1:9090/workspaces/ws-.../api/v1/remote_write")
	fs.IntVar(&cfg.Series, "series", 100_000, "active series")
	fs.IntVar(&cfg.Senders, "senders", 4, "concurrent senders")
	fs.IntVar(&cfg.SamplesPerRequest, "samples-per-request", 2000, "samples per remote write request")
	fs.IntVar(&cfg.Rounds, "rounds", 10, "how many times every series gets a sample")
	fs.DurationVar(&cfg.Interval, "interval", 15*time.Second, "simulated scrape interval between rounds")
	backfill := fs.Duration("start-ago", 0, "timestamp of the first round, before now (default: rounds×interval ago)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.URL == "" {
		fmt.Fprintln(stderr, "orrery loadgen: --url is required")
		return 2
	}
	ago := *backfill
	if ago == 0 {
		ago = time.Duration(cfg.Rounds) * cfg.Interval
	}
	cfg.Start = time.Now().Add(-ago)
	total := int64(cfg.Series) * int64(cfg.Rounds)
	cfg.Progress = func(sent int64, elapsed time.Duration) {
		fmt.Fprintf(stderr, "\rloadgen: %5.1f%% %d/%d samples, %.0f samples/s ", 100*float64(sent)/float64(total), sent, total, float64(sent)/elapsed.Seconds())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := loadgen.Run(ctx, cfg)
	fmt.Fprintln(stderr)
	fmt.Fprintf(stdout, "samples=%d requests=%d errors=%d elapsed_s=%.3f samples_per_s=%.0f p50_ms=%.2f p99_ms=%.2f\n",
		res.Samples, res.Requests, res.Errors, res.Elapsed.Seconds(), res.SamplesPerSecond(),
		float64(res.LatencyP50.Microseconds())/1000, float64(res.LatencyP99.Microseconds())/1000)
	if err != nil {
		fmt.Fprintf(stderr, "orrery loadgen: %v\n", err)
		return 1
	}
	return 0
}
