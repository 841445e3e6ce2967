package workspace

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"go.yaml.in/yaml/v2"
)

// Limits bound what one workspace may ingest and query. The zero value is
// not useful; start from DefaultLimits. A zero numeric limit means
// "unlimited" unless its comment says otherwise.
type Limits struct {
	// Ingestion.
	MaxLabelNamesPerSeries int     `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int     `yaml:"max_label_name_length"`
	MaxLabelValueLength    int     `yaml:"max_label_value_length"`
	IngestionRate          float64 `yaml:"ingestion_rate"`       // samples (and histograms) per second.
	IngestionBurstSize     int     `yaml:"ingestion_burst_size"` // samples; at least one request's worth.
	MaxActiveSeries        int     `yaml:"max_active_series"`
	// LabelSetLimits bound the active series of label sets (AMP's
	// limitsPerLabelSet).
	LabelSetLimits         []LabelSetLimit `yaml:"limits_per_label_set"`
	MaxRequestBytes        int             `yaml:"max_request_bytes"`         // compressed body.
	MaxDecodedRequestBytes int             `yaml:"max_decoded_request_bytes"` // body after snappy decoding.
	// OutOfOrderWindow is how far behind the newest sample of a series a
	// sample may be and still be accepted. At most MaxOutOfOrderWindow.
	OutOfOrderWindow model.Duration `yaml:"out_of_order_time_window"`
	MaxExemplars     int            `yaml:"max_exemplars"`
	// NameValidation is "utf8" (Prometheus 3's default) or "legacy".
	NameValidation string `yaml:"name_validation_scheme"`

	// OTLP is Prometheus' otlp configuration block for the workspace's OTLP
	// ingestion: name translation, resource attributes promoted to labels.
	// nil means Prometheus' defaults.
	OTLP *config.OTLPConfig `yaml:"otlp,omitempty"`

	// High-availability pair deduplication, as Cortex and AMP do it.
	HAClusterLabel    string         `yaml:"ha_cluster_label"`
	HAReplicaLabel    string         `yaml:"ha_replica_label"`
	HAFailoverTimeout model.Duration `yaml:"ha_failover_timeout"`

	// Storage.
	RetentionPeriod model.Duration `yaml:"retention_period"`

	// Query.
	QueryTimeout    model.Duration `yaml:"query_timeout"`
	MaxQuerySamples int            `yaml:"max_query_samples"`
	MaxQueryRange   model.Duration `yaml:"max_query_range"` // end - start of range queries (query_range only).

	// Alert manager. Alerts count while the Alertmanager holds them: firing,
	// and resolved until its garbage collection drops them. Silences count
	// until they expire and their retention ends.
	AlertmanagerMaxAlerts            int `yaml:"alertmanager_max_alerts"`
	AlertmanagerMaxAlertsSizeBytes   int `yaml:"alertmanager_max_alerts_size_bytes"` // labels and annotations of all alerts.
	AlertmanagerMaxAggregationGroups int `yaml:"alertmanager_max_aggregation_groups"`
	AlertmanagerMaxSilences          int `yaml:"alertmanager_max_silences"`
	AlertmanagerMaxSilenceSizeBytes  int `yaml:"alertmanager_max_silence_size_bytes"`
	// Rules, checked when a rule groups namespace is created or replaced.
	MaxRuleGroups        int `yaml:"max_rule_groups"`          // rule groups in all namespaces of the workspace.
	MaxRulesPerRuleGroup int `yaml:"max_rules_per_rule_group"` // recording and alerting rules in one group.
	// Anomaly detectors: how many a workspace may have (checked when one
	// is created) and how many result series of its query each one models
	// (series beyond it are left out, and the detector's status says so).
	MaxAnomalyDetectors      int `yaml:"max_anomaly_detectors"`
	MaxAnomalyDetectorSeries int `yaml:"max_anomaly_detector_series"`
}

// MaxOutOfOrderWindow is the largest out-of-order window a workspace may have.
const MaxOutOfOrderWindow = 10 * time.Minute

// DefaultLimits returns the limits a workspace has unless overridden. They
// follow Amazon Managed Service for Prometheus' default quotas.
func DefaultLimits() Limits {
	return Limits{
		MaxLabelNamesPerSeries: 70,
		MaxLabelNameLength:     1024,
		MaxLabelValueLength:    2048,
		IngestionRate:          170_000,
		IngestionBurstSize:     850_000,
		MaxActiveSeries:        10_000_000,
		MaxRequestBytes:        16 << 20,
		MaxDecodedRequestBytes: 64 << 20,
		OutOfOrderWindow:       model.Duration(time.Minute),
		MaxExemplars:           100_000,
		NameValidation:         "utf8",
		HAClusterLabel:         "cluster",
		HAReplicaLabel:         "__replica__",
		HAFailoverTimeout:      model.Duration(30 * time.Second),
		RetentionPeriod:        model.Duration(150 * 24 * time.Hour),
		QueryTimeout:           model.Duration(2 * time.Minute),
		MaxQuerySamples:        50_000_000,
		MaxQueryRange:          model.Duration(32 * 24 * time.Hour),
		// AMP: 1,000 active alerts and 20 MB of active alert payload per
		// alert manager, 1,000 aggregation groups. AMP publishes no
		// silence quota; these are Orrery's.
		AlertmanagerMaxAlerts:            1000,
		AlertmanagerMaxAlertsSizeBytes:   20 << 20,
		AlertmanagerMaxAggregationGroups: 1000,
		AlertmanagerMaxSilences:          1000,
		AlertmanagerMaxSilenceSizeBytes:  64 << 10,
		MaxRuleGroups:                    2000,
		MaxRulesPerRuleGroup:             2000,
		// AMP publishes no quota for these; Orrery's bound the memory a
		// workspace's forests take (about 3 MB per modelled series with
		// the default shingle of 8: BenchmarkForestUpdate's heap-bytes).
		MaxAnomalyDetectors:      50,
		MaxAnomalyDetectorSeries: 100,
	}
}

// Validate reports the first limit that cannot work.
func (l Limits) Validate() error {
	switch {
	case l.MaxLabelNamesPerSeries < 0, l.MaxLabelNameLength < 0, l.MaxLabelValueLength < 0:
		return errors.New("label limits must not be negative")
	case l.IngestionRate < 0 || l.IngestionBurstSize < 0:
		return errors.New("ingestion_rate and ingestion_burst_size must not be negative")
	case l.IngestionRate > 0 && l.IngestionBurstSize == 0:
		return errors.New("ingestion_burst_size must be positive when ingestion_rate is set")
	case l.OutOfOrderWindow < 0 || time.Duration(l.OutOfOrderWindow) > MaxOutOfOrderWindow:
		return fmt.Errorf("out_of_order_time_window %s: must be between 0s and %s", l.OutOfOrderWindow, model.Duration(MaxOutOfOrderWindow))
	case l.NameValidation != "utf8" && l.NameValidation != "legacy":
		return fmt.Errorf("name_validation_scheme %q: must be \"utf8\" or \"legacy\"", l.NameValidation)
	case l.RetentionPeriod < 0:
		return errors.New("retention_period must not be negative")
	case l.QueryTimeout <= 0:
		return errors.New("query_timeout must be positive")
	case l.AlertmanagerMaxAlerts < 0, l.AlertmanagerMaxAlertsSizeBytes < 0, l.AlertmanagerMaxAggregationGroups < 0,
		l.AlertmanagerMaxSilences < 0, l.AlertmanagerMaxSilenceSizeBytes < 0:
		return errors.New("alertmanager limits must not be negative (0: unlimited)")
	case l.MaxRuleGroups < 0 || l.MaxRulesPerRuleGroup < 0:
		return errors.New("max_rule_groups and max_rules_per_rule_group must not be negative")
	case l.MaxAnomalyDetectors < 0 || l.MaxAnomalyDetectorSeries < 0:
		return errors.New("max_anomaly_detectors and max_anomaly_detector_series must not be negative")
	case l.MaxRequestBytes <= 0 || l.MaxDecodedRequestBytes <= 0:
		return errors.New("max_request_bytes and max_decoded_request_bytes must be positive")
	}
	if err := ValidateLabelSetLimits(l.LabelSetLimits); err != nil {
		return fmt.Errorf("limits_per_label_set: %w", err)
	}
	return nil
}

// ValidationScheme returns the metric and label name validation scheme.
func (l Limits) ValidationScheme() model.ValidationScheme {
	if l.NameValidation == "legacy" {
		return model.LegacyValidation
	}
	return model.UTF8Validation
}

// LimitsSource answers the limits in force for a workspace. Implementations
// are safe for concurrent use; the answer may change between calls.
type LimitsSource interface {
	Limits(id ID) Limits
}

// Configuration is what a workspace's owner sets through the control plane
// (AMP's UpdateWorkspaceConfiguration), stored in the catalog. Its zero
// value is not "nothing set": use Unconfigured.
type Configuration struct {
	// RetentionDays overrides the retention period when positive.
	RetentionDays int
	// OutOfOrderWindowSeconds overrides the out-of-order window when not
	// negative.
	OutOfOrderWindowSeconds int
	// LabelSetLimits, when not empty, replace the limits file's (or the
	// defaults') label set limits. The catalog cannot tell an empty list
	// set through the API from none set, so empty means "not set".
	LabelSetLimits []LabelSetLimit
}

// Unconfigured is the configuration of a workspace whose owner set nothing.
func Unconfigured() Configuration { return Configuration{OutOfOrderWindowSeconds: -1} }

// Merge returns the limits in force for a workspace: the defaults, then
// the fields the limits file sets for it (YAML, nil: none) decoded over
// them, then what its configuration sets. Each layer overrides only what it
// sets. It is the only place the layers meet; the result is validated.
func Merge(defaults Limits, file []byte, cfg Configuration) (Limits, error) {
	l := defaults
	if file != nil {
		if err := yaml.UnmarshalStrict(file, &l); err != nil {
			return Limits{}, err
		}
	}
	if cfg.RetentionDays > 0 {
		l.RetentionPeriod = model.Duration(time.Duration(cfg.RetentionDays) * 24 * time.Hour)
	}
	if cfg.OutOfOrderWindowSeconds >= 0 {
		l.OutOfOrderWindow = model.Duration(time.Duration(cfg.OutOfOrderWindowSeconds) * time.Second)
	}
	if len(cfg.LabelSetLimits) > 0 {
		l.LabelSetLimits = cfg.LabelSetLimits
	}
	if err := l.Validate(); err != nil {
		return Limits{}, err
	}
	return l, nil
}

// Overrides holds the three layers of limits Merge combines: the defaults,
// the limits file's overrides and the workspaces' configurations. It is
// safe for concurrent use. Limits is on the hot path: it reads a map of
// merged limits, recomputed whenever a layer changes.
type Overrides struct {
	mu       sync.RWMutex
	defaults Limits
	file     map[ID][]byte        // each workspace's fields in the limits file, as YAML.
	config   map[ID]Configuration // set through the control plane.
	merged   map[ID]Limits        // workspaces in file or config.
}

var _ LimitsSource = (*Overrides)(nil)

// NewOverrides returns an Overrides with the given defaults and none overridden.
func NewOverrides(defaults Limits) (*Overrides, error) {
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("default limits: %w", err)
	}
	return &Overrides{defaults: defaults, file: map[ID][]byte{}, config: map[ID]Configuration{}, merged: map[ID]Limits{}}, nil
}

// Limits implements LimitsSource.
func (o *Overrides) Limits(id ID) Limits {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if l, ok := o.merged[id]; ok {
		return l
	}
	return o.defaults
}

// Defaults returns the limits of workspaces without overrides.
func (o *Overrides) Defaults() Limits {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.defaults
}

// LoadFile replaces all of the limits file's overrides with those in a
// YAML file of the form
//
//	overrides:
//	  ws-0123...:
//	    ingestion_rate: 500000
//
// Limits a workspace does not mention keep their default values, or those
// its configuration sets. On error nothing changes.
func (o *Overrides) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read limits file: %w", err)
	}
	var raw struct {
		Overrides map[string]yaml.MapSlice `yaml:"overrides"`
	}
	if err := yaml.UnmarshalStrict(b, &raw); err != nil {
		return fmt.Errorf("parse limits file %s: %w", path, err)
	}
	file := make(map[ID][]byte, len(raw.Overrides))
	for key, fields := range raw.Overrides {
		id, err := ParseID(key)
		if err != nil {
			return fmt.Errorf("limits file %s: %w", path, err)
		}
		if file[id], err = yaml.Marshal(fields); err != nil {
			return fmt.Errorf("limits file %s: workspace %s: %w", path, id, err)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	merged := make(map[ID]Limits, len(file)+len(o.config))
	for id := range file {
		cfg, ok := o.config[id]
		if !ok {
			cfg = Unconfigured()
		}
		if merged[id], err = Merge(o.defaults, file[id], cfg); err != nil {
			return fmt.Errorf("limits file %s: workspace %s: %w", path, id, err)
		}
	}
	for id, cfg := range o.config {
		if _, ok := file[id]; ok {
			continue
		}
		if merged[id], err = Merge(o.defaults, nil, cfg); err != nil {
			return fmt.Errorf("configuration of workspace %s: %w", id, err)
		}
	}
	o.file, o.merged = file, merged
	return nil
}

// Configure sets a workspace's configuration, the layer over the limits
// file. On error nothing changes.
func (o *Overrides) Configure(id ID, cfg Configuration) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	l, err := Merge(o.defaults, o.file[id], cfg)
	if err != nil {
		return fmt.Errorf("limits of workspace %s: %w", id, err)
	}
	o.config[id], o.merged[id] = cfg, l
	return nil
}

// With returns the limits a workspace would have with configuration cfg
// rather than the one set with Configure: for a configuration read from
// the catalog, which another replica may have changed.
func (o *Overrides) With(id ID, cfg Configuration) (Limits, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return Merge(o.defaults, o.file[id], cfg)
}

// Forget drops a deleted workspace's configuration; its limits file entry,
// if any, stays until the file is reloaded.
func (o *Overrides) Forget(id ID) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.config, id)
	delete(o.merged, id)
	if f, ok := o.file[id]; ok {
		if l, err := Merge(o.defaults, f, Unconfigured()); err == nil {
			o.merged[id] = l
		}
	}
}

// Set makes l a workspace's entry in the limits file layer, as if the file
// listed every one of its fields, until the next LoadFile. For tests and
// tools that build limits in code.
func (o *Overrides) Set(id ID, l Limits) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("limits of workspace %s: %w", id, err)
	}
	b, err := yaml.Marshal(l)
	if err != nil {
		return fmt.Errorf("limits of workspace %s: %w", id, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	cfg, ok := o.config[id]
	if !ok {
		cfg = Unconfigured()
	}
	m, err := Merge(o.defaults, b, cfg)
	if err != nil {
		return fmt.Errorf("limits of workspace %s: %w", id, err)
	}
	o.file[id], o.merged[id] = b, m
	return nil
}
