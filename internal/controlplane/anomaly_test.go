package controlplane_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/controlplane"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// detectorServer serves the control plane and counts the change
// notifications the runner would get.
func detectorServer(t *testing.T) (*amp.Client, string, *workspace.Overrides, func() int) {
	t.Helper()
	cat, st, ov := testBackends(t, t.TempDir())
	var mu sync.Mutex
	changes := 0
	api, err := controlplane.New(controlplane.Config{Region: "eu-west-1", AccountID: "123456789012", Sealer: testSealer(t),
		DetectorsChanged: func(workspace.ID) { mu.Lock(); changes++; mu.Unlock() }}, cat, storeLifecycle{st, ov}, ov, nil)
	require.NoError(t, err)
	mux := http.NewServeMux()
	controlplane.Register(mux, api.Routes())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := amp.New(amp.Options{BaseEndpoint: aws.String(srv.URL), Region: "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAORRERY", "secret", "")})
	return client, srv.URL, ov, func() int { mu.Lock(); defer mu.Unlock(); return changes }
}

func rcf(query string) *types.AnomalyDetectorConfigurationMemberRandomCutForest {
	return &types.AnomalyDetectorConfigurationMemberRandomCutForest{Value: types.RandomCutForestConfiguration{Query: aws.String(query)}}
}

func awsCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestAnomalyDetectorsWithSDK drives the five operations with the AWS SDK's
// amp client: every field it sends comes back, puts retrain (UPDATING),
// the quota and other workspaces' detectors answer as AMP does.
func TestAnomalyDetectorsWithSDK(t *testing.T) {
	ctx := context.Background()
	client, _, ov, changes := detectorServer(t)
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	other, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	lim := ov.Limits(workspace.ID(*ws.WorkspaceId))
	lim.MaxAnomalyDetectors = 2
	require.NoError(t, ov.Set(workspace.ID(*ws.WorkspaceId), lim))

	created, err := client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{
		WorkspaceId: ws.WorkspaceId, Alias: aws.String("envoy-p99"), EvaluationIntervalInSeconds: aws.Int32(120),
		MissingDataAction: &types.AnomalyDetectorMissingDataActionMemberMarkAsAnomaly{Value: true},
		Configuration: &types.AnomalyDetectorConfigurationMemberRandomCutForest{Value: types.RandomCutForestConfiguration{
			Query:                       aws.String(`avg(rate(envoy_cluster_upstream_rq_time_sum[5m]))`),
			ShingleSize:                 aws.Int32(12),
			SampleSize:                  aws.Int32(512),
			IgnoreNearExpectedFromAbove: &types.IgnoreNearExpectedMemberAmount{Value: 2.5},
			IgnoreNearExpectedFromBelow: &types.IgnoreNearExpectedMemberRatio{Value: 0.2},
		}},
		Labels: map[string]string{"team": "mesh"}, Tags: map[string]string{"env": "prod"}, ClientToken: aws.String("tok-1"),
	})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(*created.AnomalyDetectorId, "ad-"))
	require.Equal(t, "arn:aws:aps:eu-west-1:123456789012:anomalydetector/"+*ws.WorkspaceId+"/"+*created.AnomalyDetectorId, *created.Arn)
	require.Equal(t, types.AnomalyDetectorStatusCodeCreating, created.Status.StatusCode)
	require.Equal(t, map[string]string{"env": "prod"}, created.Tags)
	require.Equal(t, 1, changes())

	d, err := client.DescribeAnomalyDetector(ctx, &amp.DescribeAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: created.AnomalyDetectorId})
	require.NoError(t, err)
	got := d.AnomalyDetector
	require.Equal(t, "envoy-p99", *got.Alias)
	require.Equal(t, int32(120), *got.EvaluationIntervalInSeconds)
	require.Equal(t, &types.AnomalyDetectorMissingDataActionMemberMarkAsAnomaly{Value: true}, got.MissingDataAction)
	cfg := got.Configuration.(*types.AnomalyDetectorConfigurationMemberRandomCutForest).Value
	require.Equal(t, `avg(rate(envoy_cluster_upstream_rq_time_sum[5m]))`, *cfg.Query)
	require.Equal(t, int32(12), *cfg.ShingleSize)
	require.Equal(t, int32(512), *cfg.SampleSize)
	require.Equal(t, &types.IgnoreNearExpectedMemberAmount{Value: 2.5}, cfg.IgnoreNearExpectedFromAbove)
	require.Equal(t, &types.IgnoreNearExpectedMemberRatio{Value: 0.2}, cfg.IgnoreNearExpectedFromBelow)
	require.Equal(t, map[string]string{"team": "mesh"}, got.Labels)
	require.NotNil(t, got.CreatedAt)
	require.NotNil(t, got.ModifiedAt)

	// Tags, through the detector's ARN.
	_, err = client.TagResource(ctx, &amp.TagResourceInput{ResourceArn: created.Arn, Tags: map[string]string{"owner": "sre"}})
	require.NoError(t, err)
	_, err = client.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: created.Arn, TagKeys: []string{"env"}})
	require.NoError(t, err)
	tags, err := client.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: created.Arn})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"owner": "sre"}, tags.Tags)
	_, err = client.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(strings.Replace(*created.Arn, "/ad-", "/ad-x", 1))})
	var missing *types.ResourceNotFoundException
	require.ErrorAs(t, err, &missing)

	// The same client token: the same detector, not a second one.
	again, err := client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, Alias: aws.String("envoy-p99"),
		EvaluationIntervalInSeconds: aws.Int32(120), MissingDataAction: &types.AnomalyDetectorMissingDataActionMemberMarkAsAnomaly{Value: true},
		Configuration: created2Config(), Labels: map[string]string{"team": "mesh"}, Tags: map[string]string{"env": "prod"}, ClientToken: aws.String("tok-1")})
	require.NoError(t, err)
	require.Equal(t, *created.AnomalyDetectorId, *again.AnomalyDetectorId)

	second, err := client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, Alias: aws.String("errors"),
		Configuration: rcf(`sum(rate(http_requests_total{code=~"5.."}[5m]))`)})
	require.NoError(t, err)
	_, err = client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, Alias: aws.String("third"),
		Configuration: rcf(`sum(up)`)})
	var quota *types.ServiceQuotaExceededException
	require.ErrorAs(t, err, &quota, "the workspace's limit of 2 detectors")

	// Defaults filled in: AMP's interval of a minute, shingle 8, sample 256.
	d2, err := client.DescribeAnomalyDetector(ctx, &amp.DescribeAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: second.AnomalyDetectorId})
	require.NoError(t, err)
	require.Equal(t, int32(60), *d2.AnomalyDetector.EvaluationIntervalInSeconds)

	// List: alias prefix and pagination.
	list, err := client.ListAnomalyDetectors(ctx, &amp.ListAnomalyDetectorsInput{WorkspaceId: ws.WorkspaceId, Alias: aws.String("envoy")})
	require.NoError(t, err)
	require.Len(t, list.AnomalyDetectors, 1)
	require.Equal(t, "envoy-p99", *list.AnomalyDetectors[0].Alias)
	var ids []string
	for p := amp.NewListAnomalyDetectorsPaginator(client, &amp.ListAnomalyDetectorsInput{WorkspaceId: ws.WorkspaceId, MaxResults: aws.Int32(1)}); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, s := range page.AnomalyDetectors {
			ids = append(ids, *s.AnomalyDetectorId)
		}
	}
	require.ElementsMatch(t, []string{*created.AnomalyDetectorId, *second.AnomalyDetectorId}, ids)

	// Put replaces the definition and retrains: UPDATING.
	put, err := client.PutAnomalyDetector(ctx, &amp.PutAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: second.AnomalyDetectorId,
		EvaluationIntervalInSeconds: aws.Int32(300), Configuration: rcf(`max(rate(http_requests_total[5m]))`)})
	require.NoError(t, err)
	require.Equal(t, types.AnomalyDetectorStatusCodeUpdating, put.Status.StatusCode)
	d2, err = client.DescribeAnomalyDetector(ctx, &amp.DescribeAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: second.AnomalyDetectorId})
	require.NoError(t, err)
	require.Equal(t, int32(300), *d2.AnomalyDetector.EvaluationIntervalInSeconds)
	require.Equal(t, `max(rate(http_requests_total[5m]))`, *d2.AnomalyDetector.Configuration.(*types.AnomalyDetectorConfigurationMemberRandomCutForest).Value.Query)
	_, err = client.PutAnomalyDetector(ctx, &amp.PutAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: aws.String("ad-missing"),
		Configuration: rcf(`sum(up)`)})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound)

	// Another workspace does not see them.
	_, err = client.DescribeAnomalyDetector(ctx, &amp.DescribeAnomalyDetectorInput{WorkspaceId: other.WorkspaceId, AnomalyDetectorId: created.AnomalyDetectorId})
	require.ErrorAs(t, err, &notFound)
	_, err = client.DeleteAnomalyDetector(ctx, &amp.DeleteAnomalyDetectorInput{WorkspaceId: other.WorkspaceId, AnomalyDetectorId: created.AnomalyDetectorId})
	require.ErrorAs(t, err, &notFound)
	ol, err := client.ListAnomalyDetectors(ctx, &amp.ListAnomalyDetectorsInput{WorkspaceId: other.WorkspaceId})
	require.NoError(t, err)
	require.Empty(t, ol.AnomalyDetectors)

	// Delete: 202, then gone; the quota has room again.
	_, err = client.DeleteAnomalyDetector(ctx, &amp.DeleteAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: created.AnomalyDetectorId})
	require.NoError(t, err)
	_, err = client.DescribeAnomalyDetector(ctx, &amp.DescribeAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: created.AnomalyDetectorId})
	require.ErrorAs(t, err, &notFound)
	_, err = client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, Alias: aws.String("third"), Configuration: rcf(`sum(up)`)})
	require.NoError(t, err)
	require.Equal(t, 6, changes(), "creates, put and delete each tell the runner")
}

func created2Config() types.AnomalyDetectorConfiguration {
	return &types.AnomalyDetectorConfigurationMemberRandomCutForest{Value: types.RandomCutForestConfiguration{
		Query: aws.String(`avg(rate(envoy_cluster_upstream_rq_time_sum[5m]))`), ShingleSize: aws.Int32(12), SampleSize: aws.Int32(512),
		IgnoreNearExpectedFromAbove: &types.IgnoreNearExpectedMemberAmount{Value: 2.5},
		IgnoreNearExpectedFromBelow: &types.IgnoreNearExpectedMemberRatio{Value: 0.2},
	}}
}

// TestAnomalyDetectorHostileInput sends what the SDK never would: each is
// refused with 400 ValidationException and a message naming the fault, and
// stores nothing.
func TestAnomalyDetectorHostileInput(t *testing.T) {
	ctx := context.Background()
	client, url, _, changes := detectorServer(t)
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	base := url + "/workspaces/" + *ws.WorkspaceId + "/anomalydetectors"
	ok := `"configuration":{"randomCutForest":{"query":"sum(up)"}}`
	for _, tc := range []struct {
		name, body, want string
	}{
		{"empty body", ``, "alias \"\" must be"},
		{"malformed JSON", `{"alias":"a",`, "request body"},
		{"two values", `{"alias":"a",` + ok + `}{}`, "data after the JSON object"},
		{"unknown field", `{"alias":"a","shingle":4,` + ok + `}`, `unknown field "shingle"`},
		{"unknown nested field", `{"alias":"a","configuration":{"randomCutForest":{"query":"sum(up)","trees":9}}}`, `unknown field "trees"`},
		{"wrong type", `{"alias":"a","evaluationIntervalInSeconds":"60",` + ok + `}`, "evaluationIntervalInSeconds"},
		{"no alias", `{` + ok + `}`, "alias"},
		{"bad alias", `{"alias":"-a",` + ok + `}`, "alias"},
		{"no configuration", `{"alias":"a"}`, "configuration.randomCutForest is required"},
		{"empty query", `{"alias":"a","configuration":{"randomCutForest":{"query":""}}}`, "query: is empty"},
		{"query that does not parse", `{"alias":"a","configuration":{"randomCutForest":{"query":"sum(up"}}}`, "query"},
		{"query without aggregation", `{"alias":"a","configuration":{"randomCutForest":{"query":"up"}}}`, "wrapped in an aggregation"},
		{"topk is not allowed", `{"alias":"a","configuration":{"randomCutForest":{"query":"topk(1, up)"}}}`, "wrapped in an aggregation"},
		{"shingle too small", `{"alias":"a","configuration":{"randomCutForest":{"query":"sum(up)","shingleSize":1}}}`, "shingle size 1"},
		{"sample too large", `{"alias":"a","configuration":{"randomCutForest":{"query":"sum(up)","sampleSize":5000}}}`, "sample size 5000"},
		{"amount and ratio", `{"alias":"a","configuration":{"randomCutForest":{"query":"sum(up)","ignoreNearExpectedFromAbove":{"amount":1,"ratio":1}}}}`, "exactly one of amount and ratio"},
		{"negative amount", `{"alias":"a","configuration":{"randomCutForest":{"query":"sum(up)","ignoreNearExpectedFromBelow":{"amount":-1}}}}`, "non-negative"},
		{"interval too short", `{"alias":"a","evaluationIntervalInSeconds":5,` + ok + `}`, "evaluationIntervalInSeconds 5"},
		{"both missing data actions", `{"alias":"a","missingDataAction":{"skip":true,"markAsAnomaly":true},` + ok + `}`, "exactly one of markAsAnomaly and skip"},
		{"label name", `{"alias":"a","labels":{"__name__":"x"},` + ok + `}`, "label name"},
		{"client token", `{"alias":"a","clientToken":"with space",` + ok + `}`, "clientToken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(base, "application/json", strings.NewReader(tc.body))
			require.NoError(t, err)
			var body struct{ Message string }
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			_ = resp.Body.Close()
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s", body.Message)
			require.Equal(t, "ValidationException", resp.Header.Get("X-Amzn-ErrorType"))
			require.Contains(t, body.Message, tc.want)
		})
	}
	require.Zero(t, changes())
	list, err := client.ListAnomalyDetectors(ctx, &amp.ListAnomalyDetectorsInput{WorkspaceId: ws.WorkspaceId})
	require.NoError(t, err)
	require.Empty(t, list.AnomalyDetectors)

	// A workspace that does not exist, and a bad page token.
	_, err = client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: aws.String("ws-00000000-0000-0000-0000-000000000000"),
		Alias: aws.String("a"), Configuration: rcf("sum(up)")})
	require.Equal(t, "ResourceNotFoundException", awsCode(err))
	_, err = client.ListAnomalyDetectors(ctx, &amp.ListAnomalyDetectorsInput{WorkspaceId: ws.WorkspaceId, NextToken: aws.String("!!")})
	require.Equal(t, "ValidationException", awsCode(err))
	// Put takes no alias.
	created, err := client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, Alias: aws.String("a"), Configuration: rcf("sum(up)")})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPut, base+"/"+*created.AnomalyDetectorId, strings.NewReader(`{"alias":"b",`+ok+`}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}
