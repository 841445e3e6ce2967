package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestAnomalyDetectorSDK drives anomaly detectors with the AWS SDK's amp
// client against the real binary: a detector on a workspace with an hour
// of history trains at once (CREATING, then ACTIVE), writes AMP's band and
// score series at its interval, keeps its model across a restart, and is
// deleted.
func TestAnomalyDetectorSDK(t *testing.T) {
	ctx := context.Background()
	o := apptest.StartOrrery(t, t.TempDir())
	client := ampClient(o)
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("anomaly")})
	require.NoError(t, err)
	id := aws.ToString(ws.WorkspaceId)

	// An hour of Envoy-like latency every 30 s, a slow daily-ish wave.
	now := time.Now()
	var series []prompb.TimeSeries
	for i := 120; i >= 0; i-- {
		at := now.Add(-time.Duration(i) * 30 * time.Second)
		v := 5 + math.Sin(float64(i)/20)
		series = append(series, ts("envoy_latency_ms", at.UnixMilli(), v, "svc", "payments"))
	}
	code, body := apptest.Write(t, o.RemoteWriteURL(id), &prompb.WriteRequest{Timeseries: series})
	require.Equal(t, http.StatusNoContent, code, body)

	created, err := client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, Alias: aws.String("latency"),
		EvaluationIntervalInSeconds: aws.Int32(30),
		Configuration: &types.AnomalyDetectorConfigurationMemberRandomCutForest{Value: types.RandomCutForestConfiguration{
			Query: aws.String(`avg by (svc) (envoy_latency_ms)`), ShingleSize: aws.Int32(4), SampleSize: aws.Int32(32)}},
		Labels: map[string]string{"team": "mesh"}})
	require.NoError(t, err)
	require.Equal(t, types.AnomalyDetectorStatusCodeCreating, created.Status.StatusCode)
	apptest.Eventually(t, 20*time.Second, func() error {
		d, err := client.DescribeAnomalyDetector(ctx, &amp.DescribeAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: created.AnomalyDetectorId})
		if err != nil {
			return err
		}
		if d.AnomalyDetector.Status.StatusCode != types.AnomalyDetectorStatusCodeActive {
			return fmt.Errorf("status %s (%s)", d.AnomalyDetector.Status.StatusCode, aws.ToString(d.AnomalyDetector.Status.StatusReason))
		}
		return nil
	})

	// Within an interval or two, the score and bands are in the workspace.
	api := o.URL(id, "/api/v1")
	apptest.Eventually(t, 75*time.Second, func() error {
		v, err := apptest.QueryVector(t, api, `anomaly_detector:score`, time.Now())
		if err != nil {
			return err
		}
		if len(v) != 1 {
			return fmt.Errorf("%d score series", len(v))
		}
		m := v[0].Metric
		if m["svc"] != "payments" || m["team"] != "mesh" || m["anomaly_detector_id"] != aws.ToString(created.AnomalyDetectorId) {
			return fmt.Errorf("score labels %v", m)
		}
		return nil
	})
	for _, name := range []string{"anomaly_detector:lower_band", "anomaly_detector:upper_band"} {
		v, err := apptest.QueryVector(t, api, name, time.Now())
		require.NoError(t, err)
		require.Len(t, v, 1, name)
	}

	// The preview: RCF(…) on query_range returns the original series and
	// AMP's preview series.
	code, r := apptest.API(t, api, "/query_range", url.Values{"query": {`RCF(avg by (svc) (envoy_latency_ms), 4, 32)`},
		"start": {strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)}, "end": {strconv.FormatInt(now.Unix(), 10)}, "step": {"30"}})
	require.Equal(t, http.StatusOK, code, r.Error)
	var preview struct {
		Result []struct{ Metric map[string]string } `json:"result"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &preview))
	var names []string
	for _, s := range preview.Result {
		names = append(names, s.Metric["__name__"])
	}
	require.ElementsMatch(t, []string{"", "anomaly_detector_preview:lower_band", "anomaly_detector_preview:upper_band", "anomaly_detector_preview:score"}, names)

	// A restart keeps the model: it is saved under the data directory and
	// loaded, not trained again.
	o.Stop()
	model := filepath.Join(o.DataDir, "anomaly", id, aws.ToString(created.AnomalyDetectorId)+".model")
	_, err = os.Stat(model)
	require.NoError(t, err)
	o.Restart()
	apptest.Eventually(t, 20*time.Second, func() error {
		if !strings.Contains(o.Output(), "anomaly detector model loaded") {
			return fmt.Errorf("model not loaded yet")
		}
		return nil
	})

	list, err := client.ListAnomalyDetectors(ctx, &amp.ListAnomalyDetectorsInput{WorkspaceId: ws.WorkspaceId})
	require.NoError(t, err)
	require.Len(t, list.AnomalyDetectors, 1)
	_, err = client.DeleteAnomalyDetector(ctx, &amp.DeleteAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: created.AnomalyDetectorId})
	require.NoError(t, err)
	apptest.Eventually(t, 20*time.Second, func() error {
		if _, err := os.Stat(model); !os.IsNotExist(err) {
			return fmt.Errorf("model still on disk: %v", err)
		}
		return nil
	})
}
