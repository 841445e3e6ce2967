package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/aws/smithy-go"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestManagedScraper creates, with the AWS SDK's amp client, a scraper
// whose vpcConfiguration scrapes Debian's prometheus-node-exporter into a
// workspace: it becomes ACTIVE, its target is up under
// /scrapers/{id}/api/v1/targets, and node_exporter's series are queried
// through the workspace. It keeps scraping after the server restarts, and
// DeleteScraper stops it, its series ending with staleness markers. A
// scraper naming an EKS cluster the server does not know fails with a
// reason naming the flag that registers one.
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
	// Its series end with staleness markers, as a Prometheus target's that
	// goes away: up of job node is gone at once rather than for the 5m
	// lookback, as are node_exporter's own series.
	deleted := time.Now()
	apptest.Eventually(t, 15*time.Second, func() error {
		for _, q := range []string{`up{job="node"}`, `node_cpu_seconds_total{job="node"}`} {
			v, err := apptest.QueryVector(t, api, q, time.Now())
			if err != nil {
				return err
			}
			if len(v) != 0 {
				return fmt.Errorf("%s: %d series, not marked stale yet", q, len(v))
			}
		}
		return nil
	})
	t.Logf("series stale %v after DeleteScraper", time.Since(deleted).Round(100*time.Millisecond))
	// Nothing scrapes node any more.
	time.Sleep(3 * time.Second)
	v, err := apptest.QueryVector(t, api, `up{job="node"}`, time.Now())
	require.NoError(t, err)
	require.Empty(t, v, "nothing scrapes node after DeleteScraper")
}

// TestManagedScraperCortex runs a scraper and an anomaly detector under
// the Cortex engine on two replicas sharing PostgreSQL. Exactly one
// replica runs each (the catalog's leases): node_exporter is scraped once
// a second, not twice, and only the holder answers the scraper's targets.
// Killed with SIGKILL, the holder's leases expire and the other replica
// takes both over within the lease duration: node_exporter's samples and
// the detector's score keep arriving in Cortex, and the detector goes on
// from the model its previous runner saved in the catalog.
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
	const lease = 3 * time.Second
	flags := []string{"--auth=sigv4", "--db", db, "--secrets-key-file", key, "--engine=cortex", "--cortex.url", cx.URL(),
		"--scraper.poll-interval=1s", "--scraper.lease-duration=" + lease.String()}
	replicas := []*apptest.Orrery{apptest.StartOrrery(t, t.TempDir(), flags...), apptest.StartOrrery(t, t.TempDir(), flags...)}
	admin := signer{adminKey, adminSecret}
	node := startNodeExporter(t)

	client := ampAdmin(replicas[1])
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("scraped")})
	require.NoError(t, err)
	wsID := aws.ToString(ws.WorkspaceId)
	// query runs an instant query through replica o.
	query := func(o *apptest.Orrery, q string) (apptest.Vector, error) {
		code, body := admin.do(t, http.MethodGet, o.URL(wsID, "/api/v1/query?query="+url.QueryEscape(q)), nil, time.Now(), nil)
		var r struct {
			Data struct{ Result apptest.Vector } `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); code != http.StatusOK || err != nil {
			return nil, fmt.Errorf("query %s: %d %s", q, code, body)
		}
		return r.Data.Result, nil
	}
	// latest is the timestamp of q's newest sample (one series), 0 if none.
	latest := func(o *apptest.Orrery, q string) float64 {
		v, err := query(o, "timestamp("+q+")")
		if err != nil || len(v) != 1 {
			return 0
		}
		f, _ := strconv.ParseFloat(v[0].Value[1].(string), 64)
		return f
	}
	// held returns the leases a replica holds, by kind, from its metrics.
	held := func(o *apptest.Orrery, metric string) int {
		code, body := admin.do(t, http.MethodGet, "http://"+o.Addr+"/metrics", nil, time.Now(), nil)
		require.Equal(t, http.StatusOK, code)
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, metric+" "); ok {
				n, err := strconv.ParseFloat(v, 64)
				require.NoError(t, err)
				return int(n)
			}
		}
		return 0
	}
	// holder waits until exactly one replica holds the lease, and says which.
	holder := func(metric string) (int, time.Time) {
		var h int
		apptest.Eventually(t, 60*time.Second, func() error {
			a, b := held(replicas[0], metric), held(replicas[1], metric)
			if a+b != 1 {
				return fmt.Errorf("%s: %d and %d", metric, a, b)
			}
			h = b
			return nil
		})
		// And it stays so over two polls of the other replica.
		time.Sleep(2 * time.Second)
		require.Equal(t, 1, held(replicas[h], metric), metric)
		require.Equal(t, 0, held(replicas[1-h], metric), metric)
		return h, time.Now()
	}

	// The detector's history: an hour of a slow wave every 30 s, written
	// through the replicas; it keeps arriving every 5 s while the test runs.
	now := time.Now()
	var series []prompb.TimeSeries
	for i := 120; i >= 1; i-- {
		at := now.Add(-time.Duration(i) * 30 * time.Second)
		series = append(series, ts("handover_load", at.UnixMilli(), 5+math.Sin(float64(i)/20), "svc", "payments"))
	}
	code, body := admin.write(t, replicas[0].RemoteWriteURL(wsID), &prompb.WriteRequest{Timeseries: series})
	require.Equal(t, http.StatusOK, code/100*100, body)
	stopWriting := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			case <-time.After(5 * time.Second):
			}
			// Through whichever replica is alive.
			for _, o := range replicas {
				if code, _ := admin.tryWrite(o.RemoteWriteURL(wsID), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
					ts("handover_load", time.Now().UnixMilli(), 5+math.Sin(float64(i)/20), "svc", "payments")}}); code/100 == 2 {
					break
				}
			}
		}
	}()
	t.Cleanup(func() { close(stopWriting); <-writerDone })

	blob := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [%q]\n", node)
	created, err := client.CreateScraper(ctx, &amp.CreateScraperInput{
		Source:              &types.SourceMemberVpcConfiguration{Value: types.VpcConfiguration{SubnetIds: []string{"subnet-1"}, SecurityGroupIds: []string{"sg-1"}}},
		Destination:         &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: ws.Arn}},
		ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: []byte(blob)}})
	require.NoError(t, err)
	id := aws.ToString(created.ScraperId)
	detector, err := client.CreateAnomalyDetector(ctx, &amp.CreateAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, Alias: aws.String("load"),
		EvaluationIntervalInSeconds: aws.Int32(30),
		Configuration: &types.AnomalyDetectorConfigurationMemberRandomCutForest{Value: types.RandomCutForestConfiguration{
			Query: aws.String(`avg by (svc) (handover_load)`), ShingleSize: aws.Int32(4), SampleSize: aws.Int32(32)}}})
	require.NoError(t, err)
	apptest.Eventually(t, 30*time.Second, func() error {
		d, err := client.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)})
		if err == nil && d.Scraper.Status.StatusCode != types.ScraperStatusCodeActive {
			err = fmt.Errorf("status %s", d.Scraper.Status.StatusCode)
		}
		return err
	})
	apptest.Eventually(t, 60*time.Second, func() error {
		d, err := client.DescribeAnomalyDetector(ctx, &amp.DescribeAnomalyDetectorInput{WorkspaceId: ws.WorkspaceId, AnomalyDetectorId: detector.AnomalyDetectorId})
		if err == nil && d.AnomalyDetector.Status.StatusCode != types.AnomalyDetectorStatusCodeActive {
			err = fmt.Errorf("status %s (%s)", d.AnomalyDetector.Status.StatusCode, aws.ToString(d.AnomalyDetector.Status.StatusReason))
		}
		return err
	})

	// One replica scrapes: node_exporter's up has one sample a second, not
	// two; its holder answers the targets and the other does not run it.
	s, _ := holder("orrery_scraper_leases_held")
	apptest.Eventually(t, 60*time.Second, func() error {
		v, err := query(replicas[1-s], `count_over_time(up{job="node"}[20s])`)
		if err != nil || len(v) != 1 {
			return fmt.Errorf("up through the other replica: %v %v", v, err)
		}
		if n, _ := strconv.ParseFloat(v[0].Value[1].(string), 64); n < 15 || n > 23 {
			return fmt.Errorf("%v samples of up in 20s at a 1s interval", n)
		}
		return nil
	})
	code, body = admin.do(t, http.MethodGet, "http://"+replicas[s].Addr+"/scrapers/"+id+"/api/v1/targets", nil, time.Now(), nil)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"health":"up"`)
	code, body = admin.do(t, http.MethodGet, "http://"+replicas[1-s].Addr+"/scrapers/"+id+"/api/v1/targets", nil, time.Now(), nil)
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "does not run on this server")
	// The detector's score is written by one replica.
	d, _ := holder("orrery_anomaly_leases_held")
	score := `anomaly_detector:score{svc="payments"}`
	apptest.Eventually(t, 90*time.Second, func() error {
		if latest(replicas[1-s], score) == 0 {
			return fmt.Errorf("no score yet")
		}
		return nil
	})

	// kill ends replica k with SIGKILL; the other takes over its leases
	// once they expire, and the scraper's samples keep arriving.
	kill := func(k int) {
		killed := time.Now()
		replicas[k].Kill()
		other := replicas[1-k]
		apptest.Eventually(t, 2*lease+5*time.Second, func() error {
			if held(other, "orrery_scraper_leases_held") != 1 {
				return errors.New("the scraper is not taken over yet")
			}
			return nil
		})
		t.Logf("scraper lease taken over %v after the kill (lease %v)", time.Since(killed).Round(100*time.Millisecond), lease)
		apptest.Eventually(t, 2*lease+10*time.Second, func() error {
			if at := latest(other, `up{job="node"}`); at < float64(killed.Add(lease).Unix()) {
				return fmt.Errorf("newest up sample at %v, killed at %v", at, killed.Unix())
			}
			return nil
		})
		t.Logf("node_exporter samples arrive again %v after the kill", time.Since(killed).Round(100*time.Millisecond))
		code, body := admin.do(t, http.MethodGet, "http://"+other.Addr+"/scrapers/"+id+"/api/v1/targets", nil, time.Now(), nil)
		require.Equal(t, http.StatusOK, code, body)
	}
	// detectorMoved checks that the detector runs on replica k after
	// at: its score has a sample after it, and it loaded the saved model.
	detectorMoved := func(k int, at time.Time) {
		apptest.Eventually(t, 2*lease+5*time.Second, func() error {
			if held(replicas[k], "orrery_anomaly_leases_held") != 1 {
				return errors.New("the detector is not taken over yet")
			}
			return nil
		})
		apptest.Eventually(t, 30*time.Second+2*lease+20*time.Second, func() error {
			if ts := latest(replicas[k], score); ts < float64(at.Unix()) {
				return fmt.Errorf("newest score at %v, the holder stopped at %v", ts, at.Unix())
			}
			return nil
		})
		t.Logf("the detector's score is written again %v after its holder stopped", time.Since(at).Round(time.Second))
		require.Contains(t, replicas[k].Output(), "anomaly detector model loaded", "the model saved by the previous runner is loaded from the catalog")
	}

	killedAt := time.Now()
	kill(s)
	if d == s {
		detectorMoved(1-s, killedAt)
		return
	}
	// The detector ran on the survivor: restart the killed replica, then
	// kill the survivor, so that the detector (and the scraper) move.
	replicas[s].Restart()
	killedAt = time.Now()
	kill(1 - s)
	detectorMoved(s, killedAt)
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

// tryWrite sends a signed remote write request, for a goroutine: a
// replica that is down is an error, not a test failure.
func (s signer) tryWrite(u string, wr *prompb.WriteRequest) (int, error) {
	b, err := wr.Marshal()
	if err != nil {
		return 0, err
	}
	body := snappy.Encode(nil, b)
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret},
		req, hex.EncodeToString(sum[:]), "aps", "us-east-1", time.Now()); err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Body.Close()
}
