package ingest

import "github.com/prometheus/prometheus/model/labels"

func labelsFromStrings(ss ...string) labels.Labels { return labels.FromStrings(ss...) }
