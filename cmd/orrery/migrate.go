package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/orrery-dev/orrery/internal/migration"
	"github.com/orrery-dev/orrery/internal/workspace"
)

const migrateUsage = `Usage: orrery migrate-to-cortex --data-dir DIR --workspace ws-... --bucket-dir OUT [flags]

Writes a workspace's samples from the embedded engine's TSDB (its blocks and
its WAL) as Cortex blocks into OUT/<tenant>/<ULID>/, laid out as Cortex's
blocks storage bucket (meta.json with the thanos section Cortex's ingesters
write). Stop the embedded server first: the workspace's TSDB must not be open.

OUT is a local directory: Cortex's filesystem bucket itself, or a staging
directory to copy into an object store bucket afterwards, e.g.
  aws s3 sync OUT s3://cortex-blocks/        (GCS: gcloud storage rsync -r OUT gs://cortex-blocks/)
Cortex serves the blocks once its compactor updated the tenant's bucket index
(compactor.cleanup_interval, 15m by default) and its store-gateways synced
(blocks_storage.bucket_store.sync_interval, 15m by default).

Running it again is safe: blocks already in OUT with the same content are
left as they are; a block directory with other content is never overwritten.
Exemplars and metric metadata are not migrated (Cortex blocks hold neither).
See docs/operations.md, "Migrating a workspace from the embedded engine".

Flags:
`

func runMigrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("orrery migrate-to-cortex", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), migrateUsage)
		fs.PrintDefaults()
	}
	var cfg migration.Config
	var ws string
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "the embedded server's --data-dir (the workspace's TSDB is <data-dir>/workspaces/<id>/tsdb)")
	fs.StringVar(&ws, "workspace", "", "ID of the workspace to migrate, ws-... (required)")
	fs.StringVar(&cfg.BucketDir, "bucket-dir", "", "directory laid out as the Cortex bucket's root; blocks are written to <bucket-dir>/<tenant>/<ULID>/ (required)")
	fs.StringVar(&cfg.Tenant, "tenant", "", "Cortex tenant (X-Scope-OrgID) of the blocks (default: the workspace ID, the tenant the Cortex engine uses for the workspace)")
	fs.DurationVar(&cfg.BlockDuration, "block-duration", 2*time.Hour, "length of the blocks written, aligned as Cortex's ingesters align theirs: Cortex's first blocks_storage.tsdb.block_ranges_period")
	level := logLevelFlag(fs, slog.LevelWarn, "log `level` of the TSDB's own messages (WAL replay, block writes): debug, info, warn, error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "orrery migrate-to-cortex: unexpected argument %q (flags only; see --help)\n", fs.Arg(0))
		return 2
	}
	if ws == "" || cfg.BucketDir == "" {
		fmt.Fprintln(stderr, "orrery migrate-to-cortex: --workspace and --bucket-dir are required (see --help)")
		return 2
	}
	cfg.Workspace = workspace.ID(ws)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "orrery migrate-to-cortex: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: *level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	fmt.Fprintf(stdout, "reading workspace %s from %s\n", ws, cfg.DataDir)
	rep, err := migration.Migrate(ctx, cfg, logger, func(b migration.Block) {
		what := "written "
		if b.Existing {
			what = "existing"
		}
		fmt.Fprintf(stdout, "block %s %s %s – %s  %d series, %d samples, %d chunks  %s\n", b.ULID, what,
			fmtTime(b.MinTime), fmtTime(b.MaxTime), b.Series, b.Samples, b.Chunks, b.Dir)
	})
	if err != nil {
		fmt.Fprintf(stderr, "orrery migrate-to-cortex: %v\n", err)
		if errors.Is(err, migration.ErrInvalid) {
			return 2
		}
		if rep.Written > 0 {
			fmt.Fprintf(stderr, "orrery migrate-to-cortex: the %d blocks written before the error are complete; running again after fixing it keeps them\n", rep.Written)
		}
		return 1
	}
	if len(rep.Blocks) == 0 {
		fmt.Fprintf(stdout, "workspace %s holds no samples: nothing to migrate\n", ws)
		return 0
	}
	first, last := rep.Blocks[0], rep.Blocks[len(rep.Blocks)-1]
	fmt.Fprintf(stdout, "migrated workspace %s to tenant %s in %s: %d blocks (%d written, %d already there), %d samples, %s – %s, in %s\n",
		ws, rep.Tenant, time.Since(started).Round(time.Millisecond), len(rep.Blocks), rep.Written, rep.Existing, rep.Samples,
		fmtTime(first.MinTime), fmtTime(last.MaxTime), rep.TenantDir)
	fmt.Fprintf(stdout, `next:
  1. copy %s into the Cortex bucket unless it is the bucket, e.g. aws s3 sync %s s3://<bucket>/%s/
  2. wait until the compactor updated the tenant's bucket index and the store-gateways synced
     (compactor.cleanup_interval and blocks_storage.bucket_store.sync_interval, 15m each by default)
  3. compare a query over the migrated range on the Cortex engine with the embedded server's answer
`, rep.TenantDir, rep.TenantDir, rep.Tenant)
	return 0
}

func fmtTime(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05Z") }
