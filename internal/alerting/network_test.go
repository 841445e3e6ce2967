package alerting_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/alerting"
)

func TestParseNetworks(t *testing.T) {
	got, err := alerting.ParseNetworks(" 169.254.0.0/16, 10.1.2.3 ,fd00:ec2::254, 192.168.1.7/16,")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("10.1.2.3/32"),
		netip.MustParsePrefix("fd00:ec2::254/128"), netip.MustParsePrefix("192.168.0.0/16")}, got)
	got, err = alerting.ParseNetworks("")
	require.NoError(t, err)
	require.Empty(t, got)
	for _, bad := range []string{"10.0.0.0/33", "intranet", "10.0.0/8"} {
		_, err := alerting.ParseNetworks(bad)
		require.ErrorContains(t, err, bad)
	}
}
