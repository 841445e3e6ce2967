package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
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
	// Principal is set in resource policies only (ParseResource): who the
	// statement is about.
	Principal *Principal `json:"Principal,omitempty"`
	// Condition, in resource policies only, limits when the statement
	// applies.
	Condition *Condition `json:"Condition,omitempty"`
}

// Principal is a resource policy statement's Principal: "*" or
// {"AWS": ARN or [ARN, …]}. Orrery's principals are its access keys and
// bearer tokens, all in the server's one account, named by IAM user ARNs:
// arn:aws:iam::ACCOUNT:user/KEY_ID and arn:aws:iam::ACCOUNT:user/token/ID.
// The account (ACCOUNT or arn:aws:iam::ACCOUNT:root) names every key and
// token of that account, and "*" every key and token.
type Principal struct {
	AWS stringOrSet `json:"AWS"`
}

func (p *Principal) UnmarshalJSON(b []byte) error {
	var star string
	if err := json.Unmarshal(b, &star); err == nil {
		if star != "*" {
			return fmt.Errorf("Principal %q: a string Principal must be \"*\"; name keys with {\"AWS\": \"arn:aws:iam::ACCOUNT:user/KEY_ID\"}", star)
		}
		p.AWS = []string{"*"}
		return nil
	}
	var m map[string]stringOrSet
	if err := json.Unmarshal(b, &m); err != nil {
		return errors.New(`Principal must be "*" or {"AWS": ARN or [ARN, ...]}`)
	}
	for k, v := range m {
		if k != "AWS" {
			return fmt.Errorf("Principal %q is not supported: Orrery's principals are its access keys and tokens, named under \"AWS\"", k)
		}
		p.AWS = v
	}
	if len(p.AWS) == 0 {
		return errors.New(`Principal names no one: give {"AWS": ARN or [ARN, ...]}`)
	}
	return nil
}

// matches reports whether the principal names caller, the caller's IAM
// user ARN (arn:aws:iam::ACCOUNT:user/NAME).
func (p *Principal) matches(caller string) bool {
	for _, n := range p.AWS {
		if n == "*" || n == caller {
			return true
		}
		account := n
		if rest, ok := strings.CutPrefix(n, "arn:aws:iam::"); ok {
			account, ok = strings.CutSuffix(rest, ":root")
			if !ok {
				continue
			}
		}
		if strings.HasPrefix(caller, "arn:aws:iam::"+account+":") {
			return true
		}
	}
	return false
}

// checkPrincipal validates one name of a Principal.
func checkPrincipal(n string) error {
	if n == "*" || accountRE.MatchString(n) || rootRE.MatchString(n) || userRE.MatchString(n) {
		return nil
	}
	return fmt.Errorf("Principal %q: name an access key or token (arn:aws:iam::ACCOUNT:user/KEY_ID, arn:aws:iam::ACCOUNT:user/token/ID), an account (ACCOUNT, arn:aws:iam::ACCOUNT:root) or \"*\"; wildcards are not allowed within a name", n)
}

var (
	accountRE = regexp.MustCompile(`^\d{12}$`)
	rootRE    = regexp.MustCompile(`^arn:aws:iam::\d{12}:root$`)
	userRE    = regexp.MustCompile(`^arn:aws:iam::\d{12}:user/(token/)?[A-Za-z0-9]+$`)
)

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

// Parse parses and validates an identity policy document (a key's or a
// token's). Errors name the statement and field at fault. Elements Orrery
// does not evaluate (NotAction, NotResource, NotPrincipal, and Condition
// outside resource policies), and Principal, which an identity policy
// cannot have, are rejected rather than ignored, so a policy never grants
// more than it reads as granting.
func Parse(doc []byte) (*Policy, error) { return parse(doc, false) }

// ParseResource parses and validates a resource policy document (a
// workspace's): as Parse, but every statement names its Principal, and may
// have a Condition (see Condition for the keys evaluated).
func ParseResource(doc []byte) (*Policy, error) { return parse(doc, true) }

func parse(doc []byte, resource bool) (*Policy, error) {
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
			supported := "Sid, Effect, Action, Resource"
			if resource {
				supported = "Sid, Effect, Principal, Action, Resource, Condition"
			}
			return nil, fmt.Errorf("policy Statement %d: %w (supported: %s)", i, err, supported)
		}
		switch {
		case resource && st.Principal == nil:
			return nil, fmt.Errorf("policy Statement %d: a resource policy statement needs a Principal", i)
		case !resource && st.Principal != nil:
			return nil, fmt.Errorf("policy Statement %d: Principal belongs in a workspace's resource policy, not in a key's or token's", i)
		case !resource && st.Condition != nil:
			return nil, fmt.Errorf("policy Statement %d: Condition is evaluated in a workspace's resource policy only, not in a key's or token's", i)
		}
		if st.Principal != nil {
			for _, n := range st.Principal.AWS {
				if err := checkPrincipal(n); err != nil {
					return nil, fmt.Errorf("policy Statement %d: %w", i, err)
				}
			}
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

// EvaluateFor evaluates a resource policy: as Evaluate, counting only the
// statements whose Principal names caller, the caller's IAM user ARN
// (arn:aws:iam::ACCOUNT:user/KEY_ID or …:user/token/ID), and whose
// Condition holds for the request's ctx.
func EvaluateFor(action, resource, caller string, ctx Context, p *Policy) Decision {
	if p == nil {
		return ImplicitDeny
	}
	d := ImplicitDeny
	for _, st := range p.Statement {
		if st.Principal == nil || !st.Principal.matches(caller) ||
			!anyMatch(st.Action, strings.ToLower(action), true) || !anyMatch(st.Resource, resource, false) || !st.Condition.holds(ctx) {
			continue
		}
		if st.Effect == Deny {
			return ExplicitDeny
		}
		d = Allowed
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
