package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/catalog"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestScrapersPageAPI checks that a workspace's scrapers page lists only
// the scrapers writing into it, says why one has no targets here, and
// answers another workspace's scraper as not found. (The targets of a
// running scraper are checked against the real runner in the e2e test
// TestManagedScraperKubernetes.)
func TestScrapersPageAPI(t *testing.T) {
	ctx := context.Background()
	cat, mine, other := testCatalog(t, t.TempDir())
	hash, err := HashPassword("admin-pass")
	require.NoError(t, err)
	require.NoError(t, cat.CreateUser(ctx, catalog.User{Name: "ada", PasswordHash: hash, Role: RoleViewer, Workspaces: []string{AllWorkspaces}, CreatedAt: time.Now()}))
	add := func(id string, ws workspace.ID, status, reason, source string) {
		_, _, err := cat.CreateScraper(ctx, catalog.Scraper{ID: id, Alias: "a-" + id[:4], Status: status, StatusReason: reason, Workspace: ws,
			Source: json.RawMessage(source), Configuration: []byte("scrape_configs: []\n"), CreatedAt: time.Now(), ModifiedAt: time.Now()}, 0)
		require.NoError(t, err)
	}
	const eks = "s-00000000-0000-4000-8000-000000000001"
	const vpc = "s-00000000-0000-4000-8000-000000000002"
	const elsewhere = "s-00000000-0000-4000-8000-000000000003"
	add(eks, mine, catalog.ScraperCreationFailed, "cluster c is not registered", `{"eksConfiguration":{"clusterArn":"arn:aws:eks:us-east-1:0:cluster/c"}}`)
	add(vpc, mine, catalog.ScraperActive, "", `{"vpcConfiguration":{"subnetIds":["subnet-1","subnet-2"]}}`)
	add(elsewhere, other, catalog.ScraperActive, "", `{"vpcConfiguration":{"subnetIds":["subnet-9"]}}`)

	h, err := New(Config{}, cat, echo(), echo(), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, code := login(t, srv.URL, "ada", "admin-pass")
	require.Equal(t, http.StatusOK, code)

	code, body := c.do("GET", "/ui/api/workspaces/"+mine.String()+"/scrapers", "")
	require.Equal(t, http.StatusOK, code, body)
	var list []scraperJSON
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list, 2, body)
	require.Equal(t, eks, list[0].ID)
	require.Equal(t, "EKS cluster arn:aws:eks:us-east-1:0:cluster/c", list[0].Source)
	require.False(t, list[0].Running)
	require.Equal(t, "scraper "+eks+" is CREATION_FAILED and does not run on this server: cluster c is not registered", list[0].NotRunning)
	require.Equal(t, vpc, list[1].ID)
	require.Equal(t, "VPC, subnets subnet-1, subnet-2", list[1].Source)

	code, body = c.do("GET", "/ui/api/workspaces/"+mine.String()+"/scrapers/"+vpc+"/targets", "")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Contains(t, body, "does not run on this server")
	for _, id := range []string{elsewhere, "s-nonexistent"} {
		code, body = c.do("GET", "/ui/api/workspaces/"+mine.String()+"/scrapers/"+id+"/targets", "")
		require.Equal(t, http.StatusNotFound, code, body)
		require.Contains(t, body, "does not exist or does not write into workspace "+mine.String())
	}
}
