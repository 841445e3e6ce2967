package main

import (
	"context"
	"encoding/json"
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
	fs.StringVar(&cfg.Tenant, "tenant", "", "send this X-Scope-OrgID header (to write to Cortex's /api/v1/push directly)")
	fs.IntVar(&cfg.Series, "series", 100_000, "active series")
	fs.IntVar(&cfg.Senders, "senders", 4, "concurrent senders")
	fs.IntVar(&cfg.SamplesPerRequest, "samples-per-request", 2000, "samples per remote write request")
	fs.IntVar(&cfg.Rounds, "rounds", 10, "how many times every series gets a sample")
	fs.IntVar(&cfg.Protocol, "protocol", 1, "remote write protocol version: 1 or 2")
	fs.BoolVar(&cfg.OTLP, "otlp", false, "send OTLP/HTTP metrics exports (protobuf, gzip; gauges named by __name__) to --url instead of remote write")
	fs.BoolVar(&cfg.OTLPResources, "otlp.resources", false, "with --otlp, put each pod's points under a resource of its own (service.name, service.instance.id, k8s.namespace.name, k8s.pod.name), as SDKs export")
	fs.Float64Var(&cfg.Rate, "rate", 0, "pace all senders together to this many samples/s (0: as fast as the receiver answers), to measure latency below saturation")
	fs.DurationVar(&cfg.Interval, "interval", 15*time.Second, "simulated scrape interval between rounds")
	backfill := fs.Duration("start-ago", 0, "timestamp of the first round, before now (default: rounds×interval ago)")
	sign := fs.Bool("sigv4", false, "sign requests with AWS Signature Version 4 (service aps) with the key in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	region := fs.String("region", "us-east-1", "the region requests are signed for (with --sigv4)")
	serve := fs.Int("serve-targets", 0, "instead of sending, serve this many scrape targets sharing --series, and write their file_sd list to --targets-file")
	targetsFile := fs.String("targets-file", "targets.json", "file_sd_configs file listing the served targets (with --serve-targets)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *serve > 0 {
		return serveTargets(*serve, cfg.Series / *serve, *targetsFile, stderr)
	}
	if cfg.URL == "" {
		fmt.Fprintln(stderr, "orrery loadgen: --url is required")
		return 2
	}
	if *sign {
		cfg.SigV4 = &loadgen.SigV4{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), Region: *region}
		if cfg.SigV4.AccessKeyID == "" || cfg.SigV4.SecretAccessKey == "" {
			fmt.Fprintln(stderr, "orrery loadgen: --sigv4 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
			return 2
		}
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

// serveTargets serves scrape targets until interrupted.
func serveTargets(n, perTarget int, file string, stderr io.Writer) int {
	t, err := loadgen.ServeTargets(n, perTarget)
	if err != nil {
		fmt.Fprintf(stderr, "orrery loadgen: %v\n", err)
		return 1
	}
	defer t.Close()
	b, _ := json.Marshal([]map[string]any{{"targets": t.Addrs, "labels": map[string]string{"mesh": "bench"}}})
	if err := os.WriteFile(file, b, 0o644); err != nil {
		fmt.Fprintf(stderr, "orrery loadgen: write %s: %v\n", file, err)
		return 1
	}
	fmt.Fprintf(stderr, "loadgen: serving %d targets × %d series, listed in %s\n", n, perTarget, file)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return 0
}
