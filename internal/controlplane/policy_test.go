package controlplane_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/controlplane"
)

const sharePolicy = `{"Version":"2012-10-17","Statement":[{"Sid":"share","Effect":"Allow",
	"Principal":{"AWS":"arn:aws:iam::123456789012:user/AKIAREADER"},"Action":["aps:QueryMetrics"],"Resource":"*"}]}`

// TestResourcePolicyOperations drives PutResourcePolicy,
// DescribeResourcePolicy and DeleteResourcePolicy with the SDK: revisions,
// statuses and errors as AMP's.
func TestResourcePolicyOperations(t *testing.T) {
	ctx := context.Background()
	client := startAPI(t, "us-east-1", nil).client
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	id := ws.WorkspaceId

	_, err = client.DescribeResourcePolicy(ctx, &amp.DescribeResourcePolicyInput{WorkspaceId: id})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException))
	put, err := client.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: id, PolicyDocument: aws.String(sharePolicy),
		RevisionId: aws.String(catalog.NoPolicy)})
	require.NoError(t, err)
	require.Equal(t, types.WorkspacePolicyStatusCodeCreating, put.PolicyStatus)
	rev := aws.ToString(put.RevisionId)
	require.NotEmpty(t, rev)
	got, err := client.DescribeResourcePolicy(ctx, &amp.DescribeResourcePolicyInput{WorkspaceId: id})
	require.NoError(t, err)
	require.Equal(t, sharePolicy, aws.ToString(got.PolicyDocument))
	require.Equal(t, types.WorkspacePolicyStatusCodeActive, got.PolicyStatus)
	require.Equal(t, rev, aws.ToString(got.RevisionId))

	// Revisions: NO_POLICY or a stale one conflict.
	_, err = client.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: id, PolicyDocument: aws.String(sharePolicy),
		RevisionId: aws.String(catalog.NoPolicy)})
	require.ErrorAs(t, err, new(*types.ConflictException))
	upd, err := client.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: id, PolicyDocument: aws.String(sharePolicy), RevisionId: aws.String(rev)})
	require.NoError(t, err)
	require.Equal(t, types.WorkspacePolicyStatusCodeUpdating, upd.PolicyStatus)
	_, err = client.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: id, RevisionId: aws.String(rev)})
	require.ErrorAs(t, err, new(*types.ConflictException))
	require.ErrorContains(t, err, "is at revision "+aws.ToString(upd.RevisionId)+", not "+rev)

	// Bad documents are refused with what is wrong.
	for doc, msg := range map[string]string{
		`{"Statement":[{"Effect":"Allow","Action":"aps:QueryMetrics","Resource":"*"}]}`:                                      "needs a Principal",
		`{"Statement":[{"Effect":"Allow","Principal":{"Service":"x"},"Action":"aps:QueryMetrics","Resource":"*"}]}`:          `Principal "Service" is not supported`,
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"aps:QueryMetrics","Resource":"*","Condition":{"x":{}}}]}`: "Condition x names no key",
		`not json`: "policyDocument: policy document",
		strings.Replace(sharePolicy, `"Sid":"share"`, `"Sid":"`+strings.Repeat("s", controlplane.MaxPolicyBytes)+`"`, 1): "more than the 20480 a resource policy may have",
	} {
		_, err = client.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: id, PolicyDocument: aws.String(doc)})
		require.ErrorAs(t, err, new(*types.ValidationException), doc)
		require.ErrorContains(t, err, msg)
	}
	_, err = client.PutResourcePolicy(ctx, &amp.PutResourcePolicyInput{WorkspaceId: aws.String("ws-00000000-0000-4000-8000-000000000000"),
		PolicyDocument: aws.String(sharePolicy)})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException))

	_, err = client.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: id})
	require.NoError(t, err)
	_, err = client.DeleteResourcePolicy(ctx, &amp.DeleteResourcePolicyInput{WorkspaceId: id})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException))
}

// TestQueryLoggingOperations drives the query logging configuration
// operations with the SDK.
func TestQueryLoggingOperations(t *testing.T) {
	ctx := context.Background()
	client := startAPI(t, "us-east-1", nil).client
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	id := ws.WorkspaceId
	group := "arn:aws:logs:us-east-1:123456789012:log-group:/aps/queries:*"
	dest := func(arn string, threshold int64) []types.LoggingDestination {
		return []types.LoggingDestination{{CloudWatchLogs: &types.CloudWatchLogDestination{LogGroupArn: aws.String(arn)},
			Filters: &types.LoggingFilter{QspThreshold: aws.Int64(threshold)}}}
	}

	_, err = client.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: id})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException))
	_, err = client.UpdateQueryLoggingConfiguration(ctx, &amp.UpdateQueryLoggingConfigurationInput{WorkspaceId: id, Destinations: dest(group, 1)})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException), "update before create")
	created, err := client.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: id, Destinations: dest(group, 1000)})
	require.NoError(t, err)
	require.Equal(t, types.QueryLoggingConfigurationStatusCodeCreating, created.Status.StatusCode)
	_, err = client.CreateQueryLoggingConfiguration(ctx, &amp.CreateQueryLoggingConfigurationInput{WorkspaceId: id, Destinations: dest(group, 1000)})
	require.ErrorAs(t, err, new(*types.ConflictException))
	updated, err := client.UpdateQueryLoggingConfiguration(ctx, &amp.UpdateQueryLoggingConfigurationInput{WorkspaceId: id, Destinations: dest(group, 50)})
	require.NoError(t, err)
	require.Equal(t, types.QueryLoggingConfigurationStatusCodeUpdating, updated.Status.StatusCode)
	got, err := client.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: id})
	require.NoError(t, err)
	c := got.QueryLoggingConfiguration
	require.Equal(t, types.QueryLoggingConfigurationStatusCodeActive, c.Status.StatusCode)
	require.Equal(t, aws.ToString(id), aws.ToString(c.Workspace))
	require.Len(t, c.Destinations, 1)
	require.Equal(t, group, aws.ToString(c.Destinations[0].CloudWatchLogs.LogGroupArn))
	require.Equal(t, int64(50), aws.ToInt64(c.Destinations[0].Filters.QspThreshold))
	require.WithinDuration(t, time.Now(), aws.ToTime(c.ModifiedAt), time.Minute)

	for name, c := range map[string]struct {
		dests []types.LoggingDestination
		msg   string
	}{
		"not a log group":    {dest("arn:aws:s3:::bucket", 1), "is not a log group ARN"},
		"negative threshold": {dest(group, -1), "must be 0 or more"},
		"two destinations":   {append(dest(group, 1), dest(group, 2)...), "exactly one destination, not 2"},
	} {
		_, err = client.UpdateQueryLoggingConfiguration(ctx, &amp.UpdateQueryLoggingConfigurationInput{WorkspaceId: id, Destinations: c.dests})
		require.ErrorAs(t, err, new(*types.ValidationException), name)
		require.ErrorContains(t, err, c.msg, name)
	}

	_, err = client.DeleteQueryLoggingConfiguration(ctx, &amp.DeleteQueryLoggingConfigurationInput{WorkspaceId: id})
	require.NoError(t, err)
	_, err = client.DeleteQueryLoggingConfiguration(ctx, &amp.DeleteQueryLoggingConfigurationInput{WorkspaceId: id})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException))
}

// TestHostileBodies sends the new operations what no SDK would: each is
// refused with a 400 ValidationException naming the fault, or a 404 for a
// workspace that does not exist, and nothing is stored.
func TestHostileBodies(t *testing.T) {
	ctx := context.Background()
	api := startAPI(t, "us-east-1", nil)
	client, url := api.client, api.url
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	id := aws.ToString(ws.WorkspaceId)
	okLogging := `{"destinations":[{"cloudWatchLogs":{"logGroupArn":"arn:aws:logs:us-east-1:123456789012:log-group:q:*"},"filters":{"qspThreshold":1}}]}`
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"policy: malformed JSON", "PUT", "/workspaces/" + id + "/policy", `{"policyDocument":`, 400, "request body: unexpected EOF"},
		{"policy: unknown field", "PUT", "/workspaces/" + id + "/policy", `{"policyDocument":"{}","policyDocumnet":"x"}`, 400, `unknown field \"policyDocumnet\"`},
		{"policy: wrong type", "PUT", "/workspaces/" + id + "/policy", `{"policyDocument":{"Statement":[]}}`, 400, "cannot unmarshal object"},
		{"policy: trailing data", "PUT", "/workspaces/" + id + "/policy", `{"policyDocument":"{}"} {"x":1}`, 400, "data after the JSON object"},
		{"policy: no document", "PUT", "/workspaces/" + id + "/policy", `{}`, 400, "policyDocument is required"},
		{"policy: oversized body", "PUT", "/workspaces/" + id + "/policy", `{"policyDocument":"` + strings.Repeat("a", 2<<20) + `"}`, 400, "request body too large"},
		{"policy: workspace that does not exist", "PUT", "/workspaces/ws-00000000-0000-4000-8000-000000000000/policy", `{"policyDocument":"{}"}`, 404, "not found"},
		{"policy: not a workspace id", "GET", "/workspaces/ws-x/policy", ``, 400, "workspace"},
		{"policy: delete NO_POLICY", "DELETE", "/workspaces/" + id + "/policy?revisionId=NO_POLICY", ``, 400, "names no policy to delete"},
		{"query logging: malformed JSON", "POST", "/workspaces/" + id + "/logging/query", `{"destinations":[`, 400, "request body"},
		{"query logging: unknown field", "POST", "/workspaces/" + id + "/logging/query", strings.Replace(okLogging, `"filters"`, `"filter"`, 1), 400, `unknown field \"filter\"`},
		{"query logging: no threshold", "POST", "/workspaces/" + id + "/logging/query", strings.Replace(okLogging, `"qspThreshold":1`, ``, 1), 400, "qspThreshold is required"},
		{"query logging: no destinations", "POST", "/workspaces/" + id + "/logging/query", `{}`, 400, "exactly one destination, not 0"},
		{"query logging: oversized body", "POST", "/workspaces/" + id + "/logging/query", `{"clientToken":"` + strings.Repeat("a", 2<<20) + `"}`, 400, "request body too large"},
		{"query logging: workspace that does not exist", "POST", "/workspaces/ws-00000000-0000-4000-8000-000000000000/logging/query", okLogging, 404, "not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, url+c.path, strings.NewReader(c.body))
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var b strings.Builder
			_, _ = io.Copy(&b, resp.Body)
			require.Equal(t, c.status, resp.StatusCode, b.String())
			require.Contains(t, b.String(), c.msg)
			want := map[int]string{400: "ValidationException", 404: "ResourceNotFoundException"}[c.status]
			require.Equal(t, want, resp.Header.Get("X-Amzn-ErrorType"))
		})
	}
	_, err = client.DescribeResourcePolicy(ctx, &amp.DescribeResourcePolicyInput{WorkspaceId: aws.String(id)})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException), "nothing was stored")
	_, err = client.DescribeQueryLoggingConfiguration(ctx, &amp.DescribeQueryLoggingConfigurationInput{WorkspaceId: aws.String(id)})
	require.ErrorAs(t, err, new(*types.ResourceNotFoundException), "nothing was stored")
}
