// Package ingest receives Prometheus remote write (1.0 and 2.0) for a
// workspace: it decodes requests without reflection and without per-sample
// allocation, validates series against the workspace's limits, deduplicates
// high-availability pairs, and hands the result to an Appender.
package ingest
