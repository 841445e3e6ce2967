package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall"
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

// TestLimitsPerLabelSetFromLimitsFile reproduces a bug: label set limits
// set in the limits file were dropped once any UpdateWorkspaceConfiguration
// call had been made for the workspace, even one that set only its
// retention, and again after a restart. A non-empty list set through the
// API replaces the file's; an empty one gives the file's back.
func TestLimitsPerLabelSetFromLimitsFile(t *testing.T) {
	ctx := context.Background()
	limits := writeFile(t, "overrides: {}\n")
	o := apptest.StartOrrery(t, t.TempDir(), "--limits-file="+limits)
	client := amp.New(amp.Options{BaseEndpoint: aws.String("http://" + o.Addr), Region: "us-east-1", Credentials: aws.AnonymousCredentials{}})
	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)
	o.Stop()
	require.NoError(t, os.WriteFile(limits, []byte("overrides:\n  "+ws+":\n    limits_per_label_set:\n"+
		"    - label_set: {job: payments}\n      max_series: 2\n"), 0o600))
	o.Restart()

	now := time.Now().UnixMilli()
	write := func(pod string) (int, string) {
		now += 1000
		return apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			ts("up", now, 1, "job", "payments", "pod", pod)}})
	}
	for _, pod := range []string{"a", "b"} {
		code, body := write(pod)
		require.Equal(t, http.StatusNoContent, code, body)
	}
	code, body := write("c")
	require.Equal(t, http.StatusBadRequest, code, "the limits file's label set limit applies")
	require.Contains(t, body, `limit of 2 active series for label set {job="payments"}`)

	_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws),
		RetentionPeriodInDays: aws.Int32(7)})
	require.NoError(t, err)
	code, body = write("c")
	require.Equal(t, http.StatusBadRequest, code, "a configuration without label sets keeps the file's: %s", body)
	o.Stop()
	o.Restart()
	code, body = write("c")
	require.Equal(t, http.StatusBadRequest, code, "after a restart too: %s", body)

	// The API's list replaces the file's; an empty one gives it back.
	_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws),
		LimitsPerLabelSet: []types.LimitsPerLabelSet{
			{LabelSet: map[string]string{"job": "payments"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(3)}}}})
	require.NoError(t, err)
	code, body = write("c")
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = write("d")
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, `limit of 3 active series`)
	_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws),
		LimitsPerLabelSet: []types.LimitsPerLabelSet{}})
	require.NoError(t, err)
	code, body = write("d")
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, `limit of 2 active series`)
	o.Stop()
}

// TestLimitsFileReload changes the limits file under a running server:
// POST /-/reload and SIGHUP apply it at once, over the defaults and under
// the configuration set through the API; a file that cannot be applied is
// refused and leaves the limits in force.
func TestLimitsFileReload(t *testing.T) {
	ctx := context.Background()
	limits := writeFile(t, "overrides: {}\n")
	o := apptest.StartOrrery(t, t.TempDir(), "--limits-file="+limits)
	client := amp.New(amp.Options{BaseEndpoint: aws.String("http://" + o.Addr), Region: "us-east-1", Credentials: aws.AnonymousCredentials{}})
	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)
	_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(ws),
		RetentionPeriodInDays: aws.Int32(7)})
	require.NoError(t, err)
	reload := func() (int, string) {
		resp, err := http.Post("http://"+o.Addr+"/-/reload", "", nil)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	setSeries := func(n int) {
		require.NoError(t, os.WriteFile(limits, []byte(fmt.Sprintf("overrides:\n  %s:\n    max_active_series: %d\n", ws, n)), 0o600))
	}
	now := time.Now().UnixMilli()
	write := func(pod string) (int, string) {
		now += 1000
		return apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			ts("up", now, 1, "pod", pod)}})
	}

	setSeries(1)
	code, body := reload()
	require.Equal(t, http.StatusOK, code, body)
	code, body = write("a")
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = write("b")
	require.Equal(t, http.StatusBadRequest, code, "the reloaded file's limit applies: %s", body)

	require.NoError(t, os.WriteFile(limits, []byte("overrides:\n  "+ws+":\n    no_such_limit: 1\n"), 0o600))
	code, body = reload()
	require.Equal(t, http.StatusInternalServerError, code, body)
	code, body = write("b")
	require.Equal(t, http.StatusBadRequest, code, "a refused file leaves the limits in force: %s", body)

	setSeries(2)
	o.Signal(syscall.SIGHUP)
	apptest.Eventually(t, 10*time.Second, func() error {
		if code, body := write("b"); code != http.StatusNoContent {
			return fmt.Errorf("SIGHUP has not reloaded the file yet: %d %s", code, body)
		}
		return nil
	})
	// The configuration set through the API stays under the file's.
	resp, err := client.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(ws)})
	require.NoError(t, err)
	require.Equal(t, int32(7), aws.ToInt32(resp.WorkspaceConfiguration.RetentionPeriodInDays))
	o.Stop()
}
