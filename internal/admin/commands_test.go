package admin

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunConnectionRefused: with nothing at the URL, the admin verbs say
// how to name the server.
func TestRunConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"workspaces", "list", "--url", "http://" + addr}, nil},
		{"environment", []string{"workspaces", "list"}, map[string]string{"ORRERY_URL": "http://" + addr}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			getenv := func(k string) string { return c.env[k] }
			code := Run(context.Background(), c.args, getenv, &stdout, &stderr)
			require.Equal(t, 1, code)
			require.Contains(t, stderr.String(), "nothing listens at http://"+addr)
			require.Contains(t, stderr.String(), "--url or ORRERY_URL")
		})
	}
}
