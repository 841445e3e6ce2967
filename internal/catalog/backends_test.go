package catalog

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// TestBackends runs every catalog operation against the embedded SQLite
// file and against a real PostgreSQL server (Debian's, started here): the
// same statements must behave the same on both, and the state must
// survive reopening.
func TestBackends(t *testing.T) {
	pg := apptest.StartPostgres(t)
	for name, dsn := range map[string]func() string{
		"sqlite":   func() string { return filepath.Join(t.TempDir(), "catalog.db") },
		"postgres": func() string { return pg.NewDatabase(t) },
	} {
		t.Run(name, func(t *testing.T) { exercise(t, dsn()) })
	}
}

func exercise(t *testing.T, dsn string) {
	ctx := context.Background()
	c, err := Open(ctx, dsn)
	require.NoError(t, err)
	// Opening again (a second replica) finds the schema migrated.
	c2, err := Open(ctx, dsn)
	require.NoError(t, err)
	require.NoError(t, c2.Close())
	now := time.UnixMilli(time.Now().UnixMilli())

	// Workspaces: idempotent create, conflicts, pagination with prefix.
	w, created, err := c.CreateWorkspace(ctx, Workspace{ID: workspace.NewID(), Alias: "prod", Status: StatusActive, CreatedAt: now,
		Tags: map[string]string{"team": "mesh"}, ClientToken: "tok-1"})
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := c.CreateWorkspace(ctx, Workspace{ID: workspace.NewID(), Alias: "prod", Status: StatusActive, CreatedAt: now, ClientToken: "tok-1"})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, w.ID, again.ID)
	_, _, err = c.CreateWorkspace(ctx, Workspace{ID: workspace.NewID(), Alias: "other", Status: StatusActive, CreatedAt: now, ClientToken: "tok-1"})
	require.ErrorIs(t, err, ErrConflict)
	for i := range 5 {
		_, _, err := c.CreateWorkspace(ctx, Workspace{ID: workspace.NewID(), Alias: fmt.Sprintf("dev-%d", i), Status: StatusActive, CreatedAt: now})
		require.NoError(t, err)
	}
	var seen int
	for after := workspace.ID(""); ; {
		page, err := c.ListWorkspaces(ctx, "", after, 2)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		seen += len(page)
		after = page[len(page)-1].ID
	}
	require.Equal(t, 6, seen)
	dev, err := c.ListWorkspaces(ctx, "dev-", "", 100)
	require.NoError(t, err)
	require.Len(t, dev, 5)
	alias := "production"
	require.NoError(t, c.UpdateWorkspace(ctx, w.ID, &alias, nil, map[string]string{"team": "mesh", "env": "prod"}))
	cfg := Configuration{RetentionDays: 30, OutOfOrderWindowSeconds: 120,
		LabelSetLimits: []workspace.LabelSetLimit{{LabelSet: map[string]string{"envoy_cluster_name": "payments"}, MaxSeries: 10}}}
	require.NoError(t, c.SetConfiguration(ctx, w.ID, cfg))

	// Keys and tokens.
	s, err := LoadSealer(filepath.Join(t.TempDir(), "secrets.key"))
	require.NoError(t, err)
	k := AccessKey{ID: NewAccessKeyID(), Secret: NewSecret(), Policy: `{"Statement":[]}`, CreatedAt: now}
	require.NoError(t, c.CreateAccessKey(ctx, s, k))
	require.NoError(t, c.CreateAPIToken(ctx, APIToken{ID: "tok0000000000001", SecretHash: "ab", Policy: "{}", Description: "d", CreatedAt: now}))
	require.NoError(t, c.RevokeAPIToken(ctx, "tok0000000000001", now))
	require.ErrorIs(t, c.RevokeAPIToken(ctx, "tok0000000000001", now), ErrNotFound)

	// Rule groups namespaces, alert manager definitions, logging.
	ns := RuleNamespace{Workspace: w.ID, Name: "envoy", Data: []byte("groups: []\n"), ModifiedAt: now, Tags: map[string]string{"a": "b"}}
	require.NoError(t, c.PutRuleNamespace(ctx, ns, true))
	require.ErrorIs(t, c.PutRuleNamespace(ctx, ns, true), ErrConflict)
	ns.Name = "node"
	require.NoError(t, c.PutRuleNamespace(ctx, ns, true))
	list, err := c.RuleNamespaces(ctx, w.ID, "en", "", 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.ErrorIs(t, c.PutRuleNamespace(ctx, RuleNamespace{Workspace: w.ID, Name: "nope", Data: []byte("x"), ModifiedAt: now}, false), ErrNotFound)
	ids, err := c.RuleWorkspaces(ctx)
	require.NoError(t, err)
	require.Equal(t, []workspace.ID{w.ID}, ids)
	require.NoError(t, c.PutAlertmanagerDefinition(ctx, s, w.ID, []byte("alertmanager_config: x"), now, true))
	require.ErrorIs(t, c.PutAlertmanagerDefinition(ctx, s, w.ID, []byte("y"), now, true), ErrConflict)
	ams, err := c.ActiveAlertmanagerDefinitions(ctx)
	require.NoError(t, err)
	require.Equal(t, []workspace.ID{w.ID}, ams)
	// Web UI users, sessions and dashboards.
	require.NoError(t, c.CreateUser(ctx, User{Name: "ana", PasswordHash: "h", Role: "viewer", Workspaces: []string{string(w.ID)}, CreatedAt: now}))
	require.ErrorIs(t, c.CreateUser(ctx, User{Name: "ana", PasswordHash: "h", Role: "viewer", CreatedAt: now}), ErrConflict)
	require.NoError(t, c.UpdateUser(ctx, "ana", "", "editor", []string{"*"}))
	require.NoError(t, c.CreateSession(ctx, Session{IDHash: "s1", User: "ana", CSRFToken: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	sess, err := c.Session(ctx, "s1", now)
	require.NoError(t, err)
	require.Equal(t, "ana", sess.User)
	for i, title := range []string{"Envoy", "Envoy Global"} { // The second replaces the first, as version 2.
		v, err := c.PutDashboard(ctx, Dashboard{Workspace: w.ID, UID: "envoy", Title: title, Data: []byte(`{"title":"` + title + `"}`), ModifiedAt: now, Author: "ui/ana", Folder: "Mesh"})
		require.NoError(t, err)
		require.Equal(t, i+1, v)
	}
	require.NoError(t, c.PutLoggingConfiguration(ctx, w.ID, "arn:aws:logs:us-east-1:123456789012:log-group:x:*", now, true))
	require.ErrorIs(t, c.PutLoggingConfiguration(ctx, w.ID, "arn", now, true), ErrConflict)
	// Anomaly detectors: idempotent create, the workspace's quota, puts
	// bumping the generation, statuses of old generations ignored.
	ad := AnomalyDetector{Workspace: w.ID, ID: "ad-1", Alias: "latency", Spec: []byte(`{"q":1}`), Status: DetectorCreating,
		Tags: map[string]string{"team": "mesh"}, ClientToken: "c-1", CreatedAt: now}
	_, created, err = c.CreateAnomalyDetector(ctx, ad, 2)
	require.NoError(t, err)
	require.True(t, created)
	dup := ad
	dup.ID = "ad-other"
	prev, created, err := c.CreateAnomalyDetector(ctx, dup, 2)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, "ad-1", prev.ID)
	dup.Alias = "changed"
	_, _, err = c.CreateAnomalyDetector(ctx, dup, 2)
	require.ErrorIs(t, err, ErrConflict)
	_, _, err = c.CreateAnomalyDetector(ctx, AnomalyDetector{Workspace: w.ID, ID: "ad-2", Alias: "errors", Spec: []byte(`{}`), Status: DetectorCreating, CreatedAt: now}, 2)
	require.NoError(t, err)
	_, _, err = c.CreateAnomalyDetector(ctx, AnomalyDetector{Workspace: w.ID, ID: "ad-3", Alias: "x", Spec: []byte(`{}`), Status: DetectorCreating, CreatedAt: now}, 2)
	require.ErrorIs(t, err, ErrLimited)
	require.NoError(t, c.PutAnomalyDetector(ctx, w.ID, "ad-1", []byte(`{"q":2}`), DetectorUpdating, now))
	require.ErrorIs(t, c.PutAnomalyDetector(ctx, w.ID, "ad-9", []byte(`{}`), DetectorUpdating, now), ErrNotFound)
	require.NoError(t, c.SetAnomalyDetectorStatus(ctx, w.ID, "ad-1", 1, DetectorActive, "stale"))
	require.NoError(t, c.SetAnomalyDetectorStatus(ctx, w.ID, "ad-1", 2, DetectorActive, ""))
	require.NoError(t, c.SetAnomalyDetectorTags(ctx, w.ID, "ad-1", map[string]string{"team": "mesh"}))
	require.ErrorIs(t, c.SetAnomalyDetectorTags(ctx, w.ID, "ad-9", nil), ErrNotFound)
	require.ErrorIs(t, c.PutLoggingConfiguration(ctx, workspace.NewID(), "arn", now, false), ErrNotFound)

	// Resource policies: revisions checked, each put a new revision.
	var changes []Change
	c.OnChange(func(ch Change) { changes = append(changes, ch) })
	_, _, err = c.PutResourcePolicy(ctx, w.ID, `{}`, "some-revision", now)
	require.ErrorIs(t, err, ErrConflict, "a revision while there is no policy")
	rev1, created, err := c.PutResourcePolicy(ctx, w.ID, `{"v":1}`, NoPolicy, now)
	require.NoError(t, err)
	require.True(t, created)
	_, _, err = c.PutResourcePolicy(ctx, w.ID, `{"v":2}`, NoPolicy, now)
	require.ErrorIs(t, err, ErrConflict)
	_, _, err = c.PutResourcePolicy(ctx, w.ID, `{"v":2}`, "stale", now)
	require.ErrorIs(t, err, ErrConflict)
	rev2, created, err := c.PutResourcePolicy(ctx, w.ID, `{"v":2}`, rev1, now)
	require.NoError(t, err)
	require.False(t, created)
	require.NotEqual(t, rev1, rev2)
	require.ErrorIs(t, c.DeleteResourcePolicy(ctx, w.ID, rev1), ErrConflict)
	_, _, err = c.PutResourcePolicy(ctx, workspace.NewID(), `{}`, "", now)
	require.ErrorIs(t, err, ErrNotFound, "no policy for a workspace that does not exist")
	require.Equal(t, []Change{{ResourcePolicyChanged, string(w.ID)}, {ResourcePolicyChanged, string(w.ID)}}, changes)

	// Query logging configurations.
	dests := []QueryLogDestination{{LogGroupARN: "arn:aws:logs:us-east-1:123456789012:log-group:q:*", QSPThreshold: 1000}}
	require.ErrorIs(t, c.PutQueryLoggingConfiguration(ctx, w.ID, dests, now, false), ErrNotFound)
	require.NoError(t, c.PutQueryLoggingConfiguration(ctx, w.ID, dests, now, true))
	require.ErrorIs(t, c.PutQueryLoggingConfiguration(ctx, w.ID, dests, now, true), ErrConflict)
	dests[0].QSPThreshold = 5
	require.NoError(t, c.PutQueryLoggingConfiguration(ctx, w.ID, dests, now, false))
	require.NoError(t, c.Close())

	// Everything is there after reopening.
	c, err = Open(ctx, dsn)
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	got, err := c.GetWorkspace(ctx, w.ID)
	require.NoError(t, err)
	require.Equal(t, "production", got.Alias)
	require.Equal(t, map[string]string{"team": "mesh", "env": "prod"}, got.Tags)
	require.Equal(t, now.UnixMilli(), got.CreatedAt.UnixMilli())
	require.Equal(t, cfg, got.Configuration)
	gotKey, err := c.AccessKey(ctx, s, k.ID)
	require.NoError(t, err)
	require.Equal(t, k.Secret, gotKey.Secret)
	toks, err := c.APITokens(ctx)
	require.NoError(t, err)
	require.Len(t, toks, 1)
	require.True(t, toks[0].Revoked)
	nsGot, err := c.RuleNamespace(ctx, w.ID, "envoy")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": "b"}, nsGot.Tags)
	def, err := c.AlertmanagerDefinition(ctx, s, w.ID)
	require.NoError(t, err)
	require.Equal(t, "alertmanager_config: x", string(def.Data))
	var stored string
	require.NoError(t, c.db.QueryRowContext(ctx, `SELECT data FROM alertmanager_definitions WHERE workspace_id = $1`, string(w.ID)).Scan(&stored))
	require.True(t, strings.HasPrefix(stored, sealedPrefix), "stored sealed: %s", stored)
	require.NotContains(t, stored, base64.StdEncoding.EncodeToString([]byte("alertmanager_config: x")))
	lc, err := c.LoggingConfiguration(ctx, w.ID)
	require.NoError(t, err)
	require.Contains(t, lc.LogGroupARN, "log-group:x")
	rp, err := c.ResourcePolicy(ctx, w.ID)
	require.NoError(t, err)
	require.Equal(t, ResourcePolicy{Document: `{"v":2}`, RevisionID: rev2, CreatedAt: now.UTC(), ModifiedAt: now.UTC()}, rp)
	qls, err := c.QueryLoggingConfigurations(ctx)
	require.NoError(t, err)
	require.Equal(t, map[workspace.ID]QueryLoggingConfiguration{w.ID: {Destinations: dests, CreatedAt: now.UTC(), ModifiedAt: now.UTC()}}, qls)
	u, err := c.User(ctx, "ana")
	require.NoError(t, err)
	require.Equal(t, "editor", u.Role)
	require.Equal(t, []string{"*"}, u.Workspaces)
	dash, err := c.Dashboards(ctx, w.ID)
	require.NoError(t, err)
	require.Len(t, dash, 1)
	require.Equal(t, "Envoy Global", dash[0].Title)
	ads, err := c.AnomalyDetectors(ctx, w.ID, "lat", "", 10)
	require.NoError(t, err)
	require.Len(t, ads, 1)
	require.Equal(t, `{"q":2}`, string(ads[0].Spec))
	require.Equal(t, DetectorActive, ads[0].Status)
	require.Empty(t, ads[0].StatusReason, "the status of generation 1 came too late")
	require.Equal(t, int64(2), ads[0].Generation)
	require.Equal(t, map[string]string{"team": "mesh"}, ads[0].Tags)
	all, err := c.AnomalyDetectors(ctx, "", "", "", 10)
	require.NoError(t, err)
	require.Len(t, all, 2)
	running, err := c.ActiveAnomalyDetectors(ctx)
	require.NoError(t, err)
	require.Len(t, running, 2)
	// Models: a save older than the stored one (a replica that lost the
	// lease) is not stored; a new generation replaces any.
	_, err = c.AnomalyModel(ctx, w.ID, "ad-2")
	require.ErrorIs(t, err, ErrNotFound)
	require.NoError(t, c.SaveAnomalyModel(ctx, w.ID, "ad-2", 1, 1000, []byte("gen1@1000\x00")))
	require.NoError(t, c.SaveAnomalyModel(ctx, w.ID, "ad-2", 1, 500, []byte("gen1@500")))
	model, err := c.AnomalyModel(ctx, w.ID, "ad-2")
	require.NoError(t, err)
	require.Equal(t, "gen1@1000\x00", string(model))
	require.NoError(t, c.SaveAnomalyModel(ctx, w.ID, "ad-2", 2, 10, []byte("gen2@10")))
	require.NoError(t, c.SaveAnomalyModel(ctx, w.ID, "ad-2", 1, 2000, []byte("gen1@2000")))
	model, err = c.AnomalyModel(ctx, w.ID, "ad-2")
	require.NoError(t, err)
	require.Equal(t, "gen2@10", string(model))
	require.NoError(t, c.RemoveAnomalyDetector(ctx, w.ID, "ad-2"))
	require.ErrorIs(t, c.RemoveAnomalyDetector(ctx, w.ID, "ad-2"), ErrNotFound)
	_, err = c.AnomalyModel(ctx, w.ID, "ad-2")
	require.ErrorIs(t, err, ErrNotFound, "a removed detector's model goes with it")
	_, err = c.AnomalyDetector(ctx, w.ID, "ad-2")
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, "Mesh", dash[0].Folder)
	vs, err := c.DashboardVersions(ctx, w.ID, "envoy")
	require.NoError(t, err)
	require.Equal(t, []DashboardVersion{{Version: 2, Title: "Envoy Global", Author: "ui/ana", CreatedAt: now.UTC()}, {Version: 1, Title: "Envoy", Author: "ui/ana", CreatedAt: now.UTC()}}, vs)
	v1, err := c.DashboardAt(ctx, w.ID, "envoy", 1)
	require.NoError(t, err)
	require.JSONEq(t, `{"title":"Envoy"}`, string(v1.Data))
	_, err = c.DashboardAt(ctx, w.ID, "envoy", 3)
	require.ErrorIs(t, err, ErrNotFound)
	// Only the newest MaxDashboardVersions are kept.
	for range MaxDashboardVersions {
		_, err := c.PutDashboard(ctx, Dashboard{Workspace: w.ID, UID: "envoy", Title: "Envoy Global", Data: []byte(`{}`), ModifiedAt: now})
		require.NoError(t, err)
	}
	vs, err = c.DashboardVersions(ctx, w.ID, "envoy")
	require.NoError(t, err)
	require.Len(t, vs, MaxDashboardVersions)
	require.Equal(t, 2+MaxDashboardVersions, vs[0].Version)
	require.Equal(t, 3, vs[len(vs)-1].Version)
	require.NoError(t, c.DeleteUser(ctx, "ana"))
	_, err = c.Session(ctx, "s1", now)
	require.ErrorIs(t, err, ErrNotFound, "a deleted user's sessions go with it")
	require.NoError(t, c.DeleteDashboard(ctx, w.ID, "envoy"))
	_, err = c.DashboardVersions(ctx, w.ID, "envoy")
	require.ErrorIs(t, err, ErrNotFound, "a deleted dashboard's versions go with it")
	require.NoError(t, c.DeleteRuleNamespace(ctx, w.ID, "envoy"))
	require.NoError(t, c.DeleteAlertmanagerDefinition(ctx, w.ID))
	require.NoError(t, c.DeleteLoggingConfiguration(ctx, w.ID))
	require.NoError(t, c.DeleteResourcePolicy(ctx, w.ID, rev2))
	require.ErrorIs(t, c.DeleteResourcePolicy(ctx, w.ID, ""), ErrNotFound)
	_, _, err = c.PutResourcePolicy(ctx, w.ID, `{"v":3}`, "", now)
	require.NoError(t, err)
	exerciseScrapers(t, c, dsn, w.ID, now)
	require.NoError(t, c.RemoveWorkspace(ctx, w.ID))
	_, err = c.GetWorkspace(ctx, w.ID)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = c.AnomalyDetector(ctx, w.ID, "ad-1")
	require.ErrorIs(t, err, ErrNotFound, "a removed workspace's detectors go with it")
	// The workspace's policy and query logging went with it.
	_, err = c.ResourcePolicy(ctx, w.ID)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = c.QueryLoggingConfiguration(ctx, w.ID)
	require.ErrorIs(t, err, ErrNotFound)
}

// exerciseScrapers checks scrapers' idempotent create, the server's
// scraper limit, the status transitions the runner makes, pagination, and
// that a scraper is found by another catalog on the same database.
func exerciseScrapers(t *testing.T, c *Catalog, dsn string, ws workspace.ID, now time.Time) {
	ctx := context.Background()
	s := Scraper{ID: "s-1", Alias: "nodes", Status: ScraperCreating, Workspace: ws, Source: []byte(`{"vpcConfiguration":{}}`),
		Configuration: []byte("scrape_configs: []\n"), Tags: map[string]string{"team": "mesh"}, ClientToken: "st-1", CreatedAt: now, ModifiedAt: now}
	got, created, err := c.CreateScraper(ctx, s, 2)
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := c.CreateScraper(ctx, Scraper{ID: "s-x", Alias: "nodes", Status: ScraperCreating, Workspace: ws,
		Source: s.Source, Configuration: s.Configuration, ClientToken: "st-1", CreatedAt: now, ModifiedAt: now}, 2)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, got, again)
	_, _, err = c.CreateScraper(ctx, Scraper{ID: "s-y", Alias: "other", Workspace: ws, Source: s.Source, ClientToken: "st-1"}, 2)
	require.ErrorIs(t, err, ErrConflict)
	_, _, err = c.CreateScraper(ctx, Scraper{ID: "s-2", Status: ScraperCreating, Workspace: ws, Source: s.Source, CreatedAt: now, ModifiedAt: now}, 2)
	require.NoError(t, err)
	_, _, err = c.CreateScraper(ctx, Scraper{ID: "s-3", Status: ScraperCreating, Workspace: ws, Source: s.Source, CreatedAt: now, ModifiedAt: now}, 2)
	require.ErrorContains(t, err, "--scraper.max-scrapers 2")

	ok, err := c.SetScraperStatus(ctx, "s-1", ScraperCreating, ScraperActive, "")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = c.SetScraperStatus(ctx, "s-1", ScraperCreating, ScraperActive, "")
	require.NoError(t, err)
	require.False(t, ok, "a status moves only from the one expected")
	got.Status, got.Alias, got.Configuration, got.Logging = ScraperUpdating, "renamed", []byte("global: {}\n"), []byte(`{"x":1}`)
	require.NoError(t, c.UpdateScraper(ctx, got))
	require.ErrorIs(t, c.UpdateScraper(ctx, Scraper{ID: "s-none"}), ErrNotFound)

	c2, err := Open(ctx, dsn)
	require.NoError(t, err)
	defer func() { require.NoError(t, c2.Close()) }()
	stored, err := c2.Scraper(ctx, "s-1")
	require.NoError(t, err)
	require.Equal(t, got, stored)
	page, err := c2.Scrapers(ctx, "", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"s-1"}, []string{page[0].ID})
	page, err = c2.Scrapers(ctx, "s-1", 10)
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, "s-2", page[0].ID)
	s2, err := c2.Scraper(ctx, "s-2")
	require.NoError(t, err)
	s2.Status = ScraperDeleting
	require.NoError(t, c.UpdateScraper(ctx, s2))
	s2.Status, s2.Alias = ScraperActive, "tagged meanwhile"
	require.NoError(t, c.UpdateScraper(ctx, s2))
	s2, err = c.Scraper(ctx, "s-2")
	require.NoError(t, err)
	require.Equal(t, ScraperDeleting, s2.Status, "a deleted scraper stays DELETING")
	require.NoError(t, c.RemoveScraper(ctx, "s-2"))
	require.ErrorIs(t, c.RemoveScraper(ctx, "s-2"), ErrNotFound)
	_, err = c.Scraper(ctx, "s-2")
	require.ErrorIs(t, err, ErrNotFound)
}
