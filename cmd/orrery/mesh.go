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

	"github.com/orrery-dev/orrery/internal/mesh"
)

// faultFlags are the fault injection flags of `orrery mesh` and `orrery
// demo`.
type faultFlags struct {
	latencyMS                 int
	latencyService            string
	errorRate                 float64
	errorService, downService string
}

func (f *faultFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.latencyMS, "latency-ms", 0, "milliseconds of latency added to --latency-service at start")
	fs.StringVar(&f.latencyService, "latency-service", "payments", "service that --latency-ms slows down")
	fs.Float64Var(&f.errorRate, "error-rate", 0, "fraction (0 to 1) of --error-service's requests answered with 500")
	fs.StringVar(&f.errorService, "error-service", "inventory", "service that --error-rate applies to")
	fs.StringVar(&f.downService, "down-service", "", "service whose port is closed at start")
}

// faults merges the flags into one fault per service.
func (f *faultFlags) faults() []mesh.Fault {
	by := map[string]*mesh.Fault{}
	var order []string
	get := func(s string) *mesh.Fault {
		if by[s] == nil {
			by[s] = &mesh.Fault{Service: s}
			order = append(order, s)
		}
		return by[s]
	}
	if f.latencyMS != 0 {
		get(f.latencyService).LatencyMS = f.latencyMS
	}
	if f.errorRate != 0 {
		get(f.errorService).ErrorRate = f.errorRate
	}
	if f.downService != "" {
		get(f.downService).Down = true
	}
	var out []mesh.Fault
	for _, s := range order {
		out = append(out, *by[s])
	}
	return out
}

const meshUsage = `Usage: orrery mesh [flags]

Runs a small service mesh on loopback: frontend → catalog, frontend → cart → inventory and payments, each service
behind its own sidecar proxy whose admin port serves Envoy's /stats/prometheus, and a traffic generator calling the
frontend. Point any agent or Prometheus at the printed stats URLs.

Faults are injected at start with the flags below, or at run time through the control endpoint:

  curl -X POST http://CONTROL/faults -d '{"service":"payments","latency_ms":20}'   # also error_rate (0-1), down (true)
  curl -X POST http://CONTROL/faults -d '{"service":"payments"}'                   # clears the service's fault
  curl -X DELETE http://CONTROL/faults                                             # clears every fault
  curl -X POST http://CONTROL/traffic -d '{"requests_per_second":50}'
  curl http://CONTROL/                                                             # sidecars, faults, traffic

Flags:
`

func runMesh(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("orrery mesh", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, meshUsage)
		fs.PrintDefaults()
	}
	var cfg mesh.Config
	var faults faultFlags
	fs.StringVar(&cfg.Host, "host", "127.0.0.1", "address every listener binds")
	fs.IntVar(&cfg.BasePort, "base-port", 0, "first of consecutive ports for the services, sidecars and control endpoint (0: free ports)")
	fs.StringVar(&cfg.ControlListen, "control.listen", "", "address of the control endpoint (default: the next port, or a free one)")
	fs.IntVar(&cfg.RequestsPerSecond, "rps", 20, "requests per second sent to the frontend")
	faults.register(fs)
	level := logLevelFlag(fs, slog.LevelInfo, "log `level`: debug, info, warn, error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: *level}))
	cfg.Faults = faults.faults()
	m, err := mesh.New(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "orrery mesh: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "orrery mesh: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "mesh control:  %s\n", m.ControlURL())
	fmt.Fprintf(stdout, "traffic:       %d requests/s to %s\n", cfg.RequestsPerSecond, m.EntryURL())
	for _, s := range m.Sidecars() {
		fmt.Fprintf(stdout, "sidecar:       %-10s %s\n", s.Service, s.StatsURL)
	}
	<-ctx.Done()
	m.Close()
	return 0
}
