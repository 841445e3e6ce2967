package cortex

import (
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// TenantLimits maps a workspace's limits onto Cortex's per-tenant limits
// (the runtime configuration's overrides), so that Cortex enforces what
// Orrery's replicas cannot see alone: series counts, label set limits,
// retention, the out-of-order window, query and Alertmanager limits.
// Zero means unlimited in both. Limits Orrery already enforces before
// forwarding (request sizes, label validation, HA deduplication) are
// mapped too where Cortex has them, so neither refuses what the other
// admits. Cortex's series-per-metric limit (50,000 by default), which
// Orrery does not have, is lifted: it refuses Envoy histograms at scale.
func TenantLimits(l workspace.Limits) map[string]any {
	m := map[string]any{
		"ingestion_rate":                                 l.IngestionRate,
		"ingestion_burst_size":                           l.IngestionBurstSize,
		"max_label_names_per_series":                     l.MaxLabelNamesPerSeries,
		"max_label_name_length":                          l.MaxLabelNameLength,
		"max_label_value_length":                         l.MaxLabelValueLength,
		"max_series_per_metric":                          0,
		"max_global_series_per_metric":                   0,
		"max_series_per_user":                            0,
		"max_global_series_per_user":                     l.MaxActiveSeries,
		"enable_native_histograms":                       true,
		"out_of_order_time_window":                       time.Duration(l.OutOfOrderWindow).String(),
		"max_exemplars":                                  l.MaxExemplars,
		"compactor_blocks_retention_period":              time.Duration(l.RetentionPeriod).String(),
		"max_query_length":                               time.Duration(l.MaxQueryRange).String(),
		"alertmanager_max_alerts_count":                  l.AlertmanagerMaxAlerts,
		"alertmanager_max_alerts_size_bytes":             l.AlertmanagerMaxAlertsSizeBytes,
		"alertmanager_max_dispatcher_aggregation_groups": l.AlertmanagerMaxAggregationGroups,
		"alertmanager_max_silences_count":                l.AlertmanagerMaxSilences,
		"alertmanager_max_silences_size_bytes":           l.AlertmanagerMaxSilenceSizeBytes,
		"ruler_max_rule_groups_per_tenant":               l.MaxRuleGroups,
		"ruler_max_rules_per_rule_group":                 l.MaxRulesPerRuleGroup,
	}
	if l.HAClusterLabel != "" && l.HAReplicaLabel != "" {
		// HA pairs are deduplicated by Cortex's HA tracker, whose
		// election all replicas share (IngestLimits turns Orrery's own
		// per-replica election off). It needs
		// distributor.ha_tracker.enable_ha_tracker and a KV store.
		m["accept_ha_samples"] = true
		m["ha_cluster_label"] = l.HAClusterLabel
		m["ha_replica_label"] = l.HAReplicaLabel
	}
	if len(l.LabelSetLimits) > 0 {
		sets := make([]map[string]any, 0, len(l.LabelSetLimits))
		for _, s := range l.LabelSetLimits {
			sets = append(sets, map[string]any{"label_set": s.LabelSet, "limits": map[string]any{"max_series": s.MaxSeries}})
		}
		m["limits_per_label_set"] = sets
	}
	return m
}

// RuntimeConfig renders Cortex's runtime configuration file (the
// `overrides` section) for the given workspaces' limits.
func RuntimeConfig(tenants map[workspace.ID]workspace.Limits) ([]byte, error) {
	ov := make(map[string]map[string]any, len(tenants))
	for id, l := range tenants {
		ov[id.String()] = TenantLimits(l)
	}
	return yaml.Marshal(map[string]any{"overrides": ov})
}

// IngestLimits adapts workspace limits for the ingest handler of the
// Cortex engine: HA-pair deduplication is left to Cortex's HA tracker,
// since each replica's own election would accept both members of a pair
// whose requests reach different replicas.
type IngestLimits struct{ workspace.LimitsSource }

// Limits implements workspace.LimitsSource.
func (l IngestLimits) Limits(id workspace.ID) workspace.Limits {
	lim := l.LimitsSource.Limits(id)
	lim.HAClusterLabel, lim.HAReplicaLabel = "", ""
	return lim
}
