package anomaly

import (
	"fmt"
	"math"
	"regexp"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

// Spec is what defines a detector, in the JSON of AMP's
// CreateAnomalyDetector and PutAnomalyDetector (the fields those two
// share): unions are objects with one member set.
type Spec struct {
	EvaluationIntervalInSeconds int                `json:"evaluationIntervalInSeconds,omitempty"`
	MissingDataAction           *MissingDataAction `json:"missingDataAction,omitempty"`
	Configuration               *Configuration     `json:"configuration"`
	Labels                      map[string]string  `json:"labels,omitempty"`
}

// MissingDataAction is AMP's union: a series without a value at an
// evaluation is an anomaly (MarkAsAnomaly) or is left out (Skip, the
// default).
type MissingDataAction struct {
	MarkAsAnomaly *bool `json:"markAsAnomaly,omitempty"`
	Skip          *bool `json:"skip,omitempty"`
}

// Configuration is AMP's AnomalyDetectorConfiguration union; Random Cut
// Forest is its one member.
type Configuration struct {
	RandomCutForest *RandomCutForest `json:"randomCutForest"`
}

// RandomCutForest is AMP's RandomCutForestConfiguration.
type RandomCutForest struct {
	Query                       string              `json:"query"`
	ShingleSize                 int                 `json:"shingleSize,omitempty"`
	SampleSize                  int                 `json:"sampleSize,omitempty"`
	IgnoreNearExpectedFromAbove *IgnoreNearExpected `json:"ignoreNearExpectedFromAbove,omitempty"`
	IgnoreNearExpectedFromBelow *IgnoreNearExpected `json:"ignoreNearExpectedFromBelow,omitempty"`
}

// IgnoreNearExpected is AMP's union of an amount and a ratio.
type IgnoreNearExpected struct {
	Amount *float64 `json:"amount,omitempty"`
	Ratio  *float64 `json:"ratio,omitempty"`
}

// Detector intervals and label limits. AMP's default interval is a minute;
// its API reference states no bounds for it nor for the labels, so these
// are Orrery's: an interval of at least 30 s keeps a detector's query
// load near a recording rule's, and a day is the longest that still learns
// within a model's history of a few hundred intervals.
const (
	DefaultInterval = 60
	MinInterval     = 30
	MaxInterval     = 86400
	maxLabels       = 20
)

// aggregations are the operators AMP accepts at the top of a detector's
// query: a detector models aggregates, not raw series.
var aggregations = map[parser.ItemType]bool{parser.AVG: true, parser.COUNT: true, parser.GROUP: true, parser.MAX: true,
	parser.MIN: true, parser.QUANTILE: true, parser.STDDEV: true, parser.STDVAR: true, parser.SUM: true}

var labelValueRE = regexp.MustCompile(`^[\x{0020}-\x{D7FF}\x{E000}-\x{FFFD}\x{10000}-\x{10FFFF}]+$`)

// Validate checks a spec as AMP does and fills in its defaults. The error
// names the first field at fault.
func (s *Spec) Validate() error {
	if s.EvaluationIntervalInSeconds == 0 {
		s.EvaluationIntervalInSeconds = DefaultInterval
	}
	if s.EvaluationIntervalInSeconds < MinInterval || s.EvaluationIntervalInSeconds > MaxInterval {
		return fmt.Errorf("evaluationIntervalInSeconds %d is not between %d and %d", s.EvaluationIntervalInSeconds, MinInterval, MaxInterval)
	}
	if m := s.MissingDataAction; m != nil {
		if (m.MarkAsAnomaly == nil) == (m.Skip == nil) {
			return fmt.Errorf("missingDataAction must set exactly one of markAsAnomaly and skip")
		}
	}
	if s.Configuration == nil || s.Configuration.RandomCutForest == nil {
		return fmt.Errorf("configuration.randomCutForest is required")
	}
	rcf := s.Configuration.RandomCutForest
	if err := ValidateQuery(rcf.Query); err != nil {
		return fmt.Errorf("configuration.randomCutForest.query: %w", err)
	}
	if _, err := s.ForestConfig(); err != nil {
		return fmt.Errorf("configuration.randomCutForest: %w", err)
	}
	if len(s.Labels) > maxLabels {
		return fmt.Errorf("labels: %d labels, at most %d", len(s.Labels), maxLabels)
	}
	for k, v := range s.Labels {
		if !model.LegacyValidation.IsValidLabelName(k) || len(k) > 128 || k[0] == '_' {
			return fmt.Errorf("labels: %q is not a label name (letters, digits, '_', not starting with '_' or a digit)", k)
		}
		if len(v) > 256 || !labelValueRE.MatchString(v) {
			return fmt.Errorf("labels: value of %q must be 1 to 256 printable characters", k)
		}
	}
	return nil
}

// ValidateQuery checks that q parses and is wrapped in one of the
// aggregation operators AMP accepts.
func ValidateQuery(q string) error {
	if q == "" {
		return fmt.Errorf("is empty")
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		return err
	}
	expr = unwrapParens(expr)
	agg, ok := expr.(*parser.AggregateExpr)
	if !ok || !aggregations[agg.Op] {
		return fmt.Errorf("%q must be wrapped in an aggregation: avg, count, group, max, min, quantile, stddev, stdvar or sum", q)
	}
	if expr.Type() != parser.ValueTypeVector {
		return fmt.Errorf("%q must return an instant vector", q)
	}
	return nil
}

func unwrapParens(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// ForestConfig returns the forest configuration of the spec, with AWS's
// RCF time decay so that the model follows a changing normal.
func (s *Spec) ForestConfig() (Config, error) {
	rcf := s.Configuration.RandomCutForest
	c := Config{ShingleSize: rcf.ShingleSize, SampleSize: rcf.SampleSize}.withDefaults()
	c.TimeDecay = 1 / (10 * float64(c.SampleSize))
	var err error
	if c.Above, err = near(rcf.IgnoreNearExpectedFromAbove); err != nil {
		return c, fmt.Errorf("ignoreNearExpectedFromAbove: %w", err)
	}
	if c.Below, err = near(rcf.IgnoreNearExpectedFromBelow); err != nil {
		return c, fmt.Errorf("ignoreNearExpectedFromBelow: %w", err)
	}
	return c, c.Validate()
}

func near(n *IgnoreNearExpected) (Near, error) {
	if n == nil {
		return Near{}, nil
	}
	if (n.Amount == nil) == (n.Ratio == nil) {
		return Near{}, fmt.Errorf("set exactly one of amount and ratio")
	}
	var out Near
	if n.Amount != nil {
		out.Amount = *n.Amount
	} else {
		out.Ratio = *n.Ratio
	}
	if !(out.Amount >= 0) || !(out.Ratio >= 0) || math.IsInf(out.Amount+out.Ratio, 0) {
		return Near{}, fmt.Errorf("must be a non-negative number")
	}
	return out, nil
}

// MarkMissing says whether a missing value is an anomaly.
func (s *Spec) MarkMissing() bool {
	return s.MissingDataAction != nil && s.MissingDataAction.MarkAsAnomaly != nil && *s.MissingDataAction.MarkAsAnomaly
}
