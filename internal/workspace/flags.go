package workspace

import (
	"flag"

	"github.com/prometheus/common/model"
)

// RegisterFlags registers the default limits' flags on fs (--limits.*),
// with l's values as their defaults. They are the first of the three
// layers Merge reads: defaults, the limits file, the API.
func (l *Limits) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&l.MaxLabelNamesPerSeries, "limits.max-label-names-per-series", l.MaxLabelNamesPerSeries, "default: labels per series")
	fs.IntVar(&l.MaxLabelNameLength, "limits.max-label-name-length", l.MaxLabelNameLength, "default: bytes per label name")
	fs.IntVar(&l.MaxLabelValueLength, "limits.max-label-value-length", l.MaxLabelValueLength, "default: bytes per label value")
	fs.Float64Var(&l.IngestionRate, "limits.ingestion-rate", l.IngestionRate, "default: samples per second per workspace (0: unlimited)")
	fs.IntVar(&l.IngestionBurstSize, "limits.ingestion-burst-size", l.IngestionBurstSize, "default: ingestion burst, in samples")
	fs.IntVar(&l.MaxActiveSeries, "limits.max-active-series", l.MaxActiveSeries, "default: active series per workspace (0: unlimited)")
	fs.IntVar(&l.MaxRequestBytes, "limits.max-request-bytes", l.MaxRequestBytes, "default: compressed remote write body size")
	fs.IntVar(&l.MaxDecodedRequestBytes, "limits.max-decoded-request-bytes", l.MaxDecodedRequestBytes, "default: decompressed remote write body size")
	fs.Var(durationFlag{&l.OutOfOrderWindow}, "limits.out-of-order-window", "default: out-of-order window (max 10m)")
	fs.IntVar(&l.MaxExemplars, "limits.max-exemplars", l.MaxExemplars, "default: exemplars kept in memory per workspace")
	fs.StringVar(&l.NameValidation, "limits.name-validation-scheme", l.NameValidation, "default: metric and label name validation, utf8 or legacy")
	fs.StringVar(&l.HAClusterLabel, "limits.ha-cluster-label", l.HAClusterLabel, "default: HA pair cluster label (empty: no deduplication)")
	fs.StringVar(&l.HAReplicaLabel, "limits.ha-replica-label", l.HAReplicaLabel, "default: HA pair replica label, dropped on ingestion")
	fs.Var(durationFlag{&l.HAFailoverTimeout}, "limits.ha-failover-timeout", "default: time after which another HA replica is elected")
	fs.Var(durationFlag{&l.RetentionPeriod}, "limits.retention", "default: how long data is kept")
	fs.Var(durationFlag{&l.QueryTimeout}, "limits.query-timeout", "default: query evaluation timeout")
	fs.IntVar(&l.MaxQuerySamples, "limits.max-query-samples", l.MaxQuerySamples, "default: samples a query may load into memory at once (0: unlimited)")
	fs.Var(durationFlag{&l.MaxQueryRange}, "limits.max-query-range", "default: longest time range of a range query (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxAlerts, "limits.alertmanager-max-alerts", l.AlertmanagerMaxAlerts, "default: alerts an alert manager holds (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxAlertsSizeBytes, "limits.alertmanager-max-alerts-size-bytes", l.AlertmanagerMaxAlertsSizeBytes, "default: total size of the labels and annotations of an alert manager's alerts (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxAggregationGroups, "limits.alertmanager-max-aggregation-groups", l.AlertmanagerMaxAggregationGroups, "default: aggregation groups per alert manager (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxSilences, "limits.alertmanager-max-silences", l.AlertmanagerMaxSilences, "default: silences per alert manager, expired ones included until their retention ends (0: unlimited)")
	fs.IntVar(&l.AlertmanagerMaxSilenceSizeBytes, "limits.alertmanager-max-silence-size-bytes", l.AlertmanagerMaxSilenceSizeBytes, "default: bytes per silence (0: unlimited)")
	fs.IntVar(&l.MaxRuleGroups, "limits.max-rule-groups", l.MaxRuleGroups, "default: rule groups in all rule groups namespaces of a workspace (0: unlimited)")
	fs.IntVar(&l.MaxRulesPerRuleGroup, "limits.max-rules-per-rule-group", l.MaxRulesPerRuleGroup, "default: rules in one rule group (0: unlimited)")
}

// durationFlag adapts model.Duration (which knows "150d") to flag.Value.
type durationFlag struct{ d *model.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}
