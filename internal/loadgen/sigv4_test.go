package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/auth"
)

// TestSigV4: signed load verifies with the server's own SigV4 verifier,
// body included; a wrong secret does not.
func TestSigV4(t *testing.T) {
	var verified, refused atomic.Int64
	v := &auth.Verifier{Service: "aps", Region: "us-east-1", SignedBody: true, MaxBodyBytes: 1 << 20,
		Secrets: func(id string) (string, bool, error) { return "secret", id == "AKIALOADGEN", nil }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := v.Verify(r); err != nil {
			refused.Add(1)
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		verified.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	cfg := Config{URL: srv.URL + "/workspaces/ws-1/api/v1/remote_write", Series: 100, Senders: 2, SamplesPerRequest: 50, Rounds: 2,
		SigV4: &SigV4{AccessKeyID: "AKIALOADGEN", SecretAccessKey: "secret", Region: "us-east-1"}}
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, int64(200), res.Samples)
	require.Equal(t, int64(4), verified.Load())

	cfg.SigV4.SecretAccessKey = "wrong"
	_, err = Run(context.Background(), cfg)
	require.ErrorContains(t, err, "403")
	require.Positive(t, refused.Load())
}
