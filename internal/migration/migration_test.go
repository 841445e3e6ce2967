package migration

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"

	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// sample is a float or a histogram sample, comparable across encodings.
type sample struct {
	T     int64
	F     uint64 // math.Float64bits, so that stale markers compare.
	H     string
	IsHis bool
}

type dataset map[string][]sample

// writeWorkspace fills a workspace's TSDB as the embedded server would:
// 7 hours of floats (one series with a stale marker) and native histograms,
// the older part compacted into blocks, the newer part left in the WAL.
func writeWorkspace(t *testing.T, dataDir string, id workspace.ID, start int64) dataset {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = 0
	db, err := tsdb.Open(orstorage.TSDBDir(dataDir, id), nil, nil, opts, nil)
	require.NoError(t, err)
	want := dataset{}
	appendRange := func(from, to int64) {
		app := db.Appender(context.Background())
		for ts := from; ts < to; ts += 30_000 {
			for i := range 3 {
				ls := labels.FromStrings("__name__", "up", "job", "node", "instance", fmt.Sprint(i))
				v := float64(ts/1000 + int64(i))
				if i == 2 && ts >= start+3*3600_000 && ts < start+3*3600_000+30_000 {
					v = math.Float64frombits(value.StaleNaN)
				}
				if i == 2 && ts > start+3*3600_000 && ts < start+4*3600_000 {
					continue // Absent for an hour after the stale marker.
				}
				_, err := app.Append(0, ls, ts, v)
				require.NoError(t, err)
				want[ls.String()] = append(want[ls.String()], sample{T: ts, F: math.Float64bits(v)})
			}
			if ts%60_000 == 0 {
				ls := labels.FromStrings("__name__", "rq_duration_seconds", "job", "envoy")
				h := tsdbutil.GenerateTestHistogram((ts - start) / 60_000)
				_, err := app.AppendHistogram(0, ls, ts, h, nil)
				require.NoError(t, err)
				c := h.Copy()
				c.CounterResetHint = histogram.UnknownCounterReset
				want[ls.String()] = append(want[ls.String()], sample{T: ts, H: c.String(), IsHis: true})
			}
		}
		require.NoError(t, app.Commit())
	}
	appendRange(start, start+5*3600_000)
	require.NoError(t, db.Compact(context.Background()))
	require.NotEmpty(t, db.Blocks(), "part of the data is in blocks")
	appendRange(start+5*3600_000, start+7*3600_000)
	require.NoError(t, db.Close())
	return want
}

// readBlocks returns every sample of the blocks in dir.
func readBlocks(t *testing.T, dir string) dataset {
	t.Helper()
	got := dataset{}
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range es {
		if _, err := ulid.ParseStrict(e.Name()); err != nil {
			continue
		}
		b, err := tsdb.OpenBlock(nil, filepath.Join(dir, e.Name()), nil, nil)
		require.NoError(t, err)
		q, err := tsdb.NewBlockQuerier(b, math.MinInt64, math.MaxInt64)
		require.NoError(t, err)
		ss := q.Select(context.Background(), false, nil, allSeries())
		var it chunkenc.Iterator
		for ss.Next() {
			s := ss.At()
			it = s.Iterator(it)
			for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
				switch typ {
				case chunkenc.ValFloat:
					ts, v := it.At()
					got[s.Labels().String()] = append(got[s.Labels().String()], sample{T: ts, F: math.Float64bits(v)})
				case chunkenc.ValHistogram:
					ts, h := it.AtHistogram(nil)
					h.CounterResetHint = histogram.UnknownCounterReset
					got[s.Labels().String()] = append(got[s.Labels().String()], sample{T: ts, H: h.String(), IsHis: true})
				default:
					t.Fatalf("unexpected sample type %v", typ)
				}
			}
			require.NoError(t, it.Err())
		}
		require.NoError(t, ss.Err())
		require.NoError(t, q.Close())
		require.NoError(t, b.Close())
	}
	for k := range got {
		sort.Slice(got[k], func(i, j int) bool { return got[k][i].T < got[k][j].T })
	}
	return got
}

func TestMigrateBlockLayout(t *testing.T) {
	dataDir, out := t.TempDir(), t.TempDir()
	id := workspace.NewID()
	// Not aligned to 2h: the first and last blocks are partial windows.
	start := time.Date(2026, 11, 20, 7, 17, 0, 0, time.UTC).UnixMilli()
	want := writeWorkspace(t, dataDir, id, start)

	before := tree(t, orstorage.WorkspaceDir(dataDir, id))
	var progress []Block
	rep, err := Migrate(context.Background(), Config{DataDir: dataDir, Workspace: id, BucketDir: out}, nil,
		func(b Block) { progress = append(progress, b) })
	require.NoError(t, err)
	require.Equal(t, id.String(), rep.Tenant)
	require.Equal(t, rep.Blocks, progress)
	require.Equal(t, before, tree(t, orstorage.WorkspaceDir(dataDir, id)), "the workspace's files are unchanged")
	// 07:17–14:17 spans the windows 06:00, 08:00, 10:00, 12:00 and 14:00.
	require.Len(t, rep.Blocks, 5)
	require.Equal(t, 5, rep.Written)
	require.Zero(t, rep.Existing)

	tenantDir := filepath.Join(out, id.String())
	var total uint64
	for i, b := range rep.Blocks {
		window := time.Date(2026, 11, 20, 6+2*i, 0, 0, 0, time.UTC).UnixMilli()
		require.Equal(t, filepath.Join(tenantDir, b.ULID.String()), b.Dir)
		require.Equal(t, uint64(window), b.ULID.Time(), "ULIDs sort as the blocks' windows")
		require.GreaterOrEqual(t, b.MinTime, window)
		require.LessOrEqual(t, b.MaxTime, window+2*3600_000, "a block stays within its 2h window")
		total += b.Samples

		// The files Thanos' uploader puts in the bucket, no more.
		var files []string
		require.NoError(t, filepath.WalkDir(b.Dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(b.Dir, p)
				files = append(files, rel)
			}
			return err
		}))
		require.Equal(t, []string{"chunks/000001", "index", "meta.json"}, files)

		raw, err := os.ReadFile(filepath.Join(b.Dir, "meta.json"))
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		require.Equal(t, b.ULID.String(), m["ulid"])
		require.EqualValues(t, 1, m["version"])
		require.Equal(t, map[string]any{"level": float64(1), "sources": []any{b.ULID.String()}}, m["compaction"])
		th := m["thanos"].(map[string]any)
		require.Equal(t, map[string]any{"__org_id__": id.String()}, th["labels"])
		require.Equal(t, "bucket.upload", th["source"])
		require.Equal(t, map[string]any{"resolution": float64(0)}, th["downsample"])
		require.Equal(t, []any{"000001"}, th["segment_files"])
		fs := th["files"].([]any)
		require.Len(t, fs, 3)
		for _, f := range fs {
			f := f.(map[string]any)
			if f["rel_path"] == "meta.json" {
				require.NotContains(t, f, "size_bytes")
				continue
			}
			fi, err := os.Stat(filepath.Join(b.Dir, f["rel_path"].(string)))
			require.NoError(t, err)
			require.EqualValues(t, fi.Size(), f["size_bytes"], f["rel_path"])
		}
	}
	require.Equal(t, total, rep.Samples)
	require.Equal(t, want, readBlocks(t, tenantDir), "every sample, stale marker and histogram arrives")
	_, err = os.Stat(filepath.Join(tenantDir, stagingDir))
	require.ErrorIs(t, err, os.ErrNotExist, "no staging directory is left")

	t.Run("a rerun finds the same blocks and writes none", func(t *testing.T) {
		again, err := Migrate(context.Background(), Config{DataDir: dataDir, Workspace: id, BucketDir: out}, nil, nil)
		require.NoError(t, err)
		require.Equal(t, 5, again.Existing)
		require.Zero(t, again.Written)
		for i := range again.Blocks {
			require.Equal(t, rep.Blocks[i].ULID, again.Blocks[i].ULID)
		}
		es, err := os.ReadDir(tenantDir)
		require.NoError(t, err)
		require.Len(t, es, 5)
	})

	t.Run("another tenant", func(t *testing.T) {
		other, err := Migrate(context.Background(), Config{DataDir: dataDir, Workspace: id, BucketDir: out, Tenant: "team-a"}, nil, nil)
		require.NoError(t, err)
		require.Equal(t, 5, other.Written)
		require.NotEqual(t, rep.Blocks[0].ULID, other.Blocks[0].ULID, "a block's ULID depends on its tenant")
		m, err := readMeta(other.Blocks[0].Dir)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"__org_id__": "team-a"}, m.Thanos.Labels)
	})
}

func TestMigrateRefuses(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	id := workspace.NewID()
	start := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC).UnixMilli()
	writeWorkspace(t, dataDir, id, start)

	t.Run("invalid configuration", func(t *testing.T) {
		for _, cfg := range []Config{
			{Workspace: id, BucketDir: t.TempDir()},
			{DataDir: dataDir, Workspace: id},
			{DataDir: dataDir, Workspace: "ws-1", BucketDir: t.TempDir()},
			{DataDir: dataDir, Workspace: id, BucketDir: t.TempDir(), Tenant: "a/b"},
			{DataDir: dataDir, Workspace: id, BucketDir: t.TempDir(), BlockDuration: time.Second},
		} {
			_, err := Migrate(ctx, cfg, nil, nil)
			require.ErrorIs(t, err, ErrInvalid, "%+v", cfg)
		}
	})

	t.Run("workspace not found", func(t *testing.T) {
		other := workspace.NewID()
		_, err := Migrate(ctx, Config{DataDir: dataDir, Workspace: other, BucketDir: t.TempDir()}, nil, nil)
		require.ErrorIs(t, err, ErrNotFound)
		require.ErrorContains(t, err, "workspaces "+id.String(), "the error lists the workspaces there are")
	})

	t.Run("TSDB locked by a server", func(t *testing.T) {
		db, err := tsdb.Open(orstorage.TSDBDir(dataDir, id), nil, nil, tsdb.DefaultOptions(), nil)
		require.NoError(t, err)
		out := t.TempDir()
		_, err = Migrate(ctx, Config{DataDir: dataDir, Workspace: id, BucketDir: out}, nil, nil)
		require.NoError(t, db.Close())
		require.ErrorIs(t, err, ErrLocked)
		require.ErrorContains(t, err, "stop the embedded server")
		es, _ := os.ReadDir(out)
		require.Empty(t, es, "nothing written")
	})

	t.Run("another run writing into the tenant", func(t *testing.T) {
		out := t.TempDir()
		tenantDir := filepath.Join(out, id.String())
		require.NoError(t, os.MkdirAll(tenantDir, 0o750))
		other, _, err := fileutil.Flock(filepath.Join(tenantDir, stagingDir+".lock"))
		require.NoError(t, err)
		_, err = Migrate(ctx, Config{DataDir: dataDir, Workspace: id, BucketDir: out}, nil, nil)
		require.ErrorIs(t, err, ErrLocked)
		require.ErrorContains(t, err, "another migrate-to-cortex")
		require.NoError(t, other.Release())
		rep, err := Migrate(ctx, Config{DataDir: dataDir, Workspace: id, BucketDir: out}, nil, nil)
		require.NoError(t, err)
		require.NotEmpty(t, rep.Blocks)
	})

	t.Run("a block of the same ULID with other content", func(t *testing.T) {
		out := t.TempDir()
		rep, err := Migrate(ctx, Config{DataDir: dataDir, Workspace: id, BucketDir: out}, nil, nil)
		require.NoError(t, err)
		index := filepath.Join(rep.Blocks[1].Dir, "index")
		f, err := os.OpenFile(index, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.Write([]byte("garbage"))
		require.NoError(t, err)
		require.NoError(t, f.Close())
		before, err := os.ReadFile(index)
		require.NoError(t, err)

		_, err = Migrate(ctx, Config{DataDir: dataDir, Workspace: id, BucketDir: out}, nil, nil)
		require.ErrorIs(t, err, ErrConflict)
		require.ErrorContains(t, err, rep.Blocks[1].Dir)
		require.ErrorContains(t, err, "move it out of --bucket-dir")
		after, err := os.ReadFile(index)
		require.NoError(t, err)
		require.Equal(t, before, after, "not overwritten")
	})
}

// TestMigrateOutOfOrder: samples in the out-of-order WAL (accepted within
// the workspace's out-of-order window, not yet compacted) are migrated too.
func TestMigrateOutOfOrder(t *testing.T) {
	dataDir, out := t.TempDir(), t.TempDir()
	id := workspace.NewID()
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = (10 * time.Minute).Milliseconds()
	db, err := tsdb.Open(orstorage.TSDBDir(dataDir, id), nil, nil, opts, nil)
	require.NoError(t, err)
	start := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC).UnixMilli()
	ls := labels.FromStrings("__name__", "late", "job", "batch")
	want := dataset{}
	add := func(ts int64) {
		app := db.Appender(context.Background())
		_, err := app.Append(0, ls, ts, float64(ts))
		require.NoError(t, err)
		require.NoError(t, app.Commit())
		want[ls.String()] = append(want[ls.String()], sample{T: ts, F: math.Float64bits(float64(ts))})
	}
	for ts := start; ts <= start+30*60_000; ts += 60_000 {
		add(ts)
	}
	for ts := start + 25*60_000 + 30_000; ts < start+30*60_000; ts += 60_000 {
		add(ts) // Out of order: between the samples of the last 5 minutes.
	}
	require.NoError(t, db.Close())
	sort.Slice(want[ls.String()], func(i, j int) bool { return want[ls.String()][i].T < want[ls.String()][j].T })
	es, err := os.ReadDir(filepath.Join(orstorage.TSDBDir(dataDir, id), "wbl"))
	require.NoError(t, err)
	require.NotEmpty(t, es, "the out-of-order samples are in the WBL")

	rep, err := Migrate(context.Background(), Config{DataDir: dataDir, Workspace: id, BucketDir: out}, nil, nil)
	require.NoError(t, err)
	require.Len(t, rep.Blocks, 1)
	require.Equal(t, want, readBlocks(t, filepath.Join(out, id.String())))
}

// tree describes the files under dir (path, size, modification time).
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lock" {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fmt.Sprint(fi.Size(), fi.ModTime().UnixNano())
		return nil
	}))
	return out
}
