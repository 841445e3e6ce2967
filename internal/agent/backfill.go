package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/wlog"
)

// Prometheus' remote write reads the WAL from where it is when it starts
// and sends only samples newer than its own start: whatever was scraped but
// not sent before a restart would be lost. The agent therefore keeps a
// watermark (the newest timestamp every remote write queue has sent, in
// <storage.path>/orrery-sent, written every second and at shutdown) and, at
// start, sends the WAL's samples newer than it itself, before starting the
// queues; then, once the queues run, the samples appended meanwhile, read
// from the WAL position (segment and offset) where the first pass ended;
// and scrapeWriteWait later, from where that pass ended, those of scrapes
// in flight when the queues started (agent.go's startQueues).
//
// What is sent twice: the queues report what they sent in whole seconds,
// so samples of the watermark's second past it are sent again after a
// restart, and after a crash also what was sent since the watermark was
// last written (a second). Samples are sent in WAL order with remote write
// 1.0; a sample sent twice (same timestamp and value) is accepted as a
// no-op by Orrery and Prometheus, recent enough to be within the
// out-of-order window.

const markerFile = "orrery-sent"

// loadMarker returns the stored watermark (ms), or ok false without one.
func loadMarker(dir string) (int64, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, markerFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("watermark file %s: %w", filepath.Join(dir, markerFile), err)
	}
	return ts, true, nil
}

// storeMarker writes the watermark atomically.
func storeMarker(dir string, ts int64) error {
	tmp := filepath.Join(dir, markerFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(ts, 10)+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, markerFile))
}

// walHasSegments reports whether the WAL directory holds data.
func walHasSegments(dir string) bool {
	first, last, err := wlog.Segments(filepath.Join(dir, "wal"))
	return err == nil && last >= 0 && first >= 0
}

// destination is one remote_write target of a backfill.
type destination struct {
	client   remote.WriteClient
	relabel  []*relabel.Config
	external labels.Labels
}

func destinations(cfg *config.Config) ([]destination, error) {
	var out []destination
	for i, rw := range cfg.RemoteWriteConfigs {
		c, err := remote.NewWriteClient(fmt.Sprintf("backfill-%d", i), &remote.ClientConfig{
			URL: rw.URL, Timeout: rw.RemoteTimeout, HTTPClientConfig: rw.HTTPClientConfig, SigV4Config: rw.SigV4Config,
			AzureADConfig: rw.AzureADConfig, GoogleIAMConfig: rw.GoogleIAMConfig, Headers: rw.Headers,
			RetryOnRateLimit: true, WriteProtoMsg: remoteapi.WriteV1MessageType,
		})
		if err != nil {
			return nil, fmt.Errorf("remote_write %s: %w", rw.URL, err)
		}
		out = append(out, destination{client: c, relabel: rw.WriteRelabelConfigs, external: cfg.GlobalConfig.ExternalLabels})
	}
	return out, nil
}

// walPos is a position in the WAL directory: the end of a record at
// Offset bytes into segment Segment. Segment numbers stay with their data
// when the WAL is truncated.
type walPos struct {
	Segment int
	Offset  int64
}

// after reports whether the record ending at (seg, off) comes after p.
func (p walPos) after(seg int, off int64) bool {
	return seg > p.Segment || (seg == p.Segment && off > p.Offset)
}

// backfill sends every sample of the WAL with after < T <= until to every
// remote_write destination of cfg, retrying what fails for now until it
// succeeds or ctx ends; a batch a receiver refuses for good is logged and
// skipped. With from set, only the samples of records after that position
// are sent (the checkpoint, older than any segment, gives only series). It
// returns the newest timestamp sent, how many samples, and the position
// after the last complete record it read.
func (a *Agent) backfill(ctx context.Context, cfg *config.Config, after, until int64, from *walPos) (int64, int, walPos, error) {
	end := walPos{Segment: -1}
	if from != nil {
		end = *from
	}
	dests, err := destinations(cfg)
	if err != nil || len(dests) == 0 {
		return after, 0, end, err
	}
	walDir := filepath.Join(a.cfg.DataDir, "wal")
	var dirs []string
	if cp, _, err := wlog.LastCheckpoint(walDir); err == nil {
		dirs = append(dirs, cp)
	}
	dirs = append(dirs, walDir)

	var (
		dec    = record.NewDecoder(labels.NewSymbolTable(), a.logger)
		series = map[chunks.HeadSeriesRef]labels.Labels{}
		b      = newBatch()
		newest = after
		sent   int
		rs     []record.RefSeries
		smp    []record.RefSample
		hs     []record.RefHistogramSample
		fhs    []record.RefFloatHistogramSample
	)
	flush := func() error {
		if b.samples == 0 {
			return nil
		}
		for _, d := range dests {
			err := a.send(ctx, d, b)
			if errors.Is(err, errRefused) {
				a.logger.Warn("a receiver refused samples from the WAL; they are skipped", "err", err)
				continue
			}
			if err != nil {
				return err
			}
		}
		sent += b.samples
		b = newBatch()
		return nil
	}
	for _, dir := range dirs {
		sr, err := wlog.NewSegmentsReader(dir)
		if err != nil {
			return newest, sent, end, fmt.Errorf("read WAL %s: %w", dir, err)
		}
		r := wlog.NewReader(sr)
		for r.Next() {
			rec := r.Record()
			// Samples of records at or before from were sent already;
			// series records are needed wherever they are.
			send := true
			if dir == walDir {
				seg, off := r.Segment(), r.Offset()
				send = from == nil || from.after(seg, off)
				if end.after(seg, off) {
					end = walPos{Segment: seg, Offset: off}
				}
			} else {
				send = from == nil
			}
			typ := dec.Type(rec)
			if !send && typ != record.Series {
				continue
			}
			switch typ {
			case record.Series:
				if rs, err = dec.Series(rec, rs[:0]); err != nil {
					break
				}
				for _, s := range rs {
					series[s.Ref] = s.Labels
				}
			case record.Samples, record.SamplesV2:
				if smp, err = dec.Samples(rec, smp[:0]); err != nil {
					break
				}
				for _, s := range smp {
					if s.T > after && s.T <= until {
						b.add(series[s.Ref], s.Ref, prompb.Sample{Timestamp: s.T, Value: s.V}, nil)
						newest = max(newest, s.T)
					}
				}
			case record.HistogramSamples, record.CustomBucketsHistogramSamples, record.HistogramSamplesV2:
				if hs, err = dec.HistogramSamples(rec, hs[:0]); err != nil {
					break
				}
				for _, h := range hs {
					if h.T > after && h.T <= until {
						p := prompb.FromIntHistogram(h.T, h.H)
						b.add(series[h.Ref], h.Ref, prompb.Sample{}, &p)
						newest = max(newest, h.T)
					}
				}
			case record.FloatHistogramSamples, record.CustomBucketsFloatHistogramSamples, record.FloatHistogramSamplesV2:
				if fhs, err = dec.FloatHistogramSamples(rec, fhs[:0]); err != nil {
					break
				}
				for _, h := range fhs {
					if h.T > after && h.T <= until {
						p := prompb.FromFloatHistogram(h.T, h.FH)
						b.add(series[h.Ref], h.Ref, prompb.Sample{}, &p)
						newest = max(newest, h.T)
					}
				}
			}
			if err != nil {
				_ = sr.Close()
				return newest, sent, end, fmt.Errorf("decode WAL record in %s: %w", dir, err)
			}
			if b.samples >= 2000 {
				if err := flush(); err != nil {
					_ = sr.Close()
					return newest, sent, end, err
				}
			}
		}
		// The last segment is being written: a torn record at its end is
		// the scrape in progress, not damage.
		if err := r.Err(); err != nil {
			a.logger.Debug("WAL read stopped at a partial record", "dir", dir, "err", err)
		}
		_ = sr.Close()
	}
	return newest, sent, end, flush()
}

// errRefused marks a batch a receiver refused for good.
var errRefused = errors.New("refused the samples")

// send sends a batch to one destination, retrying recoverable errors with
// backoff until ctx ends; a refusal for good is an errRefused.
func (a *Agent) send(ctx context.Context, d destination, b *batch) error {
	req := b.request(d)
	if len(req.Timeseries) == 0 {
		return nil
	}
	raw, err := req.Marshal()
	if err != nil {
		return err
	}
	body := snappy.Encode(nil, raw)
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := d.client.Store(ctx, body, attempt)
		if err == nil {
			return nil
		}
		var rec remote.RecoverableError
		if !errors.As(err, &rec) {
			return fmt.Errorf("%s %w: %w", d.client.Endpoint(), errRefused, err)
		}
		if attempt == 0 || attempt%20 == 0 {
			a.logger.Warn("sending samples kept in the WAL; retrying until the receiver answers", "url", d.client.Endpoint(), "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; the last attempt: %w", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// batch gathers samples by series.
type batch struct {
	series  []labels.Labels
	ts      []prompb.TimeSeries
	index   map[chunks.HeadSeriesRef]int
	samples int
}

func newBatch() *batch { return &batch{index: map[chunks.HeadSeriesRef]int{}} }

func (b *batch) add(lset labels.Labels, ref chunks.HeadSeriesRef, s prompb.Sample, h *prompb.Histogram) {
	if lset.IsEmpty() {
		return // A sample of a series whose record was lost with a truncated checkpoint.
	}
	i, ok := b.index[ref]
	if !ok {
		i = len(b.ts)
		b.index[ref] = i
		b.series = append(b.series, lset)
		b.ts = append(b.ts, prompb.TimeSeries{})
	}
	if h != nil {
		b.ts[i].Histograms = append(b.ts[i].Histograms, *h)
	} else {
		b.ts[i].Samples = append(b.ts[i].Samples, s)
	}
	b.samples++
}

// request builds the write request for a destination: external labels
// added, write_relabel_configs applied.
func (b *batch) request(d destination) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(b.ts))}
	lb := labels.NewBuilder(labels.EmptyLabels())
	for i, lset := range b.series {
		lb.Reset(lset)
		d.external.Range(func(l labels.Label) {
			if lset.Get(l.Name) == "" {
				lb.Set(l.Name, l.Value)
			}
		})
		if len(d.relabel) > 0 && !relabel.ProcessBuilder(lb, d.relabel...) {
			continue
		}
		ts := b.ts[i]
		ts.Labels = prompb.FromLabels(lb.Labels(), nil)
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}
