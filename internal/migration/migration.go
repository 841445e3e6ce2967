package migration

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/fileutil"

	orstorage "github.com/orrery-dev/orrery/internal/storage"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// Error kinds, for errors.Is. Every error Migrate returns says what to do
// next in its text.
var (
	// ErrInvalid: the configuration cannot work.
	ErrInvalid = errors.New("invalid migration")
	// ErrNotFound: the workspace has no TSDB under the data directory.
	ErrNotFound = errors.New("workspace not found")
	// ErrLocked: another process (the embedded server) holds the TSDB.
	ErrLocked = errors.New("workspace TSDB is locked")
	// ErrConflict: the bucket directory already holds a block of the same
	// ULID with other content.
	ErrConflict = errors.New("block already exists with other content")
)

// Cortex's blocks storage, as its ingesters' shipper writes it (Cortex
// v1.21.1, pkg/ingester and the Thanos shipper it uses): a block lives at
// <bucket>/<tenant>/<ULID>/ as chunks/NNNNNN, index and meta.json, the
// meta.json last; meta.json has a "thanos" section whose external labels
// carry the tenant as __org_id__ (ingesters add __ingester_id__, which the
// compactor and the store-gateways drop again). The compactor groups blocks
// by those labels, so a migrated block carrying only __org_id__ is compacted
// with the ingesters' blocks of the same tenant.
const (
	// TenantLabel is the external label naming a block's tenant
	// (cortex_tsdb.TenantIDExternalLabel).
	TenantLabel = "__org_id__"
	// Source is the block's thanos.source: uploaded by a tool rather
	// than by an ingester ("receive"). Cortex treats both the same (only
	// compactor and repair sources skip the consistency delay).
	Source = "bucket.upload"
	// stagingDir, under the tenant's directory, holds blocks being
	// written; Cortex ignores names that are not ULIDs.
	stagingDir = ".orrery-migrate-tmp"
	// commitEvery bounds the samples buffered before a commit to the
	// block writer's head.
	commitEvery = 10000
)

// Config says what to migrate and where.
type Config struct {
	// DataDir is the embedded server's --data-dir.
	DataDir string
	// Workspace is the workspace whose TSDB is read.
	Workspace workspace.ID
	// BucketDir is a local directory laid out as the Cortex bucket's root:
	// blocks are written to BucketDir/<Tenant>/<ULID>/.
	BucketDir string
	// Tenant is the Cortex tenant (X-Scope-OrgID) the blocks belong to.
	// Default: the workspace ID, which is how the Cortex engine names a
	// workspace's tenant.
	Tenant string
	// BlockDuration is the length of the blocks written, aligned to
	// multiples of it as Cortex's ingesters cut theirs. Default: 2h, the
	// first of Cortex's blocks_storage.tsdb.block_ranges_period.
	BlockDuration time.Duration
}

// tenantRE is the set of tenant IDs Cortex accepts (pkg/tenant: letters,
// digits and !-_.*'()), at most 150 characters.
var tenantRE = regexp.MustCompile(`^[a-zA-Z0-9!\-_.*'()]{1,150}$`)

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return fmt.Errorf("%w: --data-dir is empty: name the embedded server's --data-dir", ErrInvalid)
	case c.BucketDir == "":
		return fmt.Errorf("%w: --bucket-dir is empty: name a directory to write the tenant's blocks into", ErrInvalid)
	case c.BlockDuration < 0 || (c.BlockDuration > 0 && c.BlockDuration%time.Minute != 0):
		return fmt.Errorf("%w: --block-duration %s: use a positive whole number of minutes (Cortex's first block range, 2h by default)", ErrInvalid, c.BlockDuration)
	}
	if _, err := workspace.ParseID(c.Workspace.String()); err != nil {
		return fmt.Errorf("%w: --workspace: %v", ErrInvalid, err)
	}
	if c.Tenant != "" && (!tenantRE.MatchString(c.Tenant) || c.Tenant == "." || c.Tenant == ".." || c.Tenant == "__markers__") {
		return fmt.Errorf("%w: --tenant %q is not a Cortex tenant ID (letters, digits and !-_.*'(), at most 150)", ErrInvalid, c.Tenant)
	}
	return nil
}

// Block describes one block of the migration.
type Block struct {
	ULID ulid.ULID
	// MinTime and MaxTime are the block's half-open time range in ms,
	// as in its meta.json.
	MinTime, MaxTime int64
	Series, Samples  uint64
	Chunks           uint64
	// Dir is the block's directory in the bucket directory.
	Dir string
	// Existing is true when an identical block (same ULID, same files)
	// was already there, from an earlier run; it was left as it was.
	Existing bool
}

// Report sums up a migration.
type Report struct {
	Tenant string
	// TenantDir is BucketDir/Tenant.
	TenantDir string
	Blocks    []Block
	// Written and Existing count the blocks written by this run and the
	// identical ones found already there.
	Written, Existing int
	Samples           uint64
}

// Migrate writes the workspace's samples, persisted blocks and WAL alike,
// into blocks of cfg.BlockDuration under cfg.BucketDir/<tenant>/. It holds
// the TSDB's lock file while it reads, so the embedded server must not have
// the workspace open; it never writes into the TSDB's blocks or WAL (the
// WAL is replayed into memory, in a sandbox next to the TSDB).
//
// A block's ULID is derived from the tenant and the block's content, so
// running Migrate again over unchanged data finds its blocks in place and
// leaves them (Block.Existing); a block directory of that ULID with other
// content is never overwritten (ErrConflict). Changed data (the server ran
// again in between) yields blocks of new ULIDs next to the old ones: Cortex
// merges overlapping blocks and deduplicates identical samples.
//
// progress, if not nil, is called after each block. Exemplars and metric
// metadata are not migrated: Cortex blocks do not hold them.
func Migrate(ctx context.Context, cfg Config, logger *slog.Logger, progress func(Block)) (rep Report, err error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.Tenant == "" {
		cfg.Tenant = cfg.Workspace.String()
	}
	if cfg.BlockDuration == 0 {
		cfg.BlockDuration = 2 * time.Hour
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if progress == nil {
		progress = func(Block) {}
	}
	id := cfg.Workspace
	dir := orstorage.TSDBDir(cfg.DataDir, id)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return Report{}, fmt.Errorf("migrate workspace %s: %w: no TSDB at %s (is --data-dir the embedded server's --data-dir? it has %s)",
			id, ErrNotFound, dir, knownWorkspaces(cfg.DataDir))
	}
	lock, _, err := fileutil.Flock(filepath.Join(dir, "lock"))
	if err != nil {
		return Report{}, fmt.Errorf("migrate workspace %s: %w: %s/lock: %v: stop the embedded server using --data-dir %s and run again",
			id, ErrLocked, dir, err, cfg.DataDir)
	}
	defer func() {
		if rerr := lock.Release(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("release %s/lock: %w", dir, rerr))
		}
	}()

	rep = Report{Tenant: cfg.Tenant, TenantDir: filepath.Join(cfg.BucketDir, cfg.Tenant)}
	// One run at a time writes into a tenant's directory (two workspaces
	// migrated into the same --tenant would share the staging directory).
	if err := os.MkdirAll(rep.TenantDir, 0o750); err != nil {
		return rep, fmt.Errorf("migrate workspace %s: create %s: %w (is --bucket-dir writable?)", id, rep.TenantDir, err)
	}
	lockFile := filepath.Join(rep.TenantDir, stagingDir+".lock")
	tenantLock, _, err := fileutil.Flock(lockFile)
	if err != nil {
		return rep, fmt.Errorf("migrate workspace %s: %w: another migrate-to-cortex is writing into %s; wait for it and run again",
			id, ErrLocked, rep.TenantDir)
	}
	defer func() {
		// Removed while still held, so that it is not synced into the
		// bucket; a run that opened it meanwhile still finds it locked.
		rerr := errors.Join(os.Remove(lockFile), tenantLock.Release())
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("release the lock of %s: %w", rep.TenantDir, rerr))
		}
	}()
	staging := filepath.Join(rep.TenantDir, stagingDir)
	// A staging directory left by an interrupted run holds nothing useful.
	if err := os.RemoveAll(staging); err != nil {
		return rep, fmt.Errorf("migrate workspace %s: clean %s: %w", id, staging, err)
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return rep, fmt.Errorf("migrate workspace %s: create %s: %w (is --bucket-dir writable?)", id, staging, err)
	}
	defer func() {
		if rerr := os.RemoveAll(staging); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove %s: %w", staging, rerr))
		}
	}()

	// The read-only DB replays the WAL into memory, with the head's
	// memory-mapped chunks hard-linked into a sandbox directory: it must
	// be on the TSDB's file system, so it goes beside the TSDB.
	db, err := tsdb.OpenDBReadOnly(dir, orstorage.WorkspaceDir(cfg.DataDir, id), logger)
	if err != nil {
		return rep, fmt.Errorf("open workspace %s read-only: %w", id, err)
	}
	defer func() {
		if cerr := db.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close workspace %s: %w", id, cerr))
		}
	}()

	// Persisted blocks are opened here and each is read only for the
	// windows it overlaps. The read-only DB serves the head (WAL): it
	// supports one querier (it replays the WAL for each, and reopens the
	// blocks, closing those it returned before).
	width := cfg.BlockDuration.Milliseconds()
	readers, err := db.Blocks()
	if err != nil {
		return rep, fmt.Errorf("read blocks of workspace %s: %w", id, err)
	}
	var metas []tsdb.BlockMeta
	var dirs []string
	headFrom := int64(math.MinInt64)
	for _, r := range readers {
		d, ok := r.(interface{ Dir() string })
		if !ok {
			return rep, fmt.Errorf("read blocks of workspace %s: block %s has no directory", id, r.Meta().ULID)
		}
		metas, dirs = append(metas, r.Meta()), append(dirs, d.Dir())
		headFrom = max(headFrom, r.Meta().MaxTime)
	}
	// The head's samples start at the last block's end; out-of-order ones
	// may be older, by less than the out-of-order window (at most 10m in
	// Orrery): the head is read from one window further back. Samples it
	// shares with a block are merged.
	if headFrom != math.MinInt64 {
		headFrom -= width
	}
	head, err := db.Querier(headFrom, math.MaxInt64)
	if err != nil {
		return rep, fmt.Errorf("read the WAL of workspace %s: %w", id, err)
	}
	defer func() {
		if cerr := head.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close the WAL of workspace %s: %w", id, cerr))
		}
	}()
	blocks := make([]*tsdb.Block, 0, len(dirs))
	defer func() {
		for _, b := range blocks {
			if cerr := b.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close block %s of workspace %s: %w", b.Meta().ULID, id, cerr))
			}
		}
	}()
	for _, d := range dirs {
		b, err := tsdb.OpenBlock(logger, d, nil, nil)
		if err != nil {
			return rep, fmt.Errorf("open block %s of workspace %s: %w", d, id, err)
		}
		blocks = append(blocks, b)
	}
	windows, err := dataWindows(ctx, metas, head, headFrom, width)
	if err != nil {
		return rep, fmt.Errorf("read workspace %s: %w", id, err)
	}
	w := &writer{cfg: cfg, tenantDir: rep.TenantDir, staging: staging, logger: logger, blocks: blocks, head: head, headFrom: headFrom}
	for _, mint := range windows {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("migrate workspace %s: %w", id, err)
		}
		b, ok, err := w.window(ctx, mint, mint+width)
		if err != nil {
			return rep, fmt.Errorf("migrate workspace %s, block of %s: %w", id, time.UnixMilli(mint).UTC().Format(time.RFC3339), err)
		}
		if !ok {
			continue
		}
		rep.Blocks = append(rep.Blocks, b)
		rep.Samples += b.Samples
		if b.Existing {
			rep.Existing++
		} else {
			rep.Written++
		}
		progress(b)
	}
	return rep, nil
}

// knownWorkspaces lists the workspaces under a data directory, for errors.
func knownWorkspaces(dataDir string) string {
	es, err := os.ReadDir(filepath.Join(dataDir, "workspaces"))
	if err != nil {
		return "no workspaces directory"
	}
	var ids []string
	for _, e := range es {
		if e.IsDir() {
			ids = append(ids, e.Name())
		}
	}
	if len(ids) == 0 {
		return "no workspaces"
	}
	return "workspaces " + strings.Join(ids, ", ")
}

// dataWindows returns the start of every block-duration window holding
// data: those the persisted blocks cover, and those of the WAL's samples.
func dataWindows(ctx context.Context, metas []tsdb.BlockMeta, head storage.Querier, headFrom, width int64) ([]int64, error) {
	set := map[int64]bool{}
	add := func(mint, maxt int64) { // Inclusive.
		for t := floorDiv(mint, width) * width; t <= maxt; t += width {
			set[t] = true
		}
	}
	for _, m := range metas {
		add(m.MinTime, m.MaxTime-1)
	}
	ss := head.Select(ctx, false, &storage.SelectHints{Start: headFrom, End: math.MaxInt64}, allSeries())
	var it chunkenc.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
			t := it.AtT()
			add(t, t)
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
	}
	if err := ss.Err(); err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	slices.Sort(out)
	return out, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// allSeries matches every series.
func allSeries() *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".*")
}

type writer struct {
	cfg       Config
	tenantDir string
	staging   string
	logger    *slog.Logger
	// blocks are the TSDB's persisted blocks; head reads the TSDB from
	// headFrom on, the WAL included.
	blocks   []*tsdb.Block
	head     storage.Querier
	headFrom int64
}

// querier reads the TSDB's samples in [mint, maxt): the blocks that
// overlap the window, and the head if the window reaches it. Closing it
// leaves the head open.
func (w *writer) querier(mint, maxt int64) (storage.Querier, error) {
	var qs []storage.Querier
	for _, b := range w.blocks {
		if m := b.Meta(); m.MinTime >= maxt || m.MaxTime <= mint {
			continue
		}
		q, err := tsdb.NewBlockQuerier(b, mint, maxt-1)
		if err != nil {
			for _, q := range qs {
				_ = q.Close()
			}
			return nil, fmt.Errorf("query block %s: %w", b.Meta().ULID, err)
		}
		qs = append(qs, q)
	}
	if maxt > w.headFrom {
		qs = append(qs, unclosed{w.head})
	}
	// Overlapping blocks (and the head's overlap with the last block) are
	// merged as the TSDB's own querier merges them.
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

// unclosed is a querier whose Close leaves it open, for the shared head.
type unclosed struct{ storage.Querier }

func (unclosed) Close() error { return nil }

// window writes the block of [mint, maxt). ok is false when the window
// holds no sample.
func (w *writer) window(ctx context.Context, mint, maxt int64) (_ Block, ok bool, err error) {
	if mint < 0 {
		return Block{}, false, fmt.Errorf("%w: samples before 1970 cannot be named by a block ULID", ErrInvalid)
	}
	q, err := w.querier(mint, maxt)
	if err != nil {
		return Block{}, false, err
	}
	defer func() { err = errors.Join(err, q.Close()) }()
	// Prometheus' head refuses samples older than its newest minus half
	// its chunk range; twice the window accepts any order within it.
	bw, err := tsdb.NewBlockWriter(w.logger, w.staging, 2*(maxt-mint))
	if err != nil {
		return Block{}, false, err
	}
	defer func() { err = errors.Join(err, bw.Close()) }()
	app := bw.Appender(ctx)
	pending, total := 0, 0
	ss := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt - 1}, allSeries())
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		lset := s.Labels()
		var ref storage.SeriesRef
		it = s.Iterator(it)
		for typ := it.Next(); typ != chunkenc.ValNone; typ = it.Next() {
			if t := it.AtT(); t < mint || t >= maxt {
				continue // The querier trims to the window; this is a guard.
			}
			switch typ {
			case chunkenc.ValFloat:
				t, v := it.At()
				ref, err = app.Append(ref, lset, t, v)
			case chunkenc.ValHistogram:
				t, h := it.AtHistogram(nil)
				ref, err = app.AppendHistogram(ref, lset, t, h, nil)
			case chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				ref, err = app.AppendHistogram(ref, lset, t, nil, fh)
			default:
				err = fmt.Errorf("unknown sample type %v", typ)
			}
			if err != nil {
				_ = app.Rollback()
				return Block{}, false, fmt.Errorf("copy series %s: %w", lset, err)
			}
			pending++
			total++
			if pending >= commitEvery {
				if err := app.Commit(); err != nil {
					return Block{}, false, err
				}
				app, pending = bw.Appender(ctx), 0
			}
		}
		if err := it.Err(); err != nil {
			_ = app.Rollback()
			return Block{}, false, fmt.Errorf("read series %s: %w", lset, err)
		}
	}
	if err := ss.Err(); err != nil {
		_ = app.Rollback()
		return Block{}, false, err
	}
	if err := app.Commit(); err != nil {
		return Block{}, false, err
	}
	if total == 0 {
		return Block{}, false, nil
	}
	tmpID, err := bw.Flush(ctx)
	if err != nil {
		return Block{}, false, err
	}
	if tmpID == (ulid.ULID{}) {
		return Block{}, false, nil
	}
	b, err := w.finish(filepath.Join(w.staging, tmpID.String()), mint)
	return b, err == nil, err
}

// Meta is a block's meta.json as Cortex's blocks storage reads it: the
// Prometheus block meta and the Thanos section (thanos-io/thanos
// pkg/block/metadata.Meta, whose JSON this mirrors; Orrery does not depend
// on Thanos).
type Meta struct {
	tsdb.BlockMeta
	Thanos ThanosMeta `json:"thanos"`
}

// ThanosMeta is meta.json's "thanos" section.
type ThanosMeta struct {
	Version    int               `json:"version,omitempty"`
	Labels     map[string]string `json:"labels"`
	Downsample struct {
		Resolution int64 `json:"resolution"`
	} `json:"downsample"`
	Source       string   `json:"source"`
	SegmentFiles []string `json:"segment_files,omitempty"`
	Files        []File   `json:"files,omitempty"`
}

// File is one file of a block, as listed in meta.json (meta.json itself
// without a size, as Thanos lists it).
type File struct {
	RelPath   string `json:"rel_path"`
	SizeBytes int64  `json:"size_bytes,omitempty"`
}

// finish turns the block the block writer left in dir into the block
// Cortex reads: a ULID derived from its content, no tombstones file, the
// Thanos section in meta.json. It then moves the block into the tenant's
// directory, unless an identical one is there.
func (w *writer) finish(dir string, mint int64) (Block, error) {
	meta, err := readMeta(dir)
	if err != nil {
		return Block{}, err
	}
	// The writer leaves an empty tombstones file; Thanos' uploader does
	// not upload one.
	if err := os.Remove(filepath.Join(dir, "tombstones")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Block{}, err
	}
	files, segments, digest, err := blockFiles(dir)
	if err != nil {
		return Block{}, err
	}
	id, err := blockID(w.cfg.Tenant, mint, digest)
	if err != nil {
		return Block{}, err
	}
	meta.ULID = id
	meta.Compaction.Sources = []ulid.ULID{id}
	meta.Thanos = ThanosMeta{Version: 1, Labels: map[string]string{TenantLabel: w.cfg.Tenant}, Source: Source,
		SegmentFiles: segments, Files: files}
	b := Block{ULID: id, MinTime: meta.MinTime, MaxTime: meta.MaxTime, Series: meta.Stats.NumSeries,
		Samples: meta.Stats.NumSamples, Chunks: meta.Stats.NumChunks, Dir: filepath.Join(w.tenantDir, id.String())}
	if _, err := os.Stat(b.Dir); err == nil {
		if err := sameBlock(b.Dir, meta); err != nil {
			return Block{}, fmt.Errorf("%w: %s: %v; this tool writes a block ULID only for identical data, so the directory was changed "+
				"or an earlier copy into it was interrupted: move it out of --bucket-dir (delete it from the bucket too if it was synced) and run again",
				ErrConflict, b.Dir, err)
		}
		b.Existing = true
		return b, os.RemoveAll(dir)
	}
	if err := writeMeta(dir, meta); err != nil {
		return Block{}, err
	}
	if err := os.Rename(dir, b.Dir); err != nil {
		return Block{}, fmt.Errorf("move block into %s: %w", w.tenantDir, err)
	}
	if err := fsyncDir(w.tenantDir); err != nil {
		return Block{}, err
	}
	return b, nil
}

// blockID derives a block's ULID: the time part is the start of its window
// (ULIDs sort as the blocks' data), the entropy part a hash of the tenant
// and the block's content, so equal input yields the same ULID.
func blockID(tenant string, mint int64, digest []byte) (ulid.ULID, error) {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write(digest)
	var id ulid.ULID
	if err := id.SetTime(uint64(mint)); err != nil {
		return id, fmt.Errorf("name block of %d: %w", mint, err)
	}
	if err := id.SetEntropy(h.Sum(nil)[:10]); err != nil {
		return id, err
	}
	return id, nil
}

// blockFiles lists a block's files as Thanos' uploader does (chunks/*,
// index, meta.json, sorted by path), its chunk segment names, and a digest
// of the index and chunks' content.
func blockFiles(dir string) (files []File, segments []string, digest []byte, err error) {
	h := sha256.New()
	add := func(rel string) error {
		f, err := os.Open(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		h.Write([]byte(rel))
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		var size [8]byte
		binary.BigEndian.PutUint64(size[:], uint64(n))
		h.Write(size[:])
		files = append(files, File{RelPath: rel, SizeBytes: n})
		return nil
	}
	es, err := os.ReadDir(filepath.Join(dir, "chunks"))
	if err != nil {
		return nil, nil, nil, err
	}
	for _, e := range es { // ReadDir sorts by name.
		segments = append(segments, e.Name())
		if err := add(filepath.Join("chunks", e.Name())); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := add("index"); err != nil {
		return nil, nil, nil, err
	}
	files = append(files, File{RelPath: "meta.json"})
	sort.Slice(files, func(i, j int) bool { return files[i].RelPath < files[j].RelPath })
	return files, segments, h.Sum(nil), nil
}

// sameBlock reports how the block in dir differs from want, nil if its
// meta.json and files match.
func sameBlock(dir string, want Meta) error {
	have, err := readMeta(dir)
	if err != nil {
		return err
	}
	if have.MinTime != want.MinTime || have.MaxTime != want.MaxTime || have.Stats != want.Stats {
		return fmt.Errorf("its meta.json says %d series, %d samples in [%d, %d), this run has %d series, %d samples in [%d, %d)",
			have.Stats.NumSeries, have.Stats.NumSamples, have.MinTime, have.MaxTime,
			want.Stats.NumSeries, want.Stats.NumSamples, want.MinTime, want.MaxTime)
	}
	for _, f := range want.Thanos.Files {
		if f.RelPath == "meta.json" {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, f.RelPath))
		if err != nil {
			return err
		}
		if fi.Size() != f.SizeBytes {
			return fmt.Errorf("%s has %d bytes, this run wrote %d", f.RelPath, fi.Size(), f.SizeBytes)
		}
	}
	return nil
}

func readMeta(dir string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("read %s: %w", filepath.Join(dir, "meta.json"), err)
	}
	return m, nil
}

// writeMeta replaces dir/meta.json atomically, indented as Prometheus and
// Thanos write it.
func writeMeta(dir string, m Meta) error {
	b, err := json.MarshalIndent(m, "", "\t")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "meta.json")
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func fsyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}
