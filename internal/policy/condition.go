package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Condition is a resource policy statement's Condition block:
// {"Operator": {"key": value or [values]}}. Orrery evaluates the keys it
// knows of every request: aws:SourceIp with IpAddress and NotIpAddress,
// aws:SecureTransport with Bool. Any other operator or key is refused when
// the policy is put, so that a condition never silently holds. The
// statement applies when every operator and key holds, a key when one of
// its values does (IAM's AND of keys, OR of values).
type Condition struct {
	raw   json.RawMessage
	tests []conditionTest
}

type conditionTest struct {
	negate   bool           // NotIpAddress.
	prefixes []netip.Prefix // IpAddress, NotIpAddress.
	secure   *bool          // Bool on aws:SecureTransport.
}

// Context is what a request's conditions are evaluated against.
type Context struct {
	// SourceIP is the address the request came from (the TCP peer: behind
	// a proxy, the proxy's); the zero Addr when unknown, which no
	// IpAddress matches.
	SourceIP netip.Addr
	// SecureTransport: the request came over TLS.
	SecureTransport bool
}

func (c *Condition) UnmarshalJSON(b []byte) error {
	var m map[string]map[string]stringOrSet
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf(`Condition must be {"Operator": {"key": value or [values]}}: %w`, err)
	}
	ops := make([]string, 0, len(m))
	for op := range m {
		ops = append(ops, op)
	}
	slices.Sort(ops) // The first error named is always the same.
	for _, op := range ops {
		if len(m[op]) == 0 {
			return fmt.Errorf("Condition %s names no key", op)
		}
		for key, vals := range m[op] {
			if len(vals) == 0 {
				return fmt.Errorf("Condition %s on %s has no value", op, key)
			}
			var t conditionTest
			switch {
			case (op == "IpAddress" || op == "NotIpAddress") && strings.EqualFold(key, "aws:SourceIp"):
				t.negate = op == "NotIpAddress"
				for _, v := range vals {
					p, err := netip.ParsePrefix(v)
					if err != nil {
						a, aerr := netip.ParseAddr(v)
						if aerr != nil {
							return fmt.Errorf("Condition %s on aws:SourceIp: %q is neither an address nor a CIDR block", op, v)
						}
						p = netip.PrefixFrom(a, a.BitLen())
					}
					t.prefixes = append(t.prefixes, p.Masked())
				}
			case op == "Bool" && strings.EqualFold(key, "aws:SecureTransport"):
				if len(vals) != 1 || (vals[0] != "true" && vals[0] != "false") {
					return fmt.Errorf(`Condition Bool on aws:SecureTransport: want "true" or "false", not %q`, strings.Join(vals, ","))
				}
				secure := vals[0] == "true"
				t.secure = &secure
			default:
				return fmt.Errorf("Condition %s on %s is not supported: Orrery evaluates IpAddress and NotIpAddress on aws:SourceIp, and Bool on aws:SecureTransport", op, key)
			}
			c.tests = append(c.tests, t)
		}
	}
	c.raw = append(json.RawMessage(nil), b...)
	return nil
}

func (c *Condition) MarshalJSON() ([]byte, error) {
	if c.raw == nil {
		return nil, errors.New("condition was not parsed")
	}
	return c.raw, nil
}

// holds reports whether every test of c holds for ctx; a nil Condition
// always holds.
func (c *Condition) holds(ctx Context) bool {
	if c == nil {
		return true
	}
	for _, t := range c.tests {
		if t.secure != nil {
			if *t.secure != ctx.SecureTransport {
				return false
			}
			continue
		}
		in := ctx.SourceIP.IsValid() && slices.ContainsFunc(t.prefixes, func(p netip.Prefix) bool { return p.Contains(ctx.SourceIP.Unmap()) })
		if in == t.negate {
			return false
		}
	}
	return true
}
