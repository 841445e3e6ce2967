package scraper

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/scrape"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/controlplane"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// Clusters maps EKS cluster ARNs to kubeconfig files; it is a repeatable
// flag of ARN=KUBECONFIG_PATH (an empty path: the in-cluster
// configuration, for a server running in that cluster).
type Clusters map[string]string

func (c Clusters) String() string {
	var s []string
	for arn, path := range c {
		s = append(s, arn+"="+path)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func (c Clusters) Set(v string) error {
	arn, path, ok := strings.Cut(v, "=")
	if !ok || !strings.HasPrefix(arn, "arn:") {
		return fmt.Errorf("%q: want CLUSTER_ARN=KUBECONFIG_PATH (an empty path: in-cluster configuration)", v)
	}
	c[arn] = path
	return nil
}

// Config configures the Runner.
type Config struct {
	// Disabled leaves scrapers to another replica: this server serves
	// their API but scrapes nothing.
	Disabled bool
	// Clusters are the EKS clusters an eksConfiguration source may name.
	Clusters Clusters
	// MaxScrapers is how many scrapers the server may hold; MaxTargets how
	// many discovered targets one scraper scrapes (0: no limit).
	MaxScrapers, MaxTargets int
	// PollInterval is how often the catalog is read for scrapers changed
	// through another replica (0: 15s); changes through this one apply at
	// once.
	PollInterval time.Duration
	// LeaseDuration is how long a replica's lease on a scraper lasts
	// without renewal (0: 15s): replicas sharing the catalog run each
	// scraper on the one replica holding its lease, renewed every third of
	// it. A replica that stops releases its leases, taken over at the next
	// poll; one killed loses them after this duration.
	LeaseDuration time.Duration
	// Replica names this process among those sharing the catalog: the
	// holder of its leases. Set by the server, not a flag; required.
	Replica string
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Clusters: Clusters{}, MaxScrapers: 100, MaxTargets: 1000, PollInterval: 15 * time.Second, LeaseDuration: 15 * time.Second}
}

// RegisterFlags registers the flags, with c's values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	if c.Clusters == nil {
		c.Clusters = Clusters{}
	}
	fs.BoolVar(&c.Disabled, "scraper.disabled", c.Disabled, "do not run the managed scrapers (AMP's CreateScraper) in this process, only serve their API (replicas sharing --db elect one of the others to run each scraper)")
	fs.Var(c.Clusters, "scraper.kubernetes-cluster", "ARN=KUBECONFIG_PATH: an EKS cluster a scraper's eksConfiguration.clusterArn may name, whose API server its kubernetes_sd_configs use (an empty path: in-cluster configuration); repeatable")
	fs.IntVar(&c.MaxScrapers, "scraper.max-scrapers", c.MaxScrapers, "managed scrapers the server may hold (0: no limit); beyond it CreateScraper answers ServiceQuotaExceededException")
	fs.IntVar(&c.MaxTargets, "scraper.max-targets", c.MaxTargets, "targets one scraper scrapes (0: no limit): CreateScraper refuses more static targets, and discovered targets beyond it are not scraped")
	fs.DurationVar(&c.PollInterval, "scraper.poll-interval", c.PollInterval, "how often scrapers changed through another replica sharing --db are picked up")
	fs.DurationVar(&c.LeaseDuration, "scraper.lease-duration", c.LeaseDuration, "how long a replica's lease on a scraper (and on an anomaly detector) lasts unrenewed: of replicas sharing --db, the one holding it runs the scraper, and another takes it over this long after that replica dies (at once after it stops)")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.MaxScrapers < 0 || c.MaxTargets < 0 {
		return errors.New("--scraper.max-scrapers and --scraper.max-targets must be 0 or more")
	}
	if c.PollInterval < 0 {
		return errors.New("--scraper.poll-interval must be positive")
	}
	if c.LeaseDuration < 0 || (c.LeaseDuration > 0 && c.LeaseDuration < 300*time.Millisecond) {
		return errors.New("--scraper.lease-duration must be 300ms or more: it is renewed every third of it")
	}
	return nil
}

// Runner runs the catalog's scrapers whose lease it holds. The replica
// running a scraper owns its status after the control plane's: CREATING
// and UPDATING become ACTIVE once the configuration runs, or
// CREATION_FAILED with a reason when it cannot; DELETING scrapers are
// stopped and removed (by any replica).
//
// Leases: at each poll the runner acquires (or renews) the lease of every
// scraper it may run, and runs those it holds. It stops a scraper whose
// lease another replica took, and one whose lease it could not renew
// before it ran out (the catalog unreachable): from then on another
// replica may run it.
//
// Lifecycle: New starts nothing; Run runs until its context ends and then
// stops every scraper. Notify may be called at any time.
type Runner struct {
	cfg    Config
	cat    *catalog.Catalog
	ingest http.Handler
	logger *slog.Logger
	wake   chan struct{}

	mu      sync.Mutex
	running map[string]*run // By scraper id; guarded by mu.
	// retiring counts the deleted scrapers writing their staleness
	// markers; Run waits for them.
	retiring sync.WaitGroup

	samples  *prometheus.CounterVec
	failures *prometheus.CounterVec
	targets  *prometheus.GaugeVec
	leases   prometheus.Gauge
}

// New returns a Runner writing through ingest, the server's remote write
// handler (which reads the workspace from the request's context).
func New(cfg Config, cat *catalog.Catalog, ingest http.Handler, logger *slog.Logger, reg prometheus.Registerer) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cat == nil || ingest == nil || cfg.Replica == "" {
		return nil, errors.New("the scraper runner needs the catalog, the remote write handler and a replica id")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 15 * time.Second
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = 15 * time.Second
	}
	f := promauto.With(reg)
	return &Runner{cfg: cfg, cat: cat, ingest: ingest, logger: logger.With("component", "scraper"), wake: make(chan struct{}, 1),
		running: map[string]*run{},
		samples: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_scraper_samples_written_total",
			Help: "Samples a managed scraper wrote into its destination workspace."}, []string{"scraper"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_scraper_write_failures_total",
			Help: "Scrapes of a managed scraper its destination workspace refused (a limit, or the workspace gone)."}, []string{"scraper"}),
		targets: f.NewGaugeVec(prometheus.GaugeOpts{Name: "orrery_scraper_targets",
			Help: "A managed scraper's targets by health (up, down, unknown)."}, []string{"scraper", "health"}),
		leases: f.NewGauge(prometheus.GaugeOpts{Name: "orrery_scraper_leases_held",
			Help: "Managed scrapers whose lease this replica holds, which it runs."}),
	}, nil
}

// Notify makes Run read the catalog now: call it when a scraper changed.
func (r *Runner) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run applies the catalog's scrapers until ctx ends, then stops them and
// releases their leases.
func (r *Runner) Run(ctx context.Context) error {
	// The poll renews the leases too: often enough that one missed
	// renewal does not lose them.
	poll := time.NewTicker(min(r.cfg.PollInterval, r.cfg.LeaseDuration/3))
	defer poll.Stop()
	metrics := time.NewTicker(5 * time.Second)
	defer metrics.Stop()
	for r.sync(ctx); r.next(ctx, poll.C, metrics.C); {
		r.sync(ctx)
	}
	r.mu.Lock()
	runs := r.running
	r.running = map[string]*run{}
	r.mu.Unlock()
	// The leases are released with a context of their own: ctx is done.
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ru := range runs {
		r.stopRun(ru)
		r.release(rctx, ru.id)
	}
	r.leases.Set(0)
	r.retiring.Wait()
	return nil
}

// retire stops a deleted scraper once Prometheus' scrape loops have
// written staleness markers for its series: its targets are dropped, which
// ends each loop, and a loop that ends while its scrape pool lives marks
// its series stale just over two scrape intervals later. (A stop of the
// whole manager writes none: Prometheus presumes a restart. Neither does a
// scraper that moves to another replica or stops with its replica: the
// next holder goes on writing the same series.) retire returns at once;
// the stop comes in the background, at once when ctx ends.
func (r *Runner) retire(ctx context.Context, ru *run) {
	close(ru.drain)
	r.retiring.Add(1)
	go func() {
		defer r.retiring.Done()
		// The manager applies the empty targets within its reload
		// interval (1s); a loop then waits two intervals and a tenth.
		wait := 2*time.Second + ru.maxInterval*22/10
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		r.stopRun(ru)
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.release(rctx, ru.id)
	}()
}

func leaseName(id string) string { return "scraper/" + id }

// release gives up a scraper's lease, so that another replica runs it at
// its next poll rather than after the lease expires.
func (r *Runner) release(ctx context.Context, id string) {
	if err := r.cat.ReleaseLease(ctx, leaseName(id), r.cfg.Replica); err != nil {
		r.logger.Warn("release scraper lease; another replica takes it when it expires", "scraper", id, "err", err)
	}
}

// next waits until the catalog should be read again (a poll, or Notify),
// updating the target metrics meanwhile; false when ctx ends.
func (r *Runner) next(ctx context.Context, poll, metrics <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-metrics:
			r.updateTargetMetrics()
		case <-poll:
			return true
		case <-r.wake:
			return true
		}
	}
}

// sync makes the running scrapers those of the catalog.
func (r *Runner) sync(ctx context.Context) {
	seen := map[string]bool{}
	for after := ""; ; {
		page, err := r.cat.Scrapers(ctx, after, 500)
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Warn("read scrapers; the running ones continue while their leases last, the next poll retries", "err", err)
			}
			r.dropExpired()
			return
		}
		for _, s := range page {
			seen[s.ID] = true
			r.apply(ctx, s)
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].ID
	}
	r.mu.Lock()
	var gone []*run
	for id, ru := range r.running {
		if !seen[id] {
			gone = append(gone, ru)
			delete(r.running, id)
		}
	}
	r.mu.Unlock()
	for _, ru := range gone { // Deleted through another replica.
		r.retire(ctx, ru)
	}
	r.mu.Lock()
	r.leases.Set(float64(len(r.running)))
	r.mu.Unlock()
}

// dropExpired stops the scrapers whose lease this replica could not renew
// in time: another replica may run them now.
func (r *Runner) dropExpired() {
	now := time.Now()
	r.mu.Lock()
	var expired []*run
	for id, ru := range r.running {
		if now.After(ru.leaseUntil) {
			expired = append(expired, ru)
			delete(r.running, id)
		}
	}
	r.leases.Set(float64(len(r.running)))
	r.mu.Unlock()
	for _, ru := range expired {
		r.logger.Warn("scraper lease not renewed in time; stopped, another replica may run it", "scraper", ru.id)
		r.stopRun(ru)
	}
}

// lease acquires or renews a scraper's lease. It returns whether this
// replica holds it, and until when at least.
func (r *Runner) lease(ctx context.Context, id string) (bool, time.Time, error) {
	began := time.Now()
	held, err := r.cat.AcquireLease(ctx, leaseName(id), r.cfg.Replica, r.cfg.LeaseDuration)
	return held, began.Add(r.cfg.LeaseDuration), err
}

// apply brings one scraper to what its record says.
func (r *Runner) apply(ctx context.Context, s catalog.Scraper) {
	r.mu.Lock()
	cur := r.running[s.ID]
	r.mu.Unlock()
	drop := func() {
		if cur != nil {
			r.mu.Lock()
			delete(r.running, s.ID)
			r.mu.Unlock()
			r.stopRun(cur)
		}
	}
	switch s.Status {
	case catalog.ScraperDeleting:
		if cur != nil {
			r.mu.Lock()
			delete(r.running, s.ID)
			r.mu.Unlock()
			r.retire(ctx, cur)
		}
		if err := r.cat.RemoveScraper(ctx, s.ID); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			r.logger.Warn("remove deleted scraper; the next poll retries", "scraper", s.ID, "err", err)
		}
		return
	case catalog.ScraperCreationFailed:
		return
	}
	if r.cfg.Disabled {
		return
	}
	held, until, err := r.lease(ctx, s.ID)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			r.logger.Warn("renew scraper lease; the next poll retries", "scraper", s.ID, "err", err)
		}
		if cur != nil && time.Now().After(cur.leaseUntil) {
			r.logger.Warn("scraper lease not renewed in time; stopped, another replica may run it", "scraper", s.ID)
			drop()
		}
		return
	case !held:
		if cur != nil {
			r.logger.Info("scraper lease taken by another replica; stopped here", "scraper", s.ID)
			drop()
		}
		return
	}
	version := string(s.Workspace) + "\x00" + string(s.Source) + "\x00" + string(s.Configuration)
	if cur != nil && cur.version == version {
		cur.renewed(until)
		r.settle(ctx, s, "")
		return
	}
	next, err := r.start(s, version)
	if err != nil {
		if s.Status == catalog.ScraperCreating {
			r.logger.Warn("scraper not started", "scraper", s.ID, "err", err)
			if _, serr := r.cat.SetScraperStatus(ctx, s.ID, s.Status, catalog.ScraperCreationFailed, err.Error()); serr != nil {
				r.logger.Warn("set scraper status", "scraper", s.ID, "err", serr)
			}
			return
		}
		// An update that cannot run leaves the previous configuration
		// running, and says so.
		r.logger.Warn("scraper update not applied; the previous configuration keeps running", "scraper", s.ID, "err", err)
		if cur != nil {
			cur.renewed(until)
		}
		r.settle(ctx, s, "update not applied, the previous configuration runs: "+err.Error())
		return
	}
	next.renewed(until)
	r.mu.Lock()
	r.running[s.ID] = next
	r.mu.Unlock()
	if cur != nil {
		cur.stop()
	}
	r.logger.Info("scraper running", "scraper", s.ID, "workspace", s.Workspace)
	r.settle(ctx, s, "")
}

// settle makes a CREATING or UPDATING scraper ACTIVE.
func (r *Runner) settle(ctx context.Context, s catalog.Scraper, reason string) {
	if s.Status != catalog.ScraperCreating && s.Status != catalog.ScraperUpdating {
		return
	}
	if _, err := r.cat.SetScraperStatus(ctx, s.ID, s.Status, catalog.ScraperActive, reason); err != nil {
		r.logger.Warn("set scraper status; the next poll retries", "scraper", s.ID, "err", err)
	}
}

func (r *Runner) stopRun(ru *run) {
	ru.stop()
	r.samples.DeleteLabelValues(ru.id)
	r.failures.DeleteLabelValues(ru.id)
	r.targets.DeletePartialMatch(prometheus.Labels{"scraper": ru.id})
	r.logger.Info("scraper stopped", "scraper", ru.id)
}

// source is the stored source union.
type source struct {
	EksConfiguration *struct {
		ClusterArn string `json:"clusterArn"`
	} `json:"eksConfiguration"`
}

// load reads a scraper's configuration; an EKS source points its
// kubernetes_sd_configs at the registered cluster.
func (r *Runner) load(s catalog.Scraper) (*config.Config, error) {
	cfg, _, err := controlplane.ValidateScrapeConfiguration(s.Configuration)
	if err != nil {
		return nil, err
	}
	var src source
	if err := json.Unmarshal(s.Source, &src); err != nil {
		return nil, fmt.Errorf("source of scraper %s: %w", s.ID, err)
	}
	if src.EksConfiguration == nil {
		return cfg, nil
	}
	arn := src.EksConfiguration.ClusterArn
	kubeconfig, ok := r.cfg.Clusters[arn]
	if !ok {
		return nil, fmt.Errorf("cluster %s is not registered with this server: start the server with --scraper.kubernetes-cluster %s=KUBECONFIG_PATH", arn, arn)
	}
	for _, sc := range cfg.ScrapeConfigs {
		for _, sd := range sc.ServiceDiscoveryConfigs {
			if k, ok := sd.(*kubernetes.SDConfig); ok && k.KubeConfig == "" && k.APIServer.URL == nil {
				k.KubeConfig = kubeconfig
			}
		}
	}
	return cfg, nil
}

// run is one running scraper: its own discovery and scrape managers (with
// their own metrics registry: Prometheus' managers register fixed metric
// names, which would collide between scrapers).
type run struct {
	id, version string
	ws          workspace.ID
	sm          *scrape.Manager
	cancel      context.CancelFunc
	done        sync.WaitGroup
	// drain, closed, drops every target (retire); jobs are the
	// configuration's, maxInterval its longest scrape interval.
	drain       chan struct{}
	jobs        []string
	maxInterval time.Duration

	// leaseUntil is when this replica's lease on the scraper ends unless
	// renewed; only the runner's loop uses it.
	leaseUntil time.Time

	mu        sync.Mutex
	lastError string // The destination's last refusal, "" after a write it took.
	limited   string // Why discovered targets were left out, "" if none were.
}

func (ru *run) renewed(until time.Time) { ru.leaseUntil = until }

func (r *Runner) start(s catalog.Scraper, version string) (*run, error) {
	cfg, err := r.load(s)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register discovery metrics: %w", err)
	}
	logger := r.logger.With("scraper", s.ID)
	ctx, cancel := context.WithCancel(context.Background())
	dm := discovery.NewManager(ctx, logger.With("component", "discovery"), reg, sdMetrics, discovery.Name("scrape"))
	if dm == nil {
		cancel()
		return nil, errors.New("create discovery manager")
	}
	ru := &run{id: s.ID, version: version, ws: s.Workspace, cancel: cancel, drain: make(chan struct{})}
	check := func(ctx context.Context) error {
		ws, err := r.cat.GetWorkspace(ctx, s.Workspace)
		if err != nil {
			return fmt.Errorf("destination workspace: %w", err)
		}
		if ws.Status == catalog.StatusDeleting {
			return fmt.Errorf("destination workspace %s is being deleted", s.Workspace)
		}
		return nil
	}
	sk := &sink{ingest: r.ingest, ws: s.Workspace, check: check, onWrite: func(n int, err error) {
		ru.mu.Lock()
		defer ru.mu.Unlock()
		if err != nil {
			ru.lastError = err.Error()
			r.failures.WithLabelValues(s.ID).Inc()
			return
		}
		ru.lastError = ""
		r.samples.WithLabelValues(s.ID).Add(float64(n))
	}}
	// Targets apply within a second rather than Prometheus' 5s: a scraper
	// taken over from another replica starts scraping at once (a reload
	// only costs when the targets changed).
	sm, err := scrape.NewManager(&scrape.Options{DiscoveryReloadInterval: model.Duration(time.Second)}, logger.With("component", "scrape"), nil, nil, sk, reg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("create scrape manager: %w", err)
	}
	ru.sm = sm
	if err := sm.ApplyConfig(cfg); err != nil {
		cancel()
		return nil, fmt.Errorf("apply scrape configuration: %w", err)
	}
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		cancel()
		return nil, err
	}
	sd := make(map[string]discovery.Configs, len(scfgs))
	for _, sc := range scfgs {
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
		ru.jobs = append(ru.jobs, sc.JobName)
		ru.maxInterval = max(ru.maxInterval, time.Duration(sc.ScrapeInterval))
	}
	if err := dm.ApplyConfig(sd); err != nil {
		cancel()
		return nil, fmt.Errorf("apply service discovery configuration: %w", err)
	}
	limited := make(chan map[string][]*targetgroup.Group)
	ru.done.Add(3)
	go func() {
		defer ru.done.Done()
		if err := dm.Run(); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error("discovery stopped", "err", err)
		}
	}()
	go func() {
		defer ru.done.Done()
		defer close(limited)
		found, drain := dm.SyncCh(), ru.drain
		for {
			var tsets map[string][]*targetgroup.Group
			select {
			case <-ctx.Done():
				return
			case <-drain:
				// Retired: every job loses its targets, and discovery
				// is not heeded any more.
				found, drain = nil, nil
				tsets = map[string][]*targetgroup.Group{}
				for _, job := range ru.jobs {
					tsets[job] = nil
				}
			case tsets = <-found:
				var why string
				tsets, why = limitTargets(tsets, r.cfg.MaxTargets)
				ru.mu.Lock()
				ru.limited = why
				ru.mu.Unlock()
				if why != "" {
					logger.Warn("targets left out", "reason", why)
				}
			}
			select {
			case limited <- tsets:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer ru.done.Done()
		if err := sm.Run(limited); err != nil {
			logger.Error("scraping stopped", "err", err)
		}
	}()
	return ru, nil
}

// stop ends the scrape and discovery and waits for them.
func (ru *run) stop() {
	ru.sm.Stop()
	ru.cancel()
	ru.done.Wait()
}

// limitTargets keeps the first max targets, jobs in name order, and says
// how many it left out.
func limitTargets(tsets map[string][]*targetgroup.Group, limit int) (map[string][]*targetgroup.Group, string) {
	if limit <= 0 {
		return tsets, ""
	}
	jobs := make([]string, 0, len(tsets))
	total := 0
	for job, groups := range tsets {
		jobs = append(jobs, job)
		for _, g := range groups {
			total += len(g.Targets)
		}
	}
	if total <= limit {
		return tsets, ""
	}
	slices.Sort(jobs)
	out := make(map[string][]*targetgroup.Group, len(tsets))
	left := limit
	for _, job := range jobs {
		for _, g := range tsets[job] {
			kept := *g
			kept.Targets = g.Targets[:min(left, len(g.Targets))]
			left -= len(kept.Targets)
			out[job] = append(out[job], &kept)
		}
	}
	return out, fmt.Sprintf("discovery found %d targets, more than the %d a scraper scrapes (--scraper.max-targets); %d are not scraped", total, limit, total-limit)
}
