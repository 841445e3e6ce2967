package alerting

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commoncfg "github.com/prometheus/common/config"
	"github.com/stretchr/testify/require"
)

// TestReceiverFirewall: with loopback denied, a receiver cannot reach a
// loopback listener through the unspecified addresses or IPv4-mapped
// forms; and the unspecified addresses are refused even with nothing
// denied.
func TestReceiverFirewall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("reached")) }))
	defer srv.Close()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	// A second listener on [::1], when the host has IPv6 loopback.
	var port6 string
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		srv6 := &httptest.Server{Listener: ln, Config: &http.Server{Handler: srv.Config.Handler}}
		srv6.Start()
		defer srv6.Close()
		_, port6, _ = net.SplitHostPort(ln.Addr().String())
	}
	get := func(t *testing.T, networks, url string) error {
		denied, err := ParseNetworks(networks)
		require.NoError(t, err)
		c, err := commoncfg.NewClientFromConfig(commoncfg.HTTPClientConfig{}, "test", httpOptions(denied)...)
		require.NoError(t, err)
		resp, err := c.Get(url)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	const loopback = "127.0.0.0/8,::1/128"
	for _, c := range []struct {
		networks, host string
		six            bool
		refused        bool
	}{
		{loopback, "127.0.0.1", false, true},
		{loopback, "0.0.0.0", false, true},
		{loopback, "[::ffff:127.0.0.1]", false, true},
		{"::ffff:127.0.0.0/104", "127.0.0.1", false, true},
		{"", "0.0.0.0", false, true},
		{"", "0.1.2.3", false, true},
		{"", "127.0.0.1", false, false},
		{loopback, "[::]", true, true},
		{loopback, "[::1]", true, true},
		{"", "[::]", true, true},
		{"", "[::1]", true, false},
	} {
		t.Run(c.networks+" "+c.host, func(t *testing.T) {
			p := port
			if c.six {
				if port6 == "" {
					t.Skip("no IPv6 loopback")
				}
				p = port6
			}
			err := get(t, c.networks, "http://"+c.host+":"+p+"/")
			if !c.refused {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			if !strings.Contains(err.Error(), "may not reach") {
				t.Fatalf("refused for another reason than the firewall: %v", err)
			}
		})
	}
}
