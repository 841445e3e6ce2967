package ingest

import (
	"fmt"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// yolo views b as a string without copying. The string must not outlive b.
func yolo(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// seriesError says why a series was rejected. Reason is a stable, short
// label value for metrics.
type seriesError struct {
	Reason string
	Msg    string
}

func (e *seriesError) Error() string { return e.Msg }

// describe renders wire labels for an error message, at most ~200 bytes.
func describe(ls []Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
		if b.Len() > 200 {
			b.WriteString(", …")
			break
		}
	}
	b.WriteByte('}')
	return b.String()
}

// buildLabels validates wire labels against the workspace's limits and
// returns them as sorted labels.Labels (empty values dropped). sb is
// scratch space.
func buildLabels(ls []Label, lim *workspace.Limits, sb *labels.ScratchBuilder) (labels.Labels, *seriesError) {
	scheme := lim.ValidationScheme()
	sb.Reset()
	n := 0
	hasName := false
	for _, l := range ls {
		if len(l.Value) == 0 {
			continue
		}
		n++
		name := yolo(l.Name)
		if lim.MaxLabelNameLength > 0 && len(l.Name) > lim.MaxLabelNameLength {
			return labels.EmptyLabels(), &seriesError{"label_name_too_long", fmt.Sprintf(
				"label name %.40q… is %d bytes long, more than the workspace's limit of %d, in series %s",
				name, len(name), lim.MaxLabelNameLength, describe(ls))}
		}
		if lim.MaxLabelValueLength > 0 && len(l.Value) > lim.MaxLabelValueLength {
			return labels.EmptyLabels(), &seriesError{"label_value_too_long", fmt.Sprintf(
				"value of label %q is %d bytes long, more than the workspace's limit of %d, in series %s",
				name, len(l.Value), lim.MaxLabelValueLength, describe(ls))}
		}
		if name == model.MetricNameLabel {
			hasName = true
			if !scheme.IsValidMetricName(yolo(l.Value)) {
				return labels.EmptyLabels(), &seriesError{"invalid_metric_name", fmt.Sprintf(
					"invalid metric name %q in series %s", l.Value, describe(ls))}
			}
		} else if !scheme.IsValidLabelName(name) {
			return labels.EmptyLabels(), &seriesError{"invalid_label_name", fmt.Sprintf(
				"invalid label name %q in series %s", name, describe(ls))}
		}
		if !utf8.Valid(l.Value) {
			return labels.EmptyLabels(), &seriesError{"invalid_label_value", fmt.Sprintf(
				"value of label %q is not valid UTF-8 in series %s", name, describe(ls))}
		}
		sb.Add(name, yolo(l.Value))
	}
	if !hasName {
		return labels.EmptyLabels(), &seriesError{"missing_metric_name", fmt.Sprintf(
			"series %s has no metric name (label __name__)", describe(ls))}
	}
	if lim.MaxLabelNamesPerSeries > 0 && n > lim.MaxLabelNamesPerSeries {
		return labels.EmptyLabels(), &seriesError{"too_many_labels", fmt.Sprintf(
			"series %s has %d labels, more than the workspace's limit of %d", describe(ls), n, lim.MaxLabelNamesPerSeries)}
	}
	sb.Sort()
	lset := sb.Labels() // Copies the bytes: the result does not alias the request.
	if dup, ok := lset.HasDuplicateLabelNames(); ok {
		return labels.EmptyLabels(), &seriesError{"duplicate_label_names", fmt.Sprintf(
			"duplicate label name %q in series %s", dup, describe(ls))}
	}
	return lset, nil
}
