package agent

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/relabel"
)

// nodeLabels are the discovered labels that name the Kubernetes node a
// target runs on, for each role that has one.
var nodeLabels = model.LabelNames{
	"__meta_kubernetes_pod_node_name",      // role pod
	"__meta_kubernetes_node_name",          // role node
	"__meta_kubernetes_endpoint_node_name", // roles endpoints, endpointslice
}

// shard puts sharding rules in front of every scrape config's
// relabel_configs:
//
//   - node (a DaemonSet's agent): targets that carry a node label keep only
//     those on this node; targets without one (static, file, DNS, HTTP)
//     are kept, as they name no node. Like Grafana Agent's host filter.
//   - shards > 1 (a static fleet of agents): a target is kept by the agent
//     whose shard equals hashmod(__address__, shards).
func shard(cfg *config.Config, node string, shard, shards int) error {
	var rules []*relabel.Config
	if node != "" {
		q := regexp.QuoteMeta(node)
		rules = append(rules, &relabel.Config{
			SourceLabels: nodeLabels, Separator: ";",
			// Each node label is either absent or this node.
			Regex:  relabel.MustNewRegexp(fmt.Sprintf("(%s)?;(%s)?;(%s)?", q, q, q)),
			Action: relabel.Keep, Replacement: "$1",
		})
	}
	if shards > 1 {
		rules = append(rules,
			&relabel.Config{SourceLabels: model.LabelNames{model.AddressLabel}, Separator: ";", Regex: relabel.MustNewRegexp("(.*)"),
				Modulus: uint64(shards), TargetLabel: "__tmp_orrery_shard", Action: relabel.HashMod, Replacement: "$1"},
			&relabel.Config{SourceLabels: model.LabelNames{"__tmp_orrery_shard"}, Separator: ";",
				Regex: relabel.MustNewRegexp(strconv.Itoa(shard)), Action: relabel.Keep, Replacement: "$1"},
		)
	}
	if len(rules) == 0 {
		return nil
	}
	scfgs, err := cfg.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("read scrape configs: %w", err)
	}
	for _, sc := range scfgs {
		own := make([]*relabel.Config, 0, len(rules)+len(sc.RelabelConfigs))
		for _, r := range rules {
			c := *r
			c.NameValidationScheme = sc.MetricNameValidationScheme
			if err := c.Validate(c.NameValidationScheme); err != nil {
				return fmt.Errorf("sharding rule for job %s: %w", sc.JobName, err)
			}
			own = append(own, &c)
		}
		sc.RelabelConfigs = append(own, sc.RelabelConfigs...)
	}
	return nil
}
