package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/controlplane"
	"github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

type storeLifecycle struct {
	s  *storage.Store
	ov *workspace.Overrides
}

func (l storeLifecycle) ApplyConfiguration(id workspace.ID, cfg catalog.Configuration) error {
	lim := l.ov.Limits(id)
	lim.RetentionPeriod = model.Duration(time.Duration(cfg.RetentionDays) * 24 * time.Hour)
	lim.OutOfOrderWindow = model.Duration(time.Duration(cfg.OutOfOrderWindowSeconds) * time.Second)
	lim.LabelSetLimits = cfg.LabelSetLimits
	return l.ov.Set(id, lim)
}

func (l storeLifecycle) DefaultConfiguration() (int, int) { return 150, 60 }

func (l storeLifecycle) SyncRules(context.Context, workspace.ID) error { return nil }

func (l storeLifecycle) SyncAlertmanager(context.Context, workspace.ID) error { return nil }

func (l storeLifecycle) DeleteWorkspaceData(ctx context.Context, id workspace.ID) error {
	return l.s.Delete(ctx, id)
}

// testAPI is the control plane served without authorization over a real
// catalog and store, and an SDK client of it.
type testAPI struct {
	client *amp.Client
	url    string
	dir    string
	st     *storage.Store
	ov     *workspace.Overrides
	cat    *catalog.Catalog
}

// startAPI serves the control plane in region; engine, if not nil, makes
// the engine from the store's (storeLifecycle); configure, if given,
// changes the API's configuration.
func startAPI(t *testing.T, region string, engine func(storeLifecycle) controlplane.Lifecycle, configure ...func(*controlplane.Config)) testAPI {
	t.Helper()
	dir := t.TempDir()
	cat, st, ov := testBackends(t, dir)
	var lc controlplane.Lifecycle = storeLifecycle{st, ov}
	if engine != nil {
		lc = engine(storeLifecycle{st, ov})
	}
	cfg := controlplane.Config{Region: region, AccountID: "123456789012", Sealer: testSealer(t)}
	for _, f := range configure {
		f(&cfg)
	}
	api, err := controlplane.New(cfg, cat, lc, ov, nil)
	require.NoError(t, err)
	mux := http.NewServeMux()
	controlplane.Register(mux, api.Routes())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := amp.New(amp.Options{BaseEndpoint: aws.String(srv.URL), Region: region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIAORRERY", "secret", "")})
	return testAPI{client: client, url: srv.URL, dir: dir, st: st, ov: ov, cat: cat}
}

// TestAMPClient drives the API with the unchanged AWS SDK for Go v2 amp client.
func TestAMPClient(t *testing.T) {
	ctx := context.Background()
	api := startAPI(t, "eu-west-1", nil)
	client, dir, st, ov := api.client, api.dir, api.st, api.ov

	created, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("prod"), ClientToken: aws.String("token-1"),
		Tags: map[string]string{"team": "mesh"}})
	require.NoError(t, err)
	id := aws.ToString(created.WorkspaceId)
	require.Regexp(t, `^ws-[0-9a-f-]{36}$`, id)
	require.Equal(t, "arn:aws:aps:eu-west-1:123456789012:workspace/"+id, aws.ToString(created.Arn))
	require.Equal(t, types.WorkspaceStatusCodeActive, created.Status.StatusCode)

	// Idempotent retry returns the same workspace.
	again, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("prod"), ClientToken: aws.String("token-1")})
	require.NoError(t, err)
	require.Equal(t, id, aws.ToString(again.WorkspaceId))
	_, err = client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("other"), ClientToken: aws.String("token-1")})
	var conflict *types.ConflictException
	require.ErrorAs(t, err, &conflict)

	desc, err := client.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, "prod", aws.ToString(desc.Workspace.Alias))
	require.Equal(t, map[string]string{"team": "mesh"}, desc.Workspace.Tags)
	require.WithinDuration(t, time.Now(), aws.ToTime(desc.Workspace.CreatedAt), time.Minute)

	for i := range 4 {
		_, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String(fmt.Sprintf("dev-%d", i))})
		require.NoError(t, err)
	}
	pages := amp.NewListWorkspacesPaginator(client, &amp.ListWorkspacesInput{MaxResults: aws.Int32(2)})
	n, calls := 0, 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		require.NoError(t, err)
		n += len(page.Workspaces)
		calls++
	}
	require.Equal(t, 5, n)
	require.Equal(t, 3, calls)
	dev, err := client.ListWorkspaces(ctx, &amp.ListWorkspacesInput{Alias: aws.String("dev-")})
	require.NoError(t, err)
	require.Len(t, dev.Workspaces, 4)

	_, err = client.UpdateWorkspaceAlias(ctx, &amp.UpdateWorkspaceAliasInput{WorkspaceId: aws.String(id), Alias: aws.String("production")})
	require.NoError(t, err)

	// Configuration drives the workspace's limits.
	cfg, err := client.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, int32(150), aws.ToInt32(cfg.WorkspaceConfiguration.RetentionPeriodInDays))
	_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(id),
		RetentionPeriodInDays: aws.Int32(30), OutOfOrderTimeWindowInSeconds: aws.Int32(300)})
	require.NoError(t, err)
	cfg, err = client.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, int32(30), aws.ToInt32(cfg.WorkspaceConfiguration.RetentionPeriodInDays))
	require.Equal(t, int32(300), aws.ToInt32(cfg.WorkspaceConfiguration.OutOfOrderTimeWindowInSeconds))
	require.Equal(t, model.Duration(30*24*time.Hour), ov.Limits(workspace.ID(id)).RetentionPeriod)
	require.Equal(t, model.Duration(5*time.Minute), ov.Limits(workspace.ID(id)).OutOfOrderWindow)
	_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(id), RetentionPeriodInDays: aws.Int32(5000)})
	require.ErrorAs(t, err, new(*types.ValidationException))

	// Limits per label set: stored, reported, applied; bad ones refused.
	sets := []types.LimitsPerLabelSet{
		{LabelSet: map[string]string{"envoy_cluster_name": "payments"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(100)}},
		{LabelSet: map[string]string{}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1000)}},
	}
	_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(id), LimitsPerLabelSet: sets})
	require.NoError(t, err)
	cfg, err = client.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	require.Len(t, cfg.WorkspaceConfiguration.LimitsPerLabelSet, 2)
	require.Equal(t, map[string]string{"envoy_cluster_name": "payments"}, cfg.WorkspaceConfiguration.LimitsPerLabelSet[0].LabelSet)
	require.Equal(t, int64(100), aws.ToInt64(cfg.WorkspaceConfiguration.LimitsPerLabelSet[0].Limits.MaxSeries))
	require.Equal(t, int32(30), aws.ToInt32(cfg.WorkspaceConfiguration.RetentionPeriodInDays), "other settings are kept")
	require.Equal(t, []workspace.LabelSetLimit{{LabelSet: map[string]string{"envoy_cluster_name": "payments"}, MaxSeries: 100},
		{LabelSet: map[string]string{}, MaxSeries: 1000}}, ov.Limits(workspace.ID(id)).LabelSetLimits)
	for name, bad := range map[string][]types.LimitsPerLabelSet{
		"bad label name": {{LabelSet: map[string]string{"": "x"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1)}}},
		"blank value":    {{LabelSet: map[string]string{"a": " "}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1)}}},
		"negative":       {{LabelSet: map[string]string{"a": "b"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(-1)}}},
		"duplicate": {{LabelSet: map[string]string{"a": "b"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(1)}},
			{LabelSet: map[string]string{"a": "b"}, Limits: &types.LimitsPerLabelSetEntry{MaxSeries: aws.Int64(2)}}},
	} {
		_, err = client.UpdateWorkspaceConfiguration(ctx, &amp.UpdateWorkspaceConfigurationInput{WorkspaceId: aws.String(id), LimitsPerLabelSet: bad})
		require.ErrorAs(t, err, new(*types.ValidationException), name)
	}
	cfg, err = client.DescribeWorkspaceConfiguration(ctx, &amp.DescribeWorkspaceConfigurationInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	require.Len(t, cfg.WorkspaceConfiguration.LimitsPerLabelSet, 2, "a refused update changes nothing")

	// Rule groups namespaces: validated as promtool would, stored, listed.
	rules := []byte(`groups:
  - name: envoy
    rules:
      - alert: DownstreamLatencyHigh
        expr: histogram_quantile(0.99, sum by (le, envoy_cluster_name) (rate(envoy_cluster_upstream_rq_time_bucket[1m]))) > 5
        for: 1m
`)
	ns, err := client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(id), Name: aws.String("envoy"), Data: rules})
	require.NoError(t, err)
	require.Equal(t, "arn:aws:aps:eu-west-1:123456789012:rulegroupsnamespace/"+id+"/envoy", aws.ToString(ns.Arn))
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(id), Name: aws.String("envoy"), Data: rules})
	require.ErrorAs(t, err, new(*types.ConflictException))
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(id), Name: aws.String("bad"),
		Data: []byte("groups:\n  - name: g\n    rules:\n      - record: x\n        expr: rate(foo[5m]\n")})
	require.ErrorAs(t, err, new(*types.ValidationException))
	require.ErrorContains(t, err, "expr")
	_, err = client.CreateRuleGroupsNamespace(ctx, &amp.CreateRuleGroupsNamespaceInput{WorkspaceId: aws.String(id), Name: aws.String("bad"),
		Data: []byte("groups: [unclosed")})
	require.ErrorAs(t, err, new(*types.ValidationException))
	updated := append(rules, []byte("  - name: more\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n")...)
	_, err = client.PutRuleGroupsNamespace(ctx, &amp.PutRuleGroupsNamespaceInput{WorkspaceId: aws.String(id), Name: aws.String("envoy"), Data: updated})
	require.NoError(t, err)
	got, err := client.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: aws.String(id), Name: aws.String("envoy")})
	require.NoError(t, err)
	require.Equal(t, string(updated), string(got.RuleGroupsNamespace.Data))
	nsList, err := client.ListRuleGroupsNamespaces(ctx, &amp.ListRuleGroupsNamespacesInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	require.Len(t, nsList.RuleGroupsNamespaces, 1)
	_, err = client.DeleteRuleGroupsNamespace(ctx, &amp.DeleteRuleGroupsNamespaceInput{WorkspaceId: aws.String(id), Name: aws.String("envoy")})
	require.NoError(t, err)
	_, err = client.DescribeRuleGroupsNamespace(ctx, &amp.DescribeRuleGroupsNamespaceInput{WorkspaceId: aws.String(id), Name: aws.String("envoy")})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException))

	// Alert manager definition, validated by the Alertmanager's own loader.
	// An SNS receiver without keys or a role would publish with the
	// server's credentials: refused, as the server runs without
	// AllowServerAWSCredentials.
	keyless := []byte(`alertmanager_config: |
  route:
    receiver: default
  receivers:
    - name: default
      sns_configs:
        - topic_arn: arn:aws:sns:eu-west-1:123456789012:alerts
          sigv4:
            region: eu-west-1
`)
	_, err = client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(id), Data: keyless})
	require.ErrorAs(t, err, new(*types.ValidationException))
	require.ErrorContains(t, err, "receivers[0] (default).sns_configs[0].sigv4: neither access_key and secret_key nor role_arn is given")
	def := []byte(`alertmanager_config: |
  route:
    receiver: default
  receivers:
    - name: default
      sns_configs:
        - topic_arn: arn:aws:sns:eu-west-1:123456789012:alerts
          sigv4:
            region: eu-west-1
            role_arn: arn:aws:iam::123456789012:role/alerts
template_files:
  default.tmpl: '{{ define "x" }}{{ .Status }}{{ end }}'
`)
	_, err = client.CreateAlertManagerDefinition(ctx, &amp.CreateAlertManagerDefinitionInput{WorkspaceId: aws.String(id), Data: def})
	require.NoError(t, err)
	amd, err := client.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, string(def), string(amd.AlertManagerDefinition.Data))
	_, err = client.PutAlertManagerDefinition(ctx, &amp.PutAlertManagerDefinitionInput{WorkspaceId: aws.String(id),
		Data: []byte("alertmanager_config: |\n  route:\n    receiver: missing\n")})
	require.ErrorAs(t, err, new(*types.ValidationException))
	require.ErrorContains(t, err, "missing")
	_, err = client.DeleteAlertManagerDefinition(ctx, &amp.DeleteAlertManagerDefinitionInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	_, err = client.DescribeAlertManagerDefinition(ctx, &amp.DescribeAlertManagerDefinitionInput{WorkspaceId: aws.String(id)})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException))

	// Logging configuration: stored and reported.
	group := "arn:aws:logs:eu-west-1:123456789012:log-group:/aps/prod:*"
	_, err = client.CreateLoggingConfiguration(ctx, &amp.CreateLoggingConfigurationInput{WorkspaceId: aws.String(id), LogGroupArn: aws.String("not-an-arn")})
	require.ErrorAs(t, err, new(*types.ValidationException))
	lc, err := client.CreateLoggingConfiguration(ctx, &amp.CreateLoggingConfigurationInput{WorkspaceId: aws.String(id), LogGroupArn: aws.String(group)})
	require.NoError(t, err)
	require.Equal(t, types.LoggingConfigurationStatusCodeActive, lc.Status.StatusCode)
	_, err = client.CreateLoggingConfiguration(ctx, &amp.CreateLoggingConfigurationInput{WorkspaceId: aws.String(id), LogGroupArn: aws.String(group)})
	require.ErrorAs(t, err, new(*types.ConflictException))
	_, err = client.UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: aws.String(id), LogGroupArn: aws.String(group + "x")})
	require.ErrorAs(t, err, new(*types.ValidationException))
	group2 := strings.Replace(group, "/aps/prod", "/aps/prod2", 1)
	_, err = client.UpdateLoggingConfiguration(ctx, &amp.UpdateLoggingConfigurationInput{WorkspaceId: aws.String(id), LogGroupArn: aws.String(group2)})
	require.NoError(t, err)
	ld, err := client.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, group2, aws.ToString(ld.LoggingConfiguration.LogGroupArn))
	require.Equal(t, id, aws.ToString(ld.LoggingConfiguration.Workspace))
	require.WithinDuration(t, time.Now(), aws.ToTime(ld.LoggingConfiguration.ModifiedAt), time.Minute)
	_, err = client.DeleteLoggingConfiguration(ctx, &amp.DeleteLoggingConfigurationInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	_, err = client.DescribeLoggingConfiguration(ctx, &amp.DescribeLoggingConfigurationInput{WorkspaceId: aws.String(id)})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException))

	// Tags.
	arn := aws.ToString(created.Arn)
	_, err = client.TagResource(ctx, &amp.TagResourceInput{ResourceArn: aws.String(arn), Tags: map[string]string{"env": "prod", "cost": "42"}})
	require.NoError(t, err)
	_, err = client.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"cost"}})
	require.NoError(t, err)
	tags, err := client.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"team": "mesh", "env": "prod"}, tags.Tags)

	_, err = client.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String("ws-00000000-0000-4000-8000-000000000000")})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound)
	_, err = client.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String("not-a-workspace")})
	var invalid *types.ValidationException
	require.ErrorAs(t, err, &invalid)

	// Delete removes the record and the data on disk.
	app, err := st.Appender(ctx, workspace.ID(id))
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	require.DirExists(t, filepath.Join(dir, "workspaces", id))
	_, err = client.DeleteWorkspace(ctx, &amp.DeleteWorkspaceInput{WorkspaceId: aws.String(id)})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := client.DescribeWorkspace(ctx, &amp.DescribeWorkspaceInput{WorkspaceId: aws.String(id)})
		_, statErr := os.Stat(filepath.Join(dir, "workspaces", id))
		return errors.As(err, &notFound) && os.IsNotExist(statErr)
	}, 10*time.Second, 50*time.Millisecond)
}

// testSealer returns a sealer with a fresh key.
// testBackends opens what the control plane stands on, in dir: the
// catalog (SQLite), the workspaces' limits and storage.
func testBackends(t *testing.T, dir string) (*catalog.Catalog, *storage.Store, *workspace.Overrides) {
	t.Helper()
	cat, err := catalog.OpenSQLite(context.Background(), filepath.Join(dir, "catalog.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cat.Close() })
	ov, err := workspace.NewOverrides(workspace.DefaultLimits())
	require.NoError(t, err)
	st, err := storage.New(storage.Config{Dir: dir}, ov, nil, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return cat, st, ov
}

func testSealer(t *testing.T) *catalog.Sealer {
	s, err := catalog.LoadSealer(filepath.Join(t.TempDir(), "secrets.key"))
	require.NoError(t, err)
	return s
}
