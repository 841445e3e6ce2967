// Package agent is `orrery agent`: Prometheus' scrape, discovery, agent WAL
// and remote write packages assembled as Prometheus' own agent mode does,
// plus node-local and hashmod sharding, a targets API and config reload.
package agent
