package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestLimitsPerLabelSet sets AMP's limitsPerLabelSet with the AWS SDK and
// checks that remote write enforces them against the real server: a label
// set's own limit, the default bucket for series matching no set, series
// already stored still accepted, and the limits surviving a restart.
func TestLimitsPerLabelSet(t *testing.T) {
	ctx := context.Background()
	o := apptest.StartOrrery(t, t.TempDir())
	client := amp.New(amp.Options{BaseEndpoint: aws.String("http://" + o.Addr), Region: "us-east-1", Credentials: aws.AnonymousCredentials{}})
	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)
	_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws),
		LimitsPerLabelSet: []types.LimitsPerLabelSet{
			{LabelSet: map[string]string{"envoy_cluster_name": "payments"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(3)}},
			{LabelSet: map[string]string{}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(4)}},
		}})
	require.NoError(t, err)

	now := time.Now().UnixMilli()
	series := func(cluster string, pods ...string) []prompb.TimeSeries {
		var out []prompb.TimeSeries
		for _, p := range pods {
			out = append(out, ts("envoy_cluster_upstream_rq_total", now, 1, "envoy_cluster_name", cluster, "pod", p))
		}
		return out
	}
	write := func(ss []prompb.TimeSeries) (int, string) {
		return apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: ss})
	}
	count := func(cluster string) string {
		v, err := apptest.QueryVector(t, o.URL(ws, "/api/v1"), `count(envoy_cluster_upstream_rq_total{envoy_cluster_name="`+cluster+`"})`, time.UnixMilli(now))
		require.NoError(t, err)
		if len(v) == 0 {
			return "0"
		}
		return v[0].Value[1].(string)
	}

	code, body := write(append(series("payments", "a", "b", "c"), series("cart", "a", "b")...))
	require.Equal(t, http.StatusNoContent, code, body)
	// A fourth payments series is refused, naming the label set; the rest
	// of the request is stored.
	code, body = write(append(series("payments", "d"), series("cart", "c")...))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `would exceed the limit of 3 active series for label set {envoy_cluster_name="payments"} (limitsPerLabelSet)`)
	require.Equal(t, "3", count("payments"))
	require.Equal(t, "3", count("cart"))
	// Series already stored keep being accepted.
	now += 15000
	code, body = write(series("payments", "a", "b", "c"))
	require.Equal(t, http.StatusNoContent, code, body)
	// The default bucket holds series matching no label set: payments
	// series do not count towards it.
	code, body = write(series("cart", "d", "e"))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `would exceed the limit of 4 active series for label set {} (the default bucket)`)
	require.Equal(t, "4", count("cart"))

	// After a restart the limits come from the catalog and the counts
	// from the replayed head.
	o.Stop()
	o.Restart()
	code, body = write(series("payments", "e"))
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "limitsPerLabelSet")
	code, body = write(series("payments", "a"))
	require.Equal(t, http.StatusNoContent, code, body)

	// Removing the limits lifts them at once.
	_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws),
		LimitsPerLabelSet: []types.LimitsPerLabelSet{}})
	require.NoError(t, err)
	code, body = write(series("payments", "e"))
	require.Equal(t, http.StatusNoContent, code, body)
	o.Stop()
}
