package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestManagedScraper creates, with the AWS SDK's amp client, a scraper
// whose vpcConfiguration scrapes Debian's prometheus-node-exporter into a
// workspace: it becomes ACTIVE, its target is up under
// /scrapers/{id}/api/v1/targets, and node_exporter's series are queried
// through the workspace. It keeps scraping after the server restarts, and
// DeleteScraper stops it. A scraper naming an EKS cluster the server does
// not know fails with a reason naming the flag that registers one.
func TestManagedScraper(t *testing.T) {
	ctx := context.Background()
	node := startNodeExporter(t)
	o := apptest.StartOrrery(t, t.TempDir(), "--scraper.poll-interval=1s")
	client := amp.New(amp.Options{BaseEndpoint: aws.String("http://" + o.Addr), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAORRERYTEST", "secret", "")})
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("scraped")})
	require.NoError(t, err)
	api := o.URL(aws.ToString(ws.WorkspaceId), "/api/v1")

	blob := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [%q]\n", node)
	created, err := client.CreateScraper(ctx, &amp.CreateScraperInput{Alias: aws.String("node"),
		Source:              &types.SourceMemberVpcConfiguration{Value: types.VpcConfiguration{SubnetIds: []string{"subnet-1"}, SecurityGroupIds: []string{"sg-1"}}},
		Destination:         &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: ws.Arn}},
		ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(blob)}})
	require.NoError(t, err)
	id := aws.ToString(created.ScraperId)
	status := func() (types.ScraperStatusCode, string, error) {
		d, err := client.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)})
		if err != nil {
			return "", "", err
		}
		return d.Scraper.Status.StatusCode, aws.ToString(d.Scraper.StatusReason), nil
	}
	waitActive := func() {
		apptest.Eventually(t, 30*time.Second, func() error {
			code, reason, err := status()
			if err == nil && code != types.ScraperStatusCodeActive {
				err = fmt.Errorf("status %s %s", code, reason)
			}
			return err
		})
	}
	waitActive()

	// The scrape's series arrive in the workspace; lastScrape is the
	// newest up sample's time (timestamp() of the selector itself: of an
	// expression it would be the evaluation time).
	lastScrape := func() (float64, error) {
		v, err := apptest.QueryVector(t, api, `timestamp(up{job="node"})`, time.Now())
		if err != nil {
			return 0, err
		}
		if len(v) != 1 {
			return 0, fmt.Errorf("up of job node: %d series", len(v))
		}
		return strconv.ParseFloat(v[0].Value[1].(string), 64)
	}
	apptest.Eventually(t, 30*time.Second, func() error {
		if _, err := lastScrape(); err != nil {
			return err
		}
		v, err := apptest.QueryVector(t, api, `count(node_cpu_seconds_total{job="node", instance=`+strconv.Quote(node)+`})`, time.Now())
		if err == nil && len(v) != 1 {
			err = errors.New("no node_cpu_seconds_total")
		}
		return err
	})
	code, body := apptest.Get(t, "http://"+o.Addr+"/scrapers/"+id+"/api/v1/targets")
	require.Equal(t, http.StatusOK, code, "%s", body)
	var targets struct {
		Data struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
				Health    string `json:"health"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &targets))
	require.Len(t, targets.Data.ActiveTargets, 1)
	require.Equal(t, "http://"+node+"/metrics", targets.Data.ActiveTargets[0].ScrapeURL)
	require.Equal(t, "up", targets.Data.ActiveTargets[0].Health)
	_, metrics := apptest.Get(t, "http://"+o.Addr+"/metrics")
	require.Contains(t, string(metrics), `orrery_scraper_samples_written_total{scraper="`+id+`"}`)

	// An EKS cluster the server was not given.
	eks, err := client.CreateScraper(ctx, &amp.CreateScraperInput{
		Source:              &types.SourceMemberEksConfiguration{Value: types.EksConfiguration{ClusterArn: aws.String("arn:aws:eks:us-east-1:000000000000:cluster/nowhere"), SubnetIds: []string{"subnet-1"}}},
		Destination:         &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: ws.Arn}},
		ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(blob)}})
	require.NoError(t, err)
	apptest.Eventually(t, 30*time.Second, func() error {
		d, err := client.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: eks.ScraperId})
		if err != nil {
			return err
		}
		if d.Scraper.Status.StatusCode != types.ScraperStatusCodeCreationFailed {
			return fmt.Errorf("status %s", d.Scraper.Status.StatusCode)
		}
		require.Contains(t, aws.ToString(d.Scraper.StatusReason), "--scraper.kubernetes-cluster arn:aws:eks:us-east-1:000000000000:cluster/nowhere=KUBECONFIG_PATH")
		return nil
	})

	// The scraper survives a restart and scrapes again.
	o.Stop()
	restarted := float64(time.Now().UnixMilli()) / 1000
	o.Restart()
	waitActive()
	apptest.Eventually(t, 30*time.Second, func() error {
		ts, err := lastScrape()
		if err == nil && ts <= restarted {
			err = fmt.Errorf("newest scrape at %f, before the restart at %f", ts, restarted)
		}
		return err
	})

	// DeleteScraper stops the scrape and removes the scraper.
	_, err = client.DeleteScraper(ctx, &amp.DeleteScraperInput{ScraperId: aws.String(id)})
	require.NoError(t, err)
	apptest.Eventually(t, 30*time.Second, func() error {
		_, _, err := status()
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "ResourceNotFoundException" {
			return nil
		}
		return fmt.Errorf("scraper still there: %v", err)
	})
	// Nothing scrapes node any more: the newest up sample stays the one
	// written before the deletion (Prometheus' scrape manager, stopped,
	// writes no staleness markers; the series end at their last sample).
	before, err := lastScrape()
	require.NoError(t, err)
	time.Sleep(3 * time.Second)
	after, err := lastScrape()
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing scrapes node after DeleteScraper")
}

// TestManagedScraperCortex runs a scraper under the Cortex engine: two
// replicas share PostgreSQL, replica A runs the scrapers and B is started
// with --scraper.disabled (there is no leader election yet). The scraper
// created through B is run by A, and node_exporter's series reach Cortex
// and are queried through B.
func TestManagedScraperCortex(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, Cortex, two servers and node_exporter")
	}
	ctx := context.Background()
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	pg := apptest.StartPostgres(t)
	db := pg.NewDatabase(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	cx := apptest.StartCortex(t)
	flags := []string{"--auth=sigv4", "--db", db, "--secrets-key-file", key, "--engine=cortex", "--cortex.url", cx.URL(), "--scraper.poll-interval=1s"}
	a := apptest.StartOrrery(t, t.TempDir(), flags...)
	b := apptest.StartOrrery(t, t.TempDir(), append(flags, "--scraper.disabled")...)
	admin := signer{adminKey, adminSecret}
	node := startNodeExporter(t)

	client := ampAdmin(b)
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("scraped")})
	require.NoError(t, err)
	blob := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [%q]\n", node)
	created, err := client.CreateScraper(ctx, &amp.CreateScraperInput{
		Source:              &types.SourceMemberVpcConfiguration{Value: types.VpcConfiguration{SubnetIds: []string{"subnet-1"}, SecurityGroupIds: []string{"sg-1"}}},
		Destination:         &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: ws.Arn}},
		ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(blob)}})
	require.NoError(t, err)
	id := aws.ToString(created.ScraperId)
	apptest.Eventually(t, 30*time.Second, func() error {
		d, err := client.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)})
		if err == nil && d.Scraper.Status.StatusCode != types.ScraperStatusCodeActive {
			err = fmt.Errorf("status %s", d.Scraper.Status.StatusCode)
		}
		return err
	})
	apptest.Eventually(t, 60*time.Second, func() error {
		_, data := admin.apiData(t, b.URL(aws.ToString(ws.WorkspaceId), "/api/v1/query?query="+url.QueryEscape(`count(node_cpu_seconds_total{job="node"})`)))
		if !strings.Contains(data, `"value"`) {
			return fmt.Errorf("node_cpu_seconds_total through B: %s", data)
		}
		return nil
	})
	code, body := admin.do(t, http.MethodGet, "http://"+a.Addr+"/scrapers/"+id+"/api/v1/targets", nil, time.Now(), nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"health":"up"`)
	code, body = admin.do(t, http.MethodGet, "http://"+b.Addr+"/scrapers/"+id+"/api/v1/targets", nil, time.Now(), nil)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "does not run on this server")
}

// TestManagedScraperAWSCLI creates, lists and deletes a scraper with
// awscli, signed with SigV4, as README's commands do; a bad YAML blob is
// refused naming its line.
func TestManagedScraperAWSCLI(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4", "--scraper.poll-interval=1s")
	node := startNodeExporter(t)
	// Debian's awscli predates the scraper operations: the first awscli
	// on PATH (or Debian's) that has them.
	bin := ""
	for _, cand := range []string{"aws", "/usr/bin/aws"} {
		if p, err := exec.LookPath(cand); err == nil {
			if out, _ := exec.Command(p, "amp", "help").CombinedOutput(); strings.Contains(string(out), "create-scraper") {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		t.Skip("no awscli with amp create-scraper on PATH (Debian's predates the scraper operations)")
	}
	home := t.TempDir()
	aws := func(args ...string) ([]byte, error) {
		cmd := exec.Command(bin, append([]string{"amp"}, append(args, "--endpoint-url", "http://"+o.Addr, "--output", "json")...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+adminKey, "AWS_SECRET_ACCESS_KEY="+adminSecret, "AWS_DEFAULT_REGION=us-east-1",
			"HOME="+home, "AWS_CONFIG_FILE="+filepath.Join(home, "c"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "k"))
		return cmd.CombinedOutput()
	}
	out, err := aws("create-workspace", "--alias", "cli")
	require.NoError(t, err, "%s", out)
	var ws struct{ WorkspaceID string }
	require.NoError(t, json.Unmarshal(out, &ws))
	arn := "arn:aws:aps:us-east-1:000000000000:workspace/" + ws.WorkspaceID
	scrape := func(yaml string) ([]byte, error) {
		// awscli v1 base64-encodes a blob argument itself: it is given the YAML.
		cfg, err := json.Marshal(map[string]string{"configurationBlob": yaml})
		require.NoError(t, err)
		return aws("create-scraper", "--alias", "node", "--source", "vpcConfiguration={subnetIds=[subnet-0],securityGroupIds=[sg-0]}",
			"--destination", "ampConfiguration={workspaceArn="+arn+"}", "--scrape-configuration", string(cfg))
	}
	out, err = scrape("scrape_configs:\n  - job_name: node\n   static_configs: []\n")
	require.Error(t, err)
	require.Contains(t, string(out), "ValidationException")
	require.Contains(t, string(out), "line 2")

	out, err = scrape(fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [%q]\n", node))
	require.NoError(t, err, "%s", out)
	var created struct{ ScraperID string }
	require.NoError(t, json.Unmarshal(out, &created))
	apptest.Eventually(t, 30*time.Second, func() error {
		out, err := aws("list-scrapers", "--filters", "status=ACTIVE")
		if err == nil && !strings.Contains(string(out), created.ScraperID) {
			err = fmt.Errorf("not ACTIVE: %s", out)
		}
		return err
	})
	out, err = aws("delete-scraper", "--scraper-id", created.ScraperID)
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "DELETING")
}
