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

// alwaysDenied are networks no receiver is ever at: the unspecified
// addresses, which a dialler takes for this host (0.0.0.0 and [::] reach
// loopback listeners), and the rest of 0.0.0.0/8 ("this network").
var alwaysDenied = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("::/128")}

// httpOptions returns the receivers' HTTP client options for the denied
// networks.
func httpOptions(denied []netip.Prefix) []commoncfg.HTTPClientOption {
	return []commoncfg.HTTPClientOption{deniedDialer(denied)}
}

// deniedDialer returns the HTTP client option that makes every receiver's
// connection (webhook, Slack, PagerDuty, Opsgenie, VictorOps, SNS, …)
// refuse addresses in denied, and the unspecified addresses always. The
// address is checked after name resolution, on each address dialled, so a
// name that resolves (or comes to resolve) into a denied network is
// refused too; IPv4-mapped IPv6 addresses are checked as the IPv4
// addresses they are, against both forms of each network.
func deniedDialer(denied []netip.Prefix) commoncfg.HTTPClientOption {
	all := append(append([]netip.Prefix(nil), alwaysDenied...), denied...)
	d := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("receiver address %s: %w", address, err)
			}
			if p, ok := deniedBy(all, ap.Addr()); ok {
				return fmt.Errorf("receiver address %s is in %s, a network receivers may not reach (--alertmanager.deny-receiver-networks)", address, p)
			}
			return nil
		},
	}
	return commoncfg.WithDialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	})
}

// deniedBy returns the network of denied that holds ip, comparing ip and
// each network in their IPv4 form when they have one.
func deniedBy(denied []netip.Prefix, ip netip.Addr) (netip.Prefix, bool) {
	ip = ip.WithZone("").Unmap()
	for _, p := range denied {
		if unmapPrefix(p).Contains(ip) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// unmapPrefix returns an IPv4-mapped IPv6 network (::ffff:a.b.c.d/96+n) as
// the IPv4 network a.b.c.d/n it stands for, and other networks as they are.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p
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
