package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/aws/aws-sdk-go-v2/service/amp/types"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// scraperTargets is GET /scrapers/{id}/api/v1/targets' data, as much of it
// as the tests read.
type scraperTargets struct {
	ActiveTargets []struct {
		Labels     map[string]string `json:"labels"`
		ScrapeURL  string            `json:"scrapeUrl"`
		Health     string            `json:"health"`
		LastError  string            `json:"lastError"`
		LastScrape time.Time         `json:"lastScrape"`
	} `json:"activeTargets"`
}

func getScraperTargets(t *testing.T, o *apptest.Orrery, id string) (scraperTargets, error) {
	t.Helper()
	code, body := apptest.Get(t, "http://"+o.Addr+"/scrapers/"+id+"/api/v1/targets")
	var r struct{ Data scraperTargets }
	if code != http.StatusOK {
		return r.Data, fmt.Errorf("targets: %d %s", code, body)
	}
	return r.Data, json.Unmarshal(body, &r)
}

// health lists the targets as pod=health, sorted.
func (s scraperTargets) health() []string {
	var out []string
	for _, tg := range s.ActiveTargets {
		out = append(out, tg.Labels["namespace"]+"/"+tg.Labels["pod"]+"="+tg.Health)
	}
	slices.Sort(out)
	return out
}

// TestManagedScraperKubernetes runs a scraper whose eksConfiguration names a
// cluster registered with --scraper.kubernetes-cluster: a fake API server
// (client-go's list and watch of pods) lists pods annotated
// prometheus.io/scrape, two on Debian's node_exporter and one on a closed
// port, and one pod without the annotation. The scraper's configuration is
// the kubernetes-pods job of GetDefaultScraperConfiguration's answer. The
// pods' series arrive in the workspace labelled by relabeling with their
// pod and namespace; the targets endpoint lists them up and down; the UI's
// Scrapers page shows the same counts and errors; and a pod the watch
// deletes leaves the targets.
func TestManagedScraperKubernetes(t *testing.T) {
	ctx := context.Background()
	node := startNodeExporter(t)
	_, nodePort, err := net.SplitHostPort(node)
	require.NoError(t, err)
	_, closedPort, err := net.SplitHostPort(apptest.FreeAddr(t))
	require.NoError(t, err)
	pod := func(name, port string, scrape bool) corev1.Pod {
		ann := map[string]string{"prometheus.io/port": port}
		if scrape {
			ann["prometheus.io/scrape"] = "true"
		}
		return corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: k8stypes.UID("uid-" + name), Annotations: ann},
			Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "app"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", HostIP: "127.0.0.1",
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		}
	}
	cluster := newFakeCluster(t, []corev1.Pod{pod("web-0", nodePort, true), pod("web-1", nodePort, true),
		pod("broken", closedPort, true), pod("quiet", nodePort, false)})
	arn := "arn:aws:eks:us-east-1:000000000000:cluster/fake"
	t.Setenv("ORRERY_UI_ADMIN_PASSWORD", uiAdminPassword)
	o := apptest.StartOrrery(t, t.TempDir(), "--scraper.poll-interval=1s",
		"--scraper.kubernetes-cluster", arn+"="+writeKubeconfig(t, cluster.URL))
	client := ampClient(o)
	ws, err := client.CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("k8s")})
	require.NoError(t, err)
	wsID := aws.ToString(ws.WorkspaceId)

	// The default configuration's job for annotated pods, scraping every
	// second.
	def, err := client.GetDefaultScraperConfiguration(ctx, &amp.GetDefaultScraperConfigurationInput{})
	require.NoError(t, err)
	var full struct {
		ScrapeConfigs []map[string]any `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(def.Configuration, &full))
	i := slices.IndexFunc(full.ScrapeConfigs, func(j map[string]any) bool { return j["job_name"] == "kubernetes-pods" })
	require.GreaterOrEqual(t, i, 0, "the default configuration has no job kubernetes-pods:\n%s", def.Configuration)
	blob, err := yaml.Marshal(map[string]any{"global": map[string]any{"scrape_interval": "1s"}, "scrape_configs": full.ScrapeConfigs[i : i+1]})
	require.NoError(t, err)

	created, err := client.CreateScraper(ctx, &amp.CreateScraperInput{Alias: aws.String("pods"),
		Source:              &types.SourceMemberEksConfiguration{Value: types.EksConfiguration{ClusterArn: aws.String(arn), SubnetIds: []string{"subnet-1"}}},
		Destination:         &types.DestinationMemberAmpConfiguration{Value: types.AmpConfiguration{WorkspaceArn: ws.Arn}},
		ScrapeConfiguration: &types.ScrapeConfigurationMemberConfigurationBlob{Value: blob}})
	require.NoError(t, err)
	id := aws.ToString(created.ScraperId)
	apptest.Eventually(t, 30*time.Second, func() error {
		d, err := client.DescribeScraper(ctx, &amp.DescribeScraperInput{ScraperId: aws.String(id)})
		if err == nil && d.Scraper.Status.StatusCode != types.ScraperStatusCodeActive {
			err = fmt.Errorf("status %s %s", d.Scraper.Status.StatusCode, aws.ToString(d.Scraper.StatusReason))
		}
		return err
	})

	// The annotated pods are the targets, at their annotated ports; the
	// unannotated one is not.
	want := []string{"shop/broken=down", "shop/web-0=up", "shop/web-1=up"}
	var targets scraperTargets
	apptest.Eventually(t, 60*time.Second, func() error {
		var err error
		if targets, err = getScraperTargets(t, o, id); err != nil {
			return err
		}
		if got := targets.health(); !slices.Equal(got, want) {
			return fmt.Errorf("targets %v, want %v", got, want)
		}
		return nil
	})
	for _, tg := range targets.ActiveTargets {
		port := nodePort
		if tg.Labels["pod"] == "broken" {
			port = closedPort
			require.Contains(t, tg.LastError, "connection refused")
		}
		require.Equal(t, "http://127.0.0.1:"+port+"/metrics", tg.ScrapeURL)
		require.Equal(t, "kubernetes-pods", tg.Labels["job"])
	}

	// node_exporter's series arrive labelled with the pod and namespace.
	api := o.URL(wsID, "/api/v1")
	apptest.Eventually(t, 30*time.Second, func() error {
		v, err := apptest.QueryVector(t, api, `count by (namespace, pod) (node_cpu_seconds_total{job="kubernetes-pods"})`, time.Now())
		if err != nil {
			return err
		}
		var got []string
		for _, s := range v {
			got = append(got, s.Metric["namespace"]+"/"+s.Metric["pod"])
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"shop/web-0", "shop/web-1"}) {
			return fmt.Errorf("node_cpu_seconds_total of pods %v", got)
		}
		v, err = apptest.QueryVector(t, api, `up{job="kubernetes-pods", namespace="shop", pod="broken"}`, time.Now())
		if err == nil && (len(v) != 1 || v[0].Value[1] != "0") {
			err = fmt.Errorf("up of the broken pod: %v", v)
		}
		return err
	})

	t.Run("the Scrapers page shows what the targets endpoint says", func(t *testing.T) {
		base := "http://" + o.Addr
		bctx := browser(t)
		uiLogin(t, bctx, base, "admin", uiAdminPassword)
		dir := artifactsDir(t)
		row := `#scrapers tr[data-scraper="` + id + `"]`
		// The page reads the targets when it loads: reload it until it
		// shows a scrape, then compare it with the endpoint read then.
		apptest.Eventually(t, 30*time.Second, func() error {
			if err := chromedp.Do(bctx, chromedp.Navigate("about:blank"), chromedp.Navigate(base+"/ui/#/scrapers?ws="+wsID),
				chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
				return err
			}
			api, err := getScraperTargets(t, o, id)
			if err != nil {
				return err
			}
			up, down := 0, 0
			for _, tg := range api.ActiveTargets {
				switch tg.Health {
				case "up":
					up++
				case "down":
					down++
				}
			}
			page := fmt.Sprintf("%s up, %s down", text(t, bctx, row+" .scraper-up"), text(t, bctx, row+" .scraper-down"))
			if page != fmt.Sprintf("%d up, %d down", up, down) {
				return fmt.Errorf("the page shows %s, the targets endpoint %d up, %d down", page, up, down)
			}
			return nil
		})
		require.Equal(t, "2 up, 1 down", text(t, bctx, row+" .scraper-health"))
		rowText := text(t, bctx, row)
		for _, s := range []string{"pods", id, "ACTIVE", "EKS cluster " + arn} {
			require.Contains(t, rowText, s)
		}
		require.NotContains(t, rowText, "never", "the page shows the last scrape's time")

		// Its targets, expanded, are the endpoint's, with their errors.
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`button[data-show-targets="`+id+`"]`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-targets-of="`+id+`"] table`))))
		n := eval[int](t, bctx, `document.querySelectorAll('tr[data-targets-of="`+id+`"] tbody tr').length`)
		require.Equal(t, len(targets.ActiveTargets), n)
		for _, tg := range targets.ActiveTargets {
			sel := `tr[data-targets-of="` + id + `"] tr[data-target="` + tg.ScrapeURL + `"]`
			if tg.Labels["pod"] != "broken" {
				continue
			}
			require.Equal(t, "down", eval[string](t, bctx, `document.querySelector('`+strings.ReplaceAll(sel, `'`, `\'`)+`').dataset.health`))
			require.Contains(t, text(t, bctx, sel+" .target-error"), "connection refused")
			require.Contains(t, text(t, bctx, sel), `pod="broken"`)
		}
		screenshot(t, bctx, dir, "scrapers")
	})

	// A pod the API server deletes leaves the targets, and is no longer
	// scraped.
	deleted := time.Now()
	cluster.DeletePod(t, "shop", "web-1")
	want = []string{"shop/broken=down", "shop/web-0=up"}
	apptest.Eventually(t, 30*time.Second, func() error {
		targets, err := getScraperTargets(t, o, id)
		if err != nil {
			return err
		}
		if got := targets.health(); !slices.Equal(got, want) {
			return fmt.Errorf("targets %v, want %v", got, want)
		}
		return nil
	})
	time.Sleep(3 * time.Second)
	// Range selectors skip staleness markers: web-1 has samples in the
	// two seconds before its deletion, and none in the last two (a second
	// after it left the targets: a scrape in flight then may still land).
	scraped := func(at time.Time) int {
		v, err := apptest.QueryVector(t, api, `count_over_time(up{job="kubernetes-pods", pod="web-1"}[2s])`, at)
		require.NoError(t, err)
		if len(v) == 0 {
			return 0
		}
		n, err := strconv.Atoi(v[0].Value[1].(string))
		require.NoError(t, err)
		return n
	}
	require.Positive(t, scraped(deleted), "web-1 was scraped before its pod was deleted")
	require.Zero(t, scraped(time.Now()), "web-1 is scraped after its pod was deleted")
}
