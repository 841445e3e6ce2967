package alerting

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	commoncfg "github.com/prometheus/common/config"
)

// httpOptions returns the receivers' HTTP client options for the denied
// networks.
func httpOptions(denied []netip.Prefix) []commoncfg.HTTPClientOption {
	if o := deniedDialer(denied); o != nil {
		return []commoncfg.HTTPClientOption{o}
	}
	return nil
}

// deniedDialer returns the HTTP client option that makes every receiver's
// connection (webhook, Slack, PagerDuty, Opsgenie, VictorOps, SNS, …)
// refuse addresses in denied. The address is checked after name
// resolution, on each address dialled, so a name that resolves (or comes
// to resolve) into a denied network is refused too. With no networks it
// returns nil: receivers dial as Alertmanager does.
func deniedDialer(denied []netip.Prefix) commoncfg.HTTPClientOption {
	if len(denied) == 0 {
		return nil
	}
	d := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("receiver address %s: %w", address, err)
			}
			ip := ap.Addr().Unmap()
			for _, p := range denied {
				if p.Contains(ip) {
					return fmt.Errorf("receiver address %s is in %s, a network receivers may not reach (--alertmanager.deny-receiver-networks)", address, p)
				}
			}
			return nil
		},
	}
	return commoncfg.WithDialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	})
}

// ParseNetworks parses a comma-separated list of CIDR prefixes (or single
// addresses), as --alertmanager.deny-receiver-networks takes them.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("network %q: want a CIDR prefix such as 169.254.0.0/16 or an address: %w", f, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
