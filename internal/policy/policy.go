package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Effect of a statement.
type Effect string

// Statement effects.
const (
	Allow Effect = "Allow"
	Deny  Effect = "Deny"
)

// Statement is one policy statement.
type Statement struct {
	Sid      string      `json:"Sid,omitempty"`
	Effect   Effect      `json:"Effect"`
	Action   stringOrSet `json:"Action"`
	Resource stringOrSet `json:"Resource"`
}

// Policy is a parsed policy document. The zero Policy allows nothing.
type Policy struct {
	Version   string      `json:"Version,omitempty"`
	Statement []Statement `json:"Statement"`
}

// stringOrSet is IAM's "a string or a list of strings".
type stringOrSet []string

func (s *stringOrSet) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("must be a string or a list of strings")
	}
	*s = many
	return nil
}

// Parse parses and validates a policy document. Errors name the statement
// and field at fault. Elements Orrery does not evaluate (NotAction,
// NotResource, Principal, Condition) are rejected rather than ignored, so a
// policy never grants more than it reads as granting.
func Parse(doc []byte) (*Policy, error) {
	var raw struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
		Extra     map[string]any  `json:"-"`
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("policy document: %w", err)
	}
	if raw.Version != "" && raw.Version != "2012-10-17" && raw.Version != "2008-10-17" {
		return nil, fmt.Errorf("policy Version %q: use \"2012-10-17\"", raw.Version)
	}
	if len(raw.Statement) == 0 {
		return nil, errors.New("policy document has no Statement")
	}
	var stmts []json.RawMessage
	if raw.Statement[0] == '{' {
		stmts = []json.RawMessage{raw.Statement}
	} else if err := json.Unmarshal(raw.Statement, &stmts); err != nil {
		return nil, fmt.Errorf("policy Statement: must be an object or a list of objects")
	}
	p := &Policy{Version: raw.Version}
	for i, rs := range stmts {
		var st Statement
		d := json.NewDecoder(bytes.NewReader(rs))
		d.DisallowUnknownFields()
		if err := d.Decode(&st); err != nil {
			return nil, fmt.Errorf("policy Statement %d: %w (supported: Sid, Effect, Action, Resource)", i, err)
		}
		if st.Effect != Allow && st.Effect != Deny {
			return nil, fmt.Errorf("policy Statement %d: Effect %q must be \"Allow\" or \"Deny\"", i, st.Effect)
		}
		if len(st.Action) == 0 || len(st.Resource) == 0 {
			return nil, fmt.Errorf("policy Statement %d: needs at least one Action and one Resource", i)
		}
		for _, a := range st.Action {
			if a != "*" && !strings.Contains(a, ":") {
				return nil, fmt.Errorf("policy Statement %d: Action %q must look like service:Operation (e.g. aps:RemoteWrite)", i, a)
			}
		}
		for _, r := range st.Resource {
			if r != "*" && !strings.HasPrefix(r, "arn:") {
				return nil, fmt.Errorf("policy Statement %d: Resource %q must be an ARN or *", i, r)
			}
		}
		p.Statement = append(p.Statement, st)
	}
	return p, nil
}

// Decision is the outcome of evaluating policies for a request.
type Decision int

// Decisions. ImplicitDeny: no statement allowed the request.
const (
	ImplicitDeny Decision = iota
	Allowed
	ExplicitDeny
)

func (d Decision) String() string {
	switch d {
	case Allowed:
		return "allowed"
	case ExplicitDeny:
		return "explicitly denied"
	default:
		return "not allowed"
	}
}

// Evaluate decides whether action on resource is allowed by the policies
// together: any matching Deny wins, otherwise any matching Allow allows.
// Actions match case-insensitively, resources case-sensitively; both take
// the wildcards * (any run) and ? (one character).
func Evaluate(action, resource string, policies ...*Policy) Decision {
	d := ImplicitDeny
	for _, p := range policies {
		if p == nil {
			continue
		}
		for _, st := range p.Statement {
			if !anyMatch(st.Action, strings.ToLower(action), true) || !anyMatch(st.Resource, resource, false) {
				continue
			}
			if st.Effect == Deny {
				return ExplicitDeny
			}
			d = Allowed
		}
	}
	return d
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p = strings.ToLower(p)
		}
		if wildcard(p, s) {
			return true
		}
	}
	return false
}

// wildcard matches s against a pattern with * and ?, in linear time.
func wildcard(p, s string) bool {
	var pi, si, star, mark = 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
