package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	_ "github.com/prometheus/prometheus/discovery/dns"        // dns_sd_configs.
	_ "github.com/prometheus/prometheus/discovery/file"       // file_sd_configs.
	_ "github.com/prometheus/prometheus/discovery/http"       // http_sd_configs.
	_ "github.com/prometheus/prometheus/discovery/kubernetes" // kubernetes_sd_configs.
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/agent"
	"github.com/prometheus/prometheus/util/compression"
)

// Config configures an Agent.
type Config struct {
	// ConfigFile is a Prometheus configuration file (global,
	// scrape_configs, remote_write), read in agent mode.
	ConfigFile string
	// DataDir holds the write-ahead log.
	DataDir string
	// Listen is the address of the agent's own HTTP endpoints.
	Listen string
	// NodeName, if set, keeps only Kubernetes targets on that node (see
	// Shard).
	NodeName string
	// Shard and Shards, if Shards > 1, keep only the targets whose address
	// hashes to Shard (0-based) modulo Shards.
	Shard, Shards int
	// MinWALTime and MaxWALTime bound how long samples stay in the WAL:
	// samples not yet sent are kept up to MaxWALTime, then dropped.
	MinWALTime, MaxWALTime time.Duration
	// TruncateFrequency is how often the WAL is truncated.
	TruncateFrequency time.Duration
	// FlushDeadline bounds how long pending samples are sent at shutdown.
	FlushDeadline time.Duration
	// OTLPListen, if set, is the address of an OTLP/HTTP metrics receiver
	// (POST /v1/metrics and /api/v1/otlp/v1/metrics): Prometheus' own OTLP
	// handler, writing into the WAL like scrapes, with the configuration
	// file's otlp block.
	OTLPListen string
	// OTLPConvertDelta converts OTLP delta temporality to cumulative, as
	// Prometheus' otlp-deltatocumulative feature.
	OTLPConvertDelta bool
}

// Validate fills defaults and checks the configuration.
func (c *Config) Validate() error {
	if c.ConfigFile == "" {
		return errors.New("--config.file is empty; give a Prometheus configuration with scrape_configs and remote_write")
	}
	if c.DataDir == "" {
		return errors.New("--storage.path is empty; name a directory for the write-ahead log")
	}
	if c.Shards < 0 || (c.Shards > 1 && (c.Shard < 0 || c.Shard >= c.Shards)) {
		return fmt.Errorf("--shard %d of --shards %d: the shard must be 0 to shards-1", c.Shard, c.Shards)
	}
	if c.MinWALTime == 0 {
		c.MinWALTime = 5 * time.Minute
	}
	if c.MaxWALTime == 0 {
		c.MaxWALTime = 4 * time.Hour
	}
	if c.MaxWALTime < c.MinWALTime {
		return fmt.Errorf("--storage.agent.max-wal-time %s is shorter than --storage.agent.min-wal-time %s", c.MaxWALTime, c.MinWALTime)
	}
	if c.TruncateFrequency == 0 {
		c.TruncateFrequency = 2 * time.Hour
	}
	if c.FlushDeadline == 0 {
		c.FlushDeadline = time.Minute
	}
	return nil
}

// Agent scrapes targets and remote-writes their samples through a WAL.
//
// Lifecycle: New validates and builds nothing that runs; Run opens the WAL
// (replaying it: samples scraped but not sent before a restart are sent
// now), starts discovery, scraping, remote write and the HTTP endpoints,
// and stops them all when its context ends, flushing pending samples for
// up to FlushDeadline. Reload may be called at any time while Run runs.
type Agent struct {
	cfg    Config
	logger *slog.Logger
	reg    *prometheus.Registry

	mu        sync.Mutex // Guards the fields below, set by Run.
	remote    *remote.Storage
	scrape    *scrape.Manager
	discovery *discovery.Manager
	db        *agent.DB
	ready     bool
	ln        net.Listener
	// queues is false until remote write's queues run: until the WAL's
	// unsent samples have been sent (see backfill.go).
	queues bool
	// resending is true until the start-up resend's second pass is done:
	// the watermark stays until then, as the queues may have sent newer
	// samples than the ones that pass has yet to send.
	resending bool
	current   *config.Config // The configuration in force.
	marker    int64          // The stored watermark; used by Run's goroutine only.

	// late decides which OTLP points remote write's queues would not send
	// (late.go); lateDests are the destinations they are sent to instead.
	late      lateCutoff
	lateDests struct {
		cfg   *config.Config
		dests []destination
	}

	reloads  prometheus.Counter
	reloadF  prometheus.Counter
	behind   prometheus.Gauge
	lateSent prometheus.Counter
}

// New returns an agent. It starts nothing.
func New(cfg Config, logger *slog.Logger) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &Agent{cfg: cfg, logger: logger, reg: reg}
	a.reloads = prometheus.NewCounter(prometheus.CounterOpts{Name: "orrery_agent_config_reloads_total", Help: "Configuration reloads that succeeded."})
	a.reloadF = prometheus.NewCounter(prometheus.CounterOpts{Name: "orrery_agent_config_reload_failures_total", Help: "Configuration reloads that failed (the previous configuration stays)."})
	a.behind = prometheus.NewGauge(prometheus.GaugeOpts{Name: "orrery_agent_remote_write_behind_seconds",
		Help: "Age of the oldest sample not yet sent by every remote write queue (0 when caught up)."})
	a.lateSent = prometheus.NewCounter(prometheus.CounterOpts{Name: "orrery_agent_otlp_late_samples_sent_total",
		Help: "OTLP samples timestamped before remote write's start, which the agent sent itself (see late.go)."})
	a.late.at = math.MaxInt64
	reg.MustRegister(a.reloads, a.reloadF, a.behind, a.lateSent, &targetCollector{a: a})
	return a, nil
}

// Registry returns the agent's metrics registry.
func (a *Agent) Registry() *prometheus.Registry { return a.reg }

// Addr returns the address the HTTP endpoints listen on, once Run started.
func (a *Agent) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Run runs the agent until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	cfg, err := a.loadConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create WAL directory: %w", err)
	}
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.cfg.Listen, err)
	}
	var oln net.Listener
	if a.cfg.OTLPListen != "" {
		if oln, err = net.Listen("tcp", a.cfg.OTLPListen); err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen for OTLP on %s: %w", a.cfg.OTLPListen, err)
		}
		// Closes it on the error paths below; after Shutdown, a no-op.
		defer oln.Close()
	}
	if err := discovery.RegisterK8sClientMetricsWithPrometheus(a.reg); err != nil {
		a.logger.Warn("kubernetes client metrics not registered; discovery works without them", "err", err)
	}
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(a.reg)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("register discovery metrics: %w", err)
	}

	var db *agent.DB
	startTime := func() (int64, error) {
		if db == nil {
			return 0, errors.New("the WAL is not open yet")
		}
		return db.StartTime()
	}
	scraper := &readyScrape{}
	rs := remote.NewStorage(a.logger.With("component", "remote"), a.reg, startTime, a.cfg.DataDir, a.cfg.FlushDeadline, scraper, false)
	hadWAL := walHasSegments(a.cfg.DataDir)
	db, err = agent.Open(a.logger.With("component", "wal"), a.reg, rs, a.cfg.DataDir, &agent.Options{
		WALCompression:    compression.Snappy,
		TruncateFrequency: a.cfg.TruncateFrequency,
		MinWALTime:        a.cfg.MinWALTime.Milliseconds(),
		MaxWALTime:        a.cfg.MaxWALTime.Milliseconds(),
	})
	if err != nil {
		_ = ln.Close()
		_ = rs.Close()
		return fmt.Errorf("open the WAL in %s: %w", a.cfg.DataDir, err)
	}
	db.SetWriteNotified(rs)
	fanout := storage.NewFanout(a.logger, db, rs)

	dctx, dcancel := context.WithCancel(context.Background())
	dm := discovery.NewManager(dctx, a.logger.With("component", "discovery"), a.reg, sdMetrics, discovery.Name("scrape"))
	if dm == nil {
		dcancel()
		_ = ln.Close()
		return errors.Join(errors.New("create discovery manager"), rs.Close(), db.Close())
	}
	sm, err := scrape.NewManager(&scrape.Options{}, a.logger.With("component", "scrape"), nil, nil, fanout, a.reg)
	if err != nil {
		dcancel()
		_ = ln.Close()
		return errors.Join(fmt.Errorf("create scrape manager: %w", err), rs.Close(), db.Close())
	}
	scraper.set(sm)
	a.mu.Lock()
	a.remote, a.scrape, a.discovery, a.db, a.ln = rs, sm, dm, db, ln
	a.mu.Unlock()

	marker, hasMarker, err := loadMarker(a.cfg.DataDir)
	if err != nil {
		a.logger.Warn("remote write watermark unreadable; sending the whole WAL again", "err", err)
	}
	resend := hadWAL && len(cfg.RemoteWriteConfigs) > 0
	if !hasMarker {
		marker = 0 // No watermark: a crash before the first one was kept. Send it all.
	}
	a.marker = marker
	a.mu.Lock()
	a.resending = resend
	a.mu.Unlock()
	if resend {
		// Until the queues run, the WAL's passes (startQueues) send the
		// points newer than the watermark; only older ones are late.
		a.late.at = marker
	}
	if err := a.apply(cfg); err != nil {
		dcancel()
		_ = ln.Close()
		return errors.Join(err, rs.Close(), db.Close())
	}

	var wg sync.WaitGroup
	wg.Add(3)
	qctx, qcancel := context.WithCancel(context.Background())
	defer qcancel()
	go func() {
		defer wg.Done()
		a.startQueues(qctx, cfg, resend, marker)
	}()
	go func() {
		defer wg.Done()
		if err := dm.Run(); err != nil && !errors.Is(err, context.Canceled) {
			a.logger.Error("discovery stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := sm.Run(dm.SyncCh()); err != nil {
			a.logger.Error("scraping stopped", "err", err)
		}
	}()
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("http server stopped", "err", err)
		}
	}()
	var otlpSrv *http.Server
	if oln != nil {
		otlpSrv = &http.Server{Handler: a.otlpRoutes(lateAppendable{a: a, next: fanout}), ReadHeaderTimeout: 30 * time.Second}
		go func() {
			if err := otlpSrv.Serve(oln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.logger.Error("otlp receiver stopped", "err", err)
			}
		}()
	}
	a.mu.Lock()
	a.ready = true
	a.mu.Unlock()
	a.logger.Info("orrery agent running", "addr", ln.Addr().String(), "config", a.cfg.ConfigFile, "wal", a.cfg.DataDir,
		"node", a.cfg.NodeName, "shard", fmt.Sprintf("%d/%d", a.cfg.Shard, max(a.cfg.Shards, 1)))

	lag := time.NewTicker(15 * time.Second)
	defer lag.Stop()
	// The watermark is written every second: after a crash, what was sent
	// since it was last written is sent again.
	mark := time.NewTicker(time.Second)
	defer mark.Stop()
	warned := time.Time{}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-lag.C:
			warned = a.checkLag(rs, warned)
		case <-mark.C:
			a.keepMarker(rs)
		}
	}
	qcancel()

	a.logger.Info("stopping: scraping ends, pending samples are flushed", "flush_deadline", a.cfg.FlushDeadline)
	a.mu.Lock()
	a.ready = false
	a.mu.Unlock()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if otlpSrv != nil {
		_ = otlpSrv.Shutdown(sctx)
	}
	sm.Stop()
	dcancel()
	wg.Wait()
	// Closing remote write flushes what is queued; closing the WAL keeps
	// what is not sent for the next start.
	err = rs.Close()
	a.keepMarker(rs)
	return errors.Join(err, db.Close())
}

// checkLag reports how far behind remote write is, and warns (at most every
// 5 minutes) when unsent samples near the WAL's age bound, past which they
// are dropped.
func (a *Agent) checkLag(rs *remote.Storage, warned time.Time) time.Time {
	lowest := rs.LowestSentTimestamp()
	if lowest <= 0 || lowest == int64(^uint64(0)>>1) {
		a.behind.Set(0)
		return warned
	}
	behind := time.Since(time.UnixMilli(lowest))
	if behind < 0 {
		behind = 0
	}
	a.behind.Set(behind.Seconds())
	if behind > a.cfg.MaxWALTime*3/4 && time.Since(warned) > 5*time.Minute {
		a.logger.Warn("remote write is behind; samples older than the WAL's age bound will be dropped, the rest is kept and sent when the receiver answers",
			"behind", behind.Round(time.Second), "max_wal_time", a.cfg.MaxWALTime)
		return time.Now()
	}
	return warned
}

// readyScrape gives remote write the scrape manager once it exists.
type readyScrape struct {
	mu sync.Mutex
	m  *scrape.Manager
}

func (r *readyScrape) set(m *scrape.Manager) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m = m
}

func (r *readyScrape) Get() (*scrape.Manager, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		return nil, errors.New("scrape manager not ready")
	}
	return r.m, nil
}

// loadConfig reads the configuration file in agent mode and adds the
// sharding rules.
func (a *Agent) loadConfig() (*config.Config, error) {
	cfg, err := config.LoadFile(a.cfg.ConfigFile, true, a.logger)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", a.cfg.ConfigFile, err)
	}
	if err := shard(cfg, a.cfg.NodeName, a.cfg.Shard, a.cfg.Shards); err != nil {
		return nil, err
	}
	return cfg, nil
}

// scrapeWriteWait is how long after its start time a scrape's samples
// are taken to be in the WAL: Prometheus' default scrape timeout.
const scrapeWriteWait = 10 * time.Second

// startQueues starts remote write's queues, first sending what the WAL
// holds beyond the watermark when resend is set. Scraping runs meanwhile:
// what it appends is in the WAL, sent by the second and third passes.
func (a *Agent) startQueues(ctx context.Context, cfg *config.Config, resend bool, marker int64) {
	var end walPos
	if resend {
		start := time.Now()
		a.logger.Info("sending the samples the WAL holds beyond what was sent before the restart", "after", time.UnixMilli(marker).UTC())
		var n int
		var err error
		_, n, end, err = a.backfill(ctx, cfg, marker, math.MaxInt64, nil)
		if err != nil {
			a.logger.Warn("stopped sending the WAL's samples; the next start sends them", "err", err)
			return
		}
		a.logger.Info("sent the WAL's samples", "samples", n, "duration", time.Since(start).Round(time.Millisecond))
	}
	a.mu.Lock()
	cfg = a.current
	rs := a.remote
	a.queues = true
	a.mu.Unlock()
	applied, err := a.late.restart(func() error { return rs.ApplyConfig(cfg) })
	if err != nil {
		a.logger.Error("remote write not started", "err", err)
		return
	}
	if resend {
		// Samples appended while the first pass ran, up to the queues'
		// start (with late.go's slack: what the queues may not send):
		// those of the records after where the first pass ended, scrapes
		// appended late included, and none it sent. At once, before the
		// queues send newer samples of the same series, which would make
		// these out of order at receivers.
		until := applied + watcherStartSlack.Milliseconds()
		_, n, next, err := a.backfill(ctx, cfg, marker, until, &end)
		if err != nil {
			a.logger.Warn("stopped sending the WAL's samples; the next start sends them", "err", err)
			return
		}
		// The watermark may move from here: a stop before the pass below
		// loses what it would have sent, rare, rather than have the next
		// start send all since the watermark again.
		a.mu.Lock()
		a.resending = false
		a.mu.Unlock()
		// A scrape's samples carry its start time and reach the WAL when
		// it ends: those of scrapes that began before the queues' start
		// and ended after that pass read the WAL are sent scrapeWriteWait
		// later (out of order, if the queues sent newer ones by then).
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(time.UnixMilli(applied).Add(scrapeWriteWait))):
		}
		_, m, _, err := a.backfill(ctx, cfg, marker, applied, &next)
		if err != nil {
			a.logger.Warn("stopped sending the WAL's samples; the next start sends them", "err", err)
			return
		}
		n += m
		a.logger.Debug("sent the samples scraped while the WAL was being sent", "samples", n)
	}
}

// keepMarker stores the remote write watermark when it moved.
func (a *Agent) keepMarker(rs *remote.Storage) {
	a.mu.Lock()
	keep := a.queues && !a.resending
	a.mu.Unlock()
	if !keep {
		return
	}
	ts := rs.LowestSentTimestamp()
	if ts <= 0 || ts == math.MaxInt64 || ts <= a.marker {
		return
	}
	if err := storeMarker(a.cfg.DataDir, ts); err != nil {
		a.logger.Warn("store remote write watermark; a restart may send some samples twice", "err", err)
		return
	}
	a.marker = ts
}

// apply makes every component use cfg. Remote write's queues get it once
// they run.
func (a *Agent) apply(cfg *config.Config) error {
	a.mu.Lock()
	rs, sm, dm, queues := a.remote, a.scrape, a.discovery, a.queues
	a.current = cfg
	a.mu.Unlock()
	if queues {
		if _, err := a.late.restart(func() error { return rs.ApplyConfig(cfg) }); err != nil {
			return fmt.Errorf("apply remote_write configuration: %w", err)
		}
	}
	if err := sm.ApplyConfig(cfg); err != nil {
		return fmt.Errorf("apply scrape configuration: %w", err)
	}
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("read scrape configs: %w", err)
	}
	sd := make(map[string]discovery.Configs, len(scfgs))
	for _, sc := range scfgs {
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
	}
	if err := dm.ApplyConfig(sd); err != nil {
		return fmt.Errorf("apply service discovery configuration: %w", err)
	}
	return nil
}

// Reload rereads the configuration file and applies it. On error the
// running configuration stays.
func (a *Agent) Reload() error {
	a.mu.Lock()
	running := a.remote != nil
	a.mu.Unlock()
	if !running {
		return errors.New("the agent is not running")
	}
	cfg, err := a.loadConfig()
	if err == nil {
		err = a.apply(cfg)
	}
	if err != nil {
		a.reloadF.Inc()
		a.logger.Error("configuration reload failed; the previous configuration stays", "err", err)
		return err
	}
	a.reloads.Inc()
	a.logger.Info("configuration reloaded", "config", a.cfg.ConfigFile)
	return nil
}
