package agent

import (
	"fmt"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/stretchr/testify/require"
)

func loadConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(`scrape_configs:
  - job_name: sidecars
    static_configs: [{targets: [a:1]}]
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
`, nil)
	require.NoError(t, err)
	return cfg
}

func keep(t *testing.T, cfg *config.Config, ls labels.Labels) bool {
	t.Helper()
	scs, err := cfg.GetScrapeConfigs()
	require.NoError(t, err)
	return relabel.ProcessBuilder(labels.NewBuilder(ls), scs[0].RelabelConfigs...)
}

func TestShardByNode(t *testing.T) {
	cfg := loadConfig(t)
	require.NoError(t, shard(cfg, "node-a.example", 0, 1))
	scs, _ := cfg.GetScrapeConfigs()
	require.Len(t, scs[0].RelabelConfigs, 2, "the node rule goes first, the user's rules stay")
	for _, c := range []struct {
		labels []string
		want   bool
	}{
		{[]string{model.AddressLabel, "10.0.0.1:15090", "__meta_kubernetes_pod_node_name", "node-a.example"}, true},
		{[]string{model.AddressLabel, "10.0.0.2:15090", "__meta_kubernetes_pod_node_name", "node-b.example"}, false},
		{[]string{model.AddressLabel, "10.0.0.2:15090", "__meta_kubernetes_pod_node_name", "node-aXexample"}, false},
		{[]string{model.AddressLabel, "10.0.0.3:9100", "__meta_kubernetes_node_name", "node-a.example"}, true},
		{[]string{model.AddressLabel, "10.0.0.4:8080", "__meta_kubernetes_endpoint_node_name", "node-a.example",
			"__meta_kubernetes_pod_node_name", "node-a.example"}, true},
		{[]string{model.AddressLabel, "10.0.0.5:8080", "__meta_kubernetes_endpoint_node_name", "node-b.example"}, false},
		{[]string{model.AddressLabel, "static.example:9100"}, true}, // names no node.
	} {
		require.Equal(t, c.want, keep(t, cfg, labels.FromStrings(c.labels...)), "%v", c.labels)
	}
}

func TestShardByHash(t *testing.T) {
	const shards = 3
	cfgs := make([]*config.Config, shards)
	for i := range cfgs {
		cfgs[i] = loadConfig(t)
		require.NoError(t, shard(cfgs[i], "", i, shards))
	}
	per := make([]int, shards)
	for n := range 300 {
		ls := labels.FromStrings(model.AddressLabel, fmt.Sprintf("10.0.%d.%d:15090", n/250, n%250))
		kept := 0
		for i, cfg := range cfgs {
			if keep(t, cfg, ls) {
				kept++
				per[i]++
			}
		}
		require.Equal(t, 1, kept, "target %s is scraped by exactly one agent", ls)
	}
	for i, n := range per {
		require.Greater(t, n, 50, "shard %d gets its share", i)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{DataDir: "d"},
		{ConfigFile: "c"},
		{ConfigFile: "c", DataDir: "d", Shards: 2, Shard: 2},
		{ConfigFile: "c", DataDir: "d", MinWALTime: 10, MaxWALTime: 5},
	} {
		require.Error(t, c.Validate(), "%+v", c)
	}
	ok := Config{ConfigFile: "c", DataDir: "d", Shards: 2, Shard: 1}
	require.NoError(t, ok.Validate())
}
