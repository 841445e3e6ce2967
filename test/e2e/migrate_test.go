package e2e

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestMigrateToCortex moves a workspace from the embedded engine to the
// Cortex engine: an embedded server (catalog in PostgreSQL) takes Envoy
// data from 6 hours ago to now; with the server stopped, `orrery
// migrate-to-cortex` writes the workspace's TSDB as blocks into the test
// Cortex's filesystem bucket; a Cortex-engine replica on the same catalog
// then answers queries over the whole range, served by Cortex's
// store-gateway from the migrated blocks, exactly as the embedded server.
func TestMigrateToCortex(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, Cortex and two servers")
	}
	ctx := context.Background()
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	admin := signer{adminKey, adminSecret}
	pg := apptest.StartPostgres(t)
	catalogDB := pg.NewDatabase(t)
	common := []string{"--auth=sigv4", "--db", catalogDB, "--secrets-key-file", filepath.Join(t.TempDir(), "secrets.key")}
	cx := apptest.StartCortex(t)

	// The workspace is made through the embedded server's API: its ID is
	// in the shared catalog, which is how the Cortex engine will know it.
	dataDir := t.TempDir()
	embedded := apptest.StartOrrery(t, dataDir, append(common, "--limits.ingestion-rate=0")...)
	created, err := ampAdmin(embedded).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("migrated")})
	require.NoError(t, err)
	ws := aws.ToString(created.WorkspaceId)

	// Three one-hour Envoy datasets: 6–5 h ago and 3.5–2.5 h ago (older
	// than an ingester's head holds), and the last hour; oldest first, as
	// a TSDB head takes them. The embedded server compacts the older ones
	// into blocks while it runs: the migration reads blocks and WAL.
	now := time.Now().Truncate(time.Minute)
	ends := []time.Time{now.Add(-5 * time.Hour), now.Add(-150 * time.Minute), now.Add(-time.Minute)}
	for _, end := range ends {
		data := envoyDataset(end)
		for i := 0; i < len(data); i += 20 {
			code, body := admin.write(t, embedded.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: data[i:min(i+20, len(data))]})
			require.Equal(t, http.StatusNoContent, code, body)
		}
	}
	migrate := func(args ...string) (string, error) {
		out, err := exec.Command(apptest.OrreryBinary(t), append([]string{"migrate-to-cortex", "--data-dir", dataDir,
			"--workspace", ws, "--bucket-dir", cx.BlocksDir}, args...)...).CombinedOutput()
		return string(out), err
	}

	t.Run("refused while the server has the workspace open", func(t *testing.T) {
		out, err := migrate()
		require.Error(t, err, out)
		require.Contains(t, out, "workspace TSDB is locked")
		require.Contains(t, out, "stop the embedded server")
		_, err = os.Stat(filepath.Join(cx.BlocksDir, ws))
		if err == nil {
			es, _ := os.ReadDir(filepath.Join(cx.BlocksDir, ws))
			require.Empty(t, es, "nothing written")
		}
	})

	t.Run("refused for a workspace without data", func(t *testing.T) {
		other := "ws-01234567-89ab-cdef-0123-456789abcdef"
		out, err := exec.Command(apptest.OrreryBinary(t), "migrate-to-cortex", "--data-dir", dataDir,
			"--workspace", other, "--bucket-dir", cx.BlocksDir).CombinedOutput()
		require.Error(t, err)
		require.Equal(t, 1, err.(*exec.ExitError).ExitCode())
		require.Contains(t, string(out), "workspace not found: no TSDB at "+filepath.Join(dataDir, "workspaces", other, "tsdb"))
		require.Contains(t, string(out), "it has workspaces "+ws)
	})

	embedded.Stop()
	started := time.Now()
	out, err := migrate()
	require.NoError(t, err, out)
	t.Logf("orrery migrate-to-cortex (%s):\n%s", time.Since(started).Round(time.Millisecond), out)
	var blocks []string
	for _, m := range regexp.MustCompile(`(?m)^block (\w{26}) written `).FindAllStringSubmatch(out, -1) {
		blocks = append(blocks, m[1])
	}
	// 6 h ago to now spans at least four 2h windows with data.
	require.GreaterOrEqual(t, len(blocks), 4, out)
	require.Regexp(t, fmt.Sprintf(`migrated workspace %s to tenant %s in \S+: %d blocks \(%d written, 0 already there\)`, ws, ws, len(blocks), len(blocks)), out)

	t.Run("a rerun writes nothing", func(t *testing.T) {
		out, err := migrate()
		require.NoError(t, err, out)
		require.Contains(t, out, fmt.Sprintf("%d blocks (0 written, %d already there)", len(blocks), len(blocks)))
	})

	// The embedded server answers from the same TSDB again, as the
	// reference; the Cortex-engine replica shares the catalog.
	embedded.Restart()
	replica := apptest.StartOrrery(t, t.TempDir(), append(common, "--engine=cortex", "--cortex.url", cx.URL())...)

	// Cortex serves blocks its compactor listed in the tenant's bucket
	// index; the querier loads the index on the tenant's first query, so
	// none is sent before.
	waitForBucketIndex := func(tenant string, blocks []string) {
		t.Helper()
		apptest.Eventually(t, 60*time.Second, func() error {
			ids, err := bucketIndexBlocks(filepath.Join(cx.BlocksDir, tenant, "bucket-index.json.gz"))
			if err != nil {
				return err
			}
			for _, b := range blocks {
				if !strings.Contains(ids, b) {
					return fmt.Errorf("block %s not in the bucket index of %s yet (%s)", b, tenant, ids)
				}
			}
			return nil
		})
	}
	waitForBucketIndex(ws, blocks)

	// compareAs compares the embedded server's answer for the workspace
	// with the Cortex engine's for the workspace cortexWS.
	compareAs := func(cortexWS, endpoint string, params url.Values) error {
		q := params.Encode()
		codeR, dataR := admin.apiData(t, embedded.URL(ws, "/api/v1"+endpoint+"?"+q))
		codeC, dataC := admin.apiData(t, replica.URL(cortexWS, "/api/v1"+endpoint+"?"+q))
		if codeR == codeC && strings.HasPrefix(dataR, "error: ") && strings.HasPrefix(dataC, "error: ") &&
			strings.Contains(dataR, strings.TrimPrefix(dataC, "error: ")) {
			return nil // Cortex names the parameter less (see TestCortexEngineReplicas).
		}
		if codeR != codeC || dataR != dataC {
			return fmt.Errorf("%s?%s:\nembedded %d %s\ncortex   %d %s", endpoint, q, codeR, dataR, codeC, dataC)
		}
		return nil
	}
	compare := func(endpoint string, params url.Values) error { return compareAs(ws, endpoint, params) }
	from, to := ends[0].Add(-time.Hour), ends[2]
	rangeParams := func(query string) url.Values {
		return url.Values{"query": {query}, "start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}, "step": {"60"}}
	}
	// The store-gateway loads the blocks within its sync interval. Cortex's
	// ingesters never had this tenant's samples: whatever it answers comes
	// from the migrated blocks.
	apptest.Eventually(t, 60*time.Second, func() error {
		return compare("/query_range", rangeParams(`sum(envoy_cluster_upstream_rq_total)`))
	})
	_, probe := admin.apiData(t, replica.URL(ws, "/api/v1/query_range?"+rangeParams(`sum(envoy_cluster_upstream_rq_total)`).Encode()))
	for _, end := range ends {
		require.Contains(t, probe, fmt.Sprintf(" %d,", end.Unix()), "the answer covers the data ending at %s", end)
	}
	for _, query := range differentialQueries {
		require.NoError(t, compare("/query_range", rangeParams(query)))
		for _, end := range ends {
			for _, at := range []time.Time{end, end.Add(-37*time.Minute - 7*time.Second)} {
				require.NoError(t, compare("/query", url.Values{"query": {query}, "time": {fmt.Sprint(at.Unix())}}))
			}
		}
	}
	require.NoError(t, compare("/series", url.Values{"match[]": {`{__name__=~"envoy_.*|mesh_.*"}`},
		"start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}}))
	require.NoError(t, compare("/label/envoy_cluster_name/values", url.Values{"start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}}))
	// The oldest hour alone: no answer comes from anything but the blocks.
	require.NoError(t, compare("/series", url.Values{"match[]": {`{pod="frontend-1"}`},
		"start": {fmt.Sprint(ends[0].Add(-time.Hour).Unix())}, "end": {fmt.Sprint(ends[0].Unix())}}))

	t.Run("--tenant gives the history to a workspace made on the Cortex engine", func(t *testing.T) {
		created, err := ampAdmin(replica).CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("fresh")})
		require.NoError(t, err)
		fresh := aws.ToString(created.WorkspaceId)
		embedded.Stop()
		out, err := migrate("--tenant", fresh)
		embedded.Restart()
		require.NoError(t, err, out)
		require.Contains(t, out, "to tenant "+fresh)
		var freshBlocks []string
		for _, m := range regexp.MustCompile(`(?m)^block (\w{26}) written `).FindAllStringSubmatch(out, -1) {
			freshBlocks = append(freshBlocks, m[1])
		}
		require.Len(t, freshBlocks, len(blocks), out)
		waitForBucketIndex(fresh, freshBlocks)
		apptest.Eventually(t, 60*time.Second, func() error {
			return compareAs(fresh, "/query_range", rangeParams(`sum by (envoy_cluster_name) (rate(envoy_cluster_upstream_rq_total[5m]))`))
		})
		require.NoError(t, compareAs(fresh, "/query_range", rangeParams(`histogram_quantile(0.9, rate(mesh_request_duration_seconds[5m]))`)))
		require.NoError(t, compareAs(fresh, "/series", url.Values{"match[]": {`{__name__=~"envoy_.*|mesh_.*"}`},
			"start": {fmt.Sprint(from.Unix())}, "end": {fmt.Sprint(to.Unix())}}))
	})
}

// bucketIndexBlocks returns the block IDs listed in a Cortex bucket index
// (a gzipped JSON file the compactor writes), joined by spaces.
func bucketIndexBlocks(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	var idx struct {
		Blocks []struct {
			ID string `json:"block_id"`
		} `json:"blocks"`
	}
	if err := json.NewDecoder(zr).Decode(&idx); err != nil {
		return "", err
	}
	ids := make([]string, 0, len(idx.Blocks))
	for _, b := range idx.Blocks {
		ids = append(ids, b.ID)
	}
	return strings.Join(ids, " "), nil
}
