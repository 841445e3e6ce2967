// Package scraper runs AMP's managed scrapers in the server: each scraper
// in the catalog gets Prometheus' discovery and scrape managers, whose
// samples go into the destination workspace through the remote write
// admission (the workspace's limits).
package scraper
