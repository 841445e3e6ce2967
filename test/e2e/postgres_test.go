package e2e

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestReplicasShareCatalogOnPostgres runs two servers over one catalog in
// Debian's PostgreSQL (--db) with one secrets key: what one replica's
// control plane does (workspaces, keys, token revocation) holds on the
// other at once, but for revocations and deletions, which hold at once on
// the replica that made them and within --auth.cache-ttl on the other.
func TestReplicasShareCatalogOnPostgres(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	pg := apptest.StartPostgres(t)
	db := pg.NewDatabase(t)
	key := filepath.Join(t.TempDir(), "secrets.key")
	const ttl = 3 * time.Second
	a := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4", "--db", db, "--secrets-key-file", key, "--auth.cache-ttl", ttl.String())
	b := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4", "--db", db, "--secrets-key-file", key, "--auth.cache-ttl", ttl.String())
	admin := []string{"AWS_ACCESS_KEY_ID=" + adminKey, "AWS_SECRET_ACCESS_KEY=" + adminSecret}

	out, err := orreryCLI(t, a, admin, "workspaces", "create", "--alias", "shared")
	require.NoError(t, err, out)
	ws := strings.TrimSpace(out)
	out, err = orreryCLI(t, b, admin, "workspaces", "describe", ws)
	require.NoError(t, err, out)
	require.Contains(t, out, "shared")

	// A key issued by one replica signs for the other.
	out, err = orreryCLI(t, a, admin, "keys", "create", "--workspace", ws, "--access", "query")
	require.NoError(t, err, out)
	k, s := envValue(t, out, "AWS_ACCESS_KEY_ID"), envValue(t, out, "AWS_SECRET_ACCESS_KEY")
	code, body := curlSigV4(t, k, s, b.URL(ws, "/api/v1/query?query="+url.QueryEscape("vector(1)")))
	require.Equal(t, http.StatusOK, code, body)

	// A token or key revoked on one replica is refused there at once and
	// by the other within the TTL of its cache.
	withinTTL := func(what string, get func() int, want int) {
		t.Helper()
		start := time.Now()
		apptest.Eventually(t, 2*ttl, func() error {
			if code := get(); code != want {
				return errStatus(code)
			}
			return nil
		})
		require.Less(t, time.Since(start), ttl+time.Second, "%s took longer than the TTL", what)
	}
	out, err = orreryCLI(t, a, admin, "tokens", "create", "--workspace", ws, "--access", "query")
	require.NoError(t, err, out)
	token := envValue(t, out, "ORRERY_TOKEN")
	for _, o := range []*apptest.Orrery{a, b} { // Both remember it.
		code, _ = getBearer(t, token, o.URL(ws, "/api/v1/labels"))
		require.Equal(t, http.StatusOK, code)
	}
	id := strings.SplitN(strings.TrimPrefix(token, "orrt_"), "_", 2)[0]
	out, err = orreryCLI(t, b, admin, "tokens", "revoke", id)
	require.NoError(t, err, out)
	code, _ = getBearer(t, token, b.URL(ws, "/api/v1/labels"))
	require.Equal(t, http.StatusUnauthorized, code, "at once on the revoking replica")
	withinTTL("the token's revocation", func() int {
		code, _ := getBearer(t, token, a.URL(ws, "/api/v1/labels"))
		return code
	}, http.StatusUnauthorized)

	query := "/api/v1/query?query=" + url.QueryEscape("vector(1)")
	code, body = curlSigV4(t, k, s, a.URL(ws, query))
	require.Equal(t, http.StatusOK, code, body)
	out, err = orreryCLI(t, a, admin, "keys", "revoke", k)
	require.NoError(t, err, out)
	code, _ = curlSigV4(t, k, s, a.URL(ws, query))
	require.Equal(t, http.StatusForbidden, code, "at once on the revoking replica")
	withinTTL("the key's revocation", func() int {
		code, _ := curlSigV4(t, k, s, b.URL(ws, query))
		return code
	}, http.StatusForbidden)

	// The caches answered: the lookups of the requests above were mostly
	// hits.
	code, metrics := curlSigV4(t, adminKey, adminSecret, "http://"+a.Addr+"/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, `orrery_auth_cache_lookups_total\{cache="keys",result="hit"\} [1-9]`, metrics)

	// Deleting on one replica: the other serves the workspace no more.
	out, err = orreryCLI(t, b, admin, "workspaces", "delete", ws)
	require.NoError(t, err, out)
	apptest.Eventually(t, 30*time.Second, func() error {
		if code, _ := curlSigV4(t, adminKey, adminSecret, a.URL(ws, "/api/v1/labels")); code != http.StatusNotFound {
			return errStatus(code)
		}
		return nil
	})
	a.Stop()
	b.Stop()
}

type errStatus int

func (e errStatus) Error() string { return http.StatusText(int(e)) }
