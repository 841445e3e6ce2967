package e2e

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestWALFsyncFlag: with --storage.wal-fsync a write is acknowledged after
// the WAL was synced to disk.
func TestWALFsyncFlag(t *testing.T) {
	o := apptest.StartOrrery(t, t.TempDir(), "--storage.wal-fsync")
	ws := "ws-00000000-0000-4000-8000-0000000000f5"
	for i := range 3 {
		code, body := apptest.Write(t, o.RemoteWriteURL(ws), &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{ts("synced", time.Now().UnixMilli()+int64(i), 1)}})
		require.Equal(t, http.StatusNoContent, code, body)
	}
	code, m := apptest.Get(t, "http://"+o.Addr+"/metrics")
	require.Equal(t, http.StatusOK, code)
	got := regexp.MustCompile(`(?m)^orrery_storage_wal_fsyncs_total (\S+)$`).FindSubmatch(m)
	require.NotNil(t, got)
	n, err := strconv.ParseFloat(string(got[1]), 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 3.0, "one sync per sequential write")
	o.Stop()
}
