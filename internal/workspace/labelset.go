package workspace

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// LabelSetLimit bounds the active series that carry every label of a label
// set, as AMP's limitsPerLabelSet does. An empty label set is the default
// bucket: series that match no other label set of the workspace.
// MaxSeries 0 enforces nothing.
type LabelSetLimit struct {
	LabelSet  map[string]string `yaml:"label_set" json:"labelSet"`
	MaxSeries int               `yaml:"max_series" json:"maxSeries"`
}

// MaxLabelSetLimits is how many label sets a workspace may limit.
const MaxLabelSetLimits = 100

// String formats the label set as Prometheus does ({a="b", c="d"}).
func (l LabelSetLimit) String() string {
	if len(l.LabelSet) == 0 {
		return "{} (the default bucket)"
	}
	return labels.FromMap(l.LabelSet).String()
}

// Matches reports whether lset carries every label of the set. The empty
// set matches nothing here: the default bucket is decided by the caller,
// which knows the other sets.
func (l LabelSetLimit) Matches(lset labels.Labels) bool {
	if len(l.LabelSet) == 0 {
		return false
	}
	for k, v := range l.LabelSet {
		if lset.Get(k) != v {
			return false
		}
	}
	return true
}

// ValidateLabelSetLimits checks a workspace's label set limits as AMP does.
func ValidateLabelSetLimits(ls []LabelSetLimit) error {
	if len(ls) > MaxLabelSetLimits {
		return fmt.Errorf("at most %d label sets may be limited, not %d", MaxLabelSetLimits, len(ls))
	}
	seen := map[string]bool{}
	for i, l := range ls {
		if l.MaxSeries < 0 {
			return fmt.Errorf("label set %d (%s): maxSeries must not be negative", i, l)
		}
		for k, v := range l.LabelSet {
			if !model.UTF8Validation.IsValidLabelName(k) || k == "" {
				return fmt.Errorf("label set %d: %q is not a valid label name", i, k)
			}
			if strings.TrimSpace(v) == "" {
				return fmt.Errorf("label set %d: the value of %s must have a character that is not white space", i, k)
			}
			for _, r := range v {
				if r < 0x20 || r > 0x7e {
					return fmt.Errorf("label set %d: the value of %s must be printable ASCII", i, k)
				}
			}
			if k == model.MetricNameLabel && !model.LegacyValidation.IsValidMetricName(v) {
				return fmt.Errorf("label set %d: %q is not a valid metric name", i, v)
			}
		}
		key := labels.FromMap(l.LabelSet).String()
		if seen[key] {
			return fmt.Errorf("label set %s is given twice", l)
		}
		seen[key] = true
	}
	return nil
}

// LabelSetsOf returns the indexes of the limits that apply to lset: those
// whose set it carries, or else the default bucket's, if there is one.
func LabelSetsOf(ls []LabelSetLimit, lset labels.Labels, out []int) []int {
	out = out[:0]
	def := -1
	for i, l := range ls {
		if len(l.LabelSet) == 0 {
			def = i
			continue
		}
		if l.Matches(lset) {
			out = append(out, i)
		}
	}
	if len(out) == 0 && def >= 0 {
		out = append(out, def)
	}
	return out
}

// Equal reports whether two Limits are the same. (Limits holds a slice,
// so == does not compile.)
func (l Limits) Equal(o Limits) bool { return reflect.DeepEqual(l, o) }
