package controlplane_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/controlplane"
)

const nodeScrape = "scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['127.0.0.1:9100', '127.0.0.1:9101']\n"

// TestScraperOperations drives the scraper operations with the SDK's amp
// client: create (idempotent, limited), describe, list with filters and
// pages, update, the logging configuration, delete; and the answers to
// what a client gets wrong.
func TestScraperOperations(t *testing.T) {
	ctx := context.Background()
	api := startAPI(t, "us-east-1", nil, func(c *controlplane.Config) { c.MaxScrapers, c.MaxScraperTargets = 3, 2 })
	client, cat := api.client, api.cat

	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{})
	require.NoError(t, err)
	vpc := &types.SourceMemberVpcConfiguration{Value: types.VpcConfiguration{SubnetIds: []string{"subnet-1"}, SecurityGroupIds: []string{"sg-1"}}}
	dest := &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: ws.Arn}}
	create := func(alias, token, blob string) (*amp.CreateScraperOutput, error) {
		return client.CreateScraper(ctx, &amp.CreateScraperInput{Alias: aws.String(alias), ClientToken: aws.String(token), Source: vpc, Destination: dest,
			ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(blob)}, Tags: map[string]string{"team": "mesh"}})
	}
	code := func(err error) string {
		var apiErr smithy.APIError
		require.True(t, errors.As(err, &apiErr), "%v", err)
		return apiErr.ErrorCode()
	}

	created, err := create("nodes", "tok-1", nodeScrape)
	require.NoError(t, err)
	id := aws.ToString(created.ScraperId)
	require.Regexp(t, `^s-[0-9a-f-]{36}$`, id)
	require.Equal(t, "arn:aws:aps:us-east-1:123456789012:scraper/"+id, aws.ToString(created.Arn))
	require.Equal(t, types.ScraperStatusCodeCreating, created.Status.StatusCode)
	again, err := create("nodes", "tok-1", nodeScrape)
	require.NoError(t, err)
	require.Equal(t, id, aws.ToString(again.ScraperId), "a retry with the client token is the same scraper")
	_, err = create("other", "tok-1", nodeScrape)
	require.Equal(t, "ConflictException", code(err))

	for name, tc := range map[string]struct{ blob, code, msg string }{
		"bad yaml":        {"scrape_configs:\n  - job_name: a\n   static_configs: []\n", "ValidationException", "line 2"},
		"unknown field":   {"scrape_configs:\n  - job_name: a\n    scrape_intervall: 1s\n", "ValidationException", "scrape_intervall"},
		"remote write":    {nodeScrape + "remote_write:\n  - url: http://x/\n", "ValidationException", "remote_write"},
		"no jobs":         {"global: {}\n", "ValidationException", "no scrape_configs"},
		"too many static": {"scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [a:1, b:1, c:1]\n", "ServiceQuotaExceededException", "--scraper.max-targets"},
		"oversized":       {"# " + strings.Repeat("x", controlplane.MaxScrapeConfigurationBytes) + "\n" + nodeScrape, "ValidationException", "more than the"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := create("bad", "", tc.blob)
			require.Error(t, err)
			require.Equal(t, tc.code, code(err), "%v", err)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err = client.CreateScraper(ctx, &amp.CreateScraperInput{Source: vpc, ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(nodeScrape)},
		Destination: &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: aws.String("arn:aws:aps:us-east-1:123456789012:workspace/ws-00000000-0000-4000-8000-000000000000")}}})
	require.Equal(t, "ResourceNotFoundException", code(err))
	require.ErrorContains(t, err, "no such workspace")
	_, err = client.CreateScraper(ctx, &amp.CreateScraperInput{Source: vpc, ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(nodeScrape)},
		Destination: &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: aws.String("arn:aws:aps:eu-west-1:999999999999:workspace/ws-x")}}})
	require.Equal(t, "ValidationException", code(err))

	// Raw requests the SDK would not send.
	post := func(body string) (int, string) {
		resp, err := http.Post(api.url+"/scrapers", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType") + " " + string(b)
	}
	blob := base64.StdEncoding.EncodeToString([]byte(nodeScrape))
	good := `"scrapeConfiguration":{"configurationBlob":"` + blob + `"},"destination":{"ampConfiguration":{"workspaceArn":"` + aws.ToString(ws.Arn) + `"}}`
	for name, tc := range map[string]struct{ body, msg string }{
		"malformed":      {`{"source":`, "request body"},
		"unknown field":  {`{"sauce":{},` + good + `}`, `unknown field \"sauce\"`},
		"both sources":   {`{"source":{"vpcConfiguration":{},"eksConfiguration":{"clusterArn":"x"}},` + good + `}`, "exactly one"},
		"no source":      {`{` + good + `}`, "source is required"},
		"blob not b64":   {`{"source":{"vpcConfiguration":{}},"scrapeConfiguration":{"configurationBlob":"!!"}}`, "request body"},
		"cloudwatch":     {`{"source":{"vpcConfiguration":{}},"scrapeConfiguration":{"configurationBlob":"` + blob + `"},"destination":{"cloudWatchConfiguration":{}}}`, "not supported"},
		"oversized body": {`{"alias":"` + strings.Repeat("a", 2<<20) + `"}`, "request body"},
	} {
		t.Run(name, func(t *testing.T) {
			status, msg := post(tc.body)
			require.Equal(t, http.StatusBadRequest, status, msg)
			require.Contains(t, msg, "ValidationException")
			require.Contains(t, msg, tc.msg)
		})
	}

	desc, err := client.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, "nodes", aws.ToString(desc.Scraper.Alias))
	require.Equal(t, nodeScrape, string(desc.Scraper.ScrapeConfiguration.(*types.ScrapeConfigurationMemberConfigurationBlob).Value))
	require.Equal(t, aws.ToString(ws.Arn), aws.ToString(desc.Scraper.Destination.(*types.DestinationMemberAmpConfiguration).Value.WorkspaceArn))
	require.Equal(t, []string{"subnet-1"}, desc.Scraper.Source.(*types.SourceMemberVpcConfiguration).Value.SubnetIds)
	require.Equal(t, map[string]string{"team": "mesh"}, desc.Scraper.Tags)
	_, err = client.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String("s-00000000-0000-4000-8000-000000000000")})
	require.Equal(t, "ResourceNotFoundException", code(err))
	_, err = client.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String("ws-nope")})
	require.Equal(t, "ValidationException", code(err))

	// Only an ACTIVE scraper is updated; the runner makes it so.
	_, err = client.UpdateScraper(ctx, &amp.UpdateScraperInput{ScraperId: aws.String(id), Alias: aws.String("renamed")})
	require.Equal(t, "ConflictException", code(err))
	_, err = cat.SetScraperStatus(ctx, id, catalog.ScraperCreating, catalog.ScraperActive, "")
	require.NoError(t, err)
	upd, err := client.UpdateScraper(ctx, &amp.UpdateScraperInput{ScraperId: aws.String(id), Alias: aws.String("renamed")})
	require.NoError(t, err)
	require.Equal(t, types.ScraperStatusCodeUpdating, upd.Status.StatusCode)

	second, err := create("second", "", nodeScrape)
	require.NoError(t, err)
	_, err = create("third", "", nodeScrape)
	require.NoError(t, err)
	_, err = create("fourth", "", nodeScrape)
	require.Equal(t, "ServiceQuotaExceededException", code(err))
	require.ErrorContains(t, err, "--scraper.max-scrapers 3")

	var ids []string
	for p := amp.NewListScrapersPaginator(client, &amp.ListScrapersInput{MaxResults: aws.Int32(2)}); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page.Scrapers), 2)
		for _, s := range page.Scrapers {
			ids = append(ids, aws.ToString(s.ScraperId))
		}
	}
	require.Len(t, ids, 3)
	list, err := client.ListScrapers(ctx, &amp.ListScrapersInput{Filters: map[string][]string{"alias": {"renamed", "second"}, "status": {"CREATING"}}})
	require.NoError(t, err)
	require.Len(t, list.Scrapers, 1)
	require.Equal(t, aws.ToString(second.ScraperId), aws.ToString(list.Scrapers[0].ScraperId))
	_, err = client.ListScrapers(ctx, &amp.ListScrapersInput{Filters: map[string][]string{"colour": {"red"}}})
	require.Equal(t, "ValidationException", code(err))

	// Tags, through the tagging operations on the scraper's ARN.
	arn := aws.String(aws.ToString(created.Arn))
	_, err = client.TagResource(ctx, &amp.TagResourceInput{ResourceArn: arn, Tags: map[string]string{"env": "prod"}})
	require.NoError(t, err)
	_, err = client.UntagResource(ctx, &amp.UntagResourceInput{ResourceArn: arn, TagKeys: []string{"team"}})
	require.NoError(t, err)
	tags, err := client.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: arn})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"env": "prod"}, tags.Tags)
	_, err = client.ListTagsForResource(ctx, &amp.ListTagsForResourceInput{ResourceArn: aws.String("arn:aws:aps:us-east-1:123456789012:scraper/s-00000000-0000-4000-8000-000000000000")})
	require.Equal(t, "ResourceNotFoundException", code(err))

	// Logging configuration.
	_, err = client.DescribeScraperLoggingConfiguration(ctx, &amp.DescribeScraperLoggingConfigurationInput{ScraperId: aws.String(id)})
	require.Equal(t, "ResourceNotFoundException", code(err))
	group := "arn:aws:logs:us-east-1:123456789012:log-group:scrapers:*"
	_, err = client.UpdateScraperLoggingConfiguration(ctx, &amp.UpdateScraperLoggingConfigurationInput{ScraperId: aws.String(id),
		LoggingDestination: &types.ScraperLoggingDestinationMemberCloudWatchLogs{Value: types.CloudWatchLogDestination{LogGroupArn: aws.String(group)}},
		ScraperComponents:  []types.ScraperComponent{{Type: types.ScraperComponentTypeCollector}}})
	require.NoError(t, err)
	lc, err := client.DescribeScraperLoggingConfiguration(ctx, &amp.DescribeScraperLoggingConfigurationInput{ScraperId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, group, aws.ToString(lc.LoggingDestination.(*types.ScraperLoggingDestinationMemberCloudWatchLogs).Value.LogGroupArn))
	require.Equal(t, types.ScraperComponentTypeCollector, lc.ScraperComponents[0].Type)
	_, err = client.DeleteScraperLoggingConfiguration(ctx, &amp.DeleteScraperLoggingConfigurationInput{ScraperId: aws.String(id)})
	require.NoError(t, err)

	def, err := client.GetDefaultScraperConfiguration(ctx, &amp.GetDefaultScraperConfigurationInput{})
	require.NoError(t, err)
	_, _, err = controlplane.ValidateScrapeConfiguration(def.Configuration)
	require.NoError(t, err, "the default configuration is one a scraper may have")

	del, err := client.DeleteScraper(ctx, &amp.DeleteScraperInput{ScraperId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, types.ScraperStatusCodeDeleting, del.Status.StatusCode)
}
