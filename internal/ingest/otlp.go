package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	deltatocumulative "github.com/open-telemetry/opentelemetry-collector-contrib/processor/deltatocumulativeprocessor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
	otlptranslator "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"github.com/prometheus/prometheus/util/annotations"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// OTLPConfig configures an OTLP handler.
type OTLPConfig struct {
	// Translation is Prometheus' otlp configuration block (metric name
	// translation, promoted resource attributes) for workspaces whose
	// limits set none. nil means Prometheus' default,
	// config.DefaultOTLPConfig.
	Translation *config.OTLPConfig
	// LookbackDelta is the query lookback delta, which spaces target_info's
	// samples as in Prometheus. 0 means Prometheus' default of 5 minutes.
	LookbackDelta time.Duration
	// ConvertDelta converts sums and histograms of delta temporality to
	// cumulative ones with the deltatocumulative processor Prometheus uses
	// (its otlp-deltatocumulative feature), keeping each workspace's
	// running totals apart. Without it, delta temporality is refused, as
	// by Prometheus.
	ConvertDelta bool
	// TranslationCache is how many data points' translations each
	// workspace remembers (see otlp_cache.go), in each of two
	// generations; 0 translates every export.
	TranslationCache int
}

// DefaultOTLPConfig returns the server's default OTLP configuration.
func DefaultOTLPConfig() OTLPConfig {
	return OTLPConfig{TranslationCache: 1 << 18}
}

// RegisterFlags registers OTLP ingestion's flags on fs, with c's values as
// their defaults.
func (c *OTLPConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.ConvertDelta, "otlp.convert-delta", c.ConvertDelta, "convert OTLP sums and histograms of delta temporality to cumulative, per workspace, as Prometheus' otlp-deltatocumulative feature (without it they are refused)")
	fs.IntVar(&c.TranslationCache, "otlp.translation-cache", c.TranslationCache, "data points of OTLP gauges and sums whose translation each workspace remembers (twice over, in two generations), so that exports of known series are neither decoded into OpenTelemetry's types nor translated again; 0 translates every export")
}

// Validate reports the first setting that cannot work.
func (c OTLPConfig) Validate() error {
	if c.TranslationCache < 0 {
		return fmt.Errorf("--otlp.translation-cache %d: give a number of data points, or 0 to translate every export", c.TranslationCache)
	}
	return nil
}

// withDefaults returns a copy of cfg with the zero values filled in.
func (cfg OTLPConfig) withDefaults() *OTLPConfig {
	if cfg.Translation == nil {
		def := config.DefaultOTLPConfig
		cfg.Translation = &def
	}
	if cfg.LookbackDelta == 0 {
		cfg.LookbackDelta = 5 * time.Minute
	}
	return &cfg
}

// OTLP serves OTLP/HTTP metrics export (ExportMetricsServiceRequest, as
// protobuf or JSON, uncompressed or gzip) for the workspace carried in the
// request context. It translates the metrics with Prometheus' own OTLP
// translation and stores them through the remote write Handler's path, as
// a remote write 2.0 request would be: the same limits, HA deduplication,
// metrics and durability (a 2xx only once the storage committed).
type OTLP struct {
	cfg         OTLPConfig
	h           *Handler
	logger      *slog.Logger
	translators sync.Pool // *otlpTranslator
	gunzips     sync.Pool // *gunzipper
	scans       sync.Pool // *otlpScan
	requests    *prometheus.CounterVec
	translated  *prometheus.CounterVec
	duration    prometheus.Histogram
	warnings    prometheus.Counter

	mu     sync.Mutex
	deltas map[workspace.ID]processor.Metrics // Started on a workspace's first delta point.
	caches map[workspace.ID]*otlpCache
}

// NewOTLP returns an OTLP handler that stores through h.
func NewOTLP(cfg OTLPConfig, h *Handler, logger *slog.Logger, reg prometheus.Registerer) (*OTLP, error) {
	if h == nil {
		return nil, errors.New("otlp ingestion needs a remote write handler")
	}
	cfg = *cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	o := &OTLP{
		cfg: cfg, h: h, logger: logger.With("component", "otlp"),
		requests: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingest_otlp_requests_total",
			Help: "OTLP metrics export requests by status code."}, []string{"code"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{Name: "orrery_ingest_otlp_request_duration_seconds",
			Help: "Time to serve an OTLP metrics export request.", NativeHistogramBucketFactor: 1.1,
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		warnings: f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingest_otlp_translation_warnings_total",
			Help: "Warnings of the OTLP to Prometheus translation (e.g. empty data points, label collisions)."}),
		translated: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingest_otlp_exports_total",
			Help: "OTLP exports read, by how they were translated: cached (every point's translation remembered) or translated."}, []string{"path"}),
	}
	o.translators.New = func() any { return newOTLPTranslator() }
	o.scans.New = func() any { return &otlpScan{} }
	o.deltas = map[workspace.ID]processor.Metrics{}
	o.caches = map[workspace.ID]*otlpCache{}
	return o, nil
}

// Forget stops the delta conversion of a workspace and drops its running
// totals and remembered translations, for when the workspace is deleted.
func (o *OTLP) Forget(id workspace.ID) {
	o.mu.Lock()
	p := o.deltas[id]
	delete(o.deltas, id)
	delete(o.caches, id)
	o.mu.Unlock()
	if p != nil {
		_ = p.Shutdown(context.Background())
	}
}

// toCumulative converts md's delta sums and histograms to cumulative ones
// in place, with the workspace's deltatocumulative processor. Points the
// processor cannot convert (e.g. older than the last one of their stream)
// are removed from md.
//
// The running totals advance before the points are stored: if storing then
// fails and the client retries, the retried deltas are added twice. This
// is Prometheus' behaviour too.
func (o *OTLP) toCumulative(ctx context.Context, id workspace.ID, lim *workspace.Limits, md pmetric.Metrics) error {
	o.mu.Lock()
	p, ok := o.deltas[id]
	if !ok {
		fac := deltatocumulative.NewFactory()
		cfg := fac.CreateDefaultConfig().(*deltatocumulative.Config)
		if lim.MaxActiveSeries > 0 {
			cfg.MaxStreams = lim.MaxActiveSeries
		}
		set := processor.Settings{ID: component.NewID(fac.Type()),
			TelemetrySettings: component.TelemetrySettings{MeterProvider: noop.NewMeterProvider()}}
		var err error
		// The processor converts md in place before handing it on; this
		// pipeline ends there.
		p, err = fac.CreateMetrics(ctx, set, cfg, consumerNop{})
		if err == nil {
			err = p.Start(context.Background(), nil)
		}
		if err != nil {
			o.mu.Unlock()
			return fmt.Errorf("start delta to cumulative conversion: %w", err)
		}
		o.deltas[id] = p
	}
	o.mu.Unlock()
	return p.ConsumeMetrics(ctx, md)
}

// consumerNop is the end of the delta conversion pipeline.
type consumerNop struct{}

func (consumerNop) ConsumeMetrics(context.Context, pmetric.Metrics) error { return nil }
func (consumerNop) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

// hasDelta reports whether md has a sum or histogram of delta temporality.
func hasDelta(md pmetric.Metrics) bool {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				t := pmetric.AggregationTemporalityUnspecified
				switch m := ms.At(k); m.Type() {
				case pmetric.MetricTypeSum:
					t = m.Sum().AggregationTemporality()
				case pmetric.MetricTypeHistogram:
					t = m.Histogram().AggregationTemporality()
				case pmetric.MetricTypeExponentialHistogram:
					t = m.ExponentialHistogram().AggregationTemporality()
				}
				if t == pmetric.AggregationTemporalityDelta {
					return true
				}
			}
		}
	}
	return false
}

// OTLP/HTTP content types.
const (
	otlpProto = "application/x-protobuf"
	otlpJSON  = "application/json"
)

// otlpAnswer is what an OTLP request is answered: a status code and, for
// 200, the count and reason of rejected points (partial success) or, for
// errors, the message of a google.rpc.Status.
type otlpAnswer struct {
	code     int
	rejected int64
	msg      string
}

// ServeHTTP implements http.Handler.
func (o *OTLP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := o.h.now()
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	a := o.serve(r, ct, w.Header())
	o.requests.WithLabelValues(strconv.Itoa(a.code)).Inc()
	o.duration.Observe(time.Since(start).Seconds())
	// The answer has the request's encoding, protobuf unless it was JSON.
	var (
		body []byte
		err  error
	)
	if a.code == http.StatusOK {
		resp := pmetricotlp.NewExportResponse()
		if a.rejected > 0 || a.msg != "" {
			resp.PartialSuccess().SetRejectedDataPoints(a.rejected)
			resp.PartialSuccess().SetErrorMessage(a.msg)
		}
		if ct == otlpJSON {
			body, err = resp.MarshalJSON()
		} else {
			body, err = resp.MarshalProto()
		}
	} else {
		st := &status.Status{Code: grpcCode(a.code), Message: a.msg}
		if ct == otlpJSON {
			body, err = protojson.Marshal(st)
		} else {
			body, err = proto.Marshal(st)
		}
	}
	if err != nil {
		http.Error(w, fmt.Sprintf("encode OTLP response: %v", err), http.StatusInternalServerError)
		return
	}
	if ct == otlpJSON {
		w.Header().Set("Content-Type", otlpJSON)
	} else {
		w.Header().Set("Content-Type", otlpProto)
	}
	w.WriteHeader(a.code)
	_, _ = w.Write(body)
}

// grpcCode maps an HTTP status to the google.rpc.Code an OTLP Status
// carries.
func grpcCode(code int) int32 {
	switch code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusMethodNotAllowed:
		return 3 // INVALID_ARGUMENT
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusTooManyRequests:
		return 8 // RESOURCE_EXHAUSTED
	case http.StatusServiceUnavailable:
		return 14 // UNAVAILABLE
	default:
		return 13 // INTERNAL
	}
}

func (o *OTLP) serve(r *http.Request, ct string, hdr http.Header) otlpAnswer {
	if r.Method != http.MethodPost {
		return otlpAnswer{code: http.StatusMethodNotAllowed, msg: "OTLP metrics export takes POST"}
	}
	id, ok := workspace.FromContext(r.Context())
	if !ok {
		return otlpAnswer{code: http.StatusInternalServerError, msg: "no workspace in request context"}
	}
	if ct != otlpProto && ct != otlpJSON {
		return otlpAnswer{code: http.StatusUnsupportedMediaType, msg: fmt.Sprintf(
			"Content-Type %q is not accepted; OTLP/HTTP bodies are %s or %s", r.Header.Get("Content-Type"), otlpProto, otlpJSON)}
	}
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if enc != "" && enc != "identity" && enc != "gzip" {
		return otlpAnswer{code: http.StatusUnsupportedMediaType, msg: fmt.Sprintf(
			"Content-Encoding %q is not accepted; use gzip or none", r.Header.Get("Content-Encoding"))}
	}
	lim := o.h.limits.Limits(id)
	h := o.h
	b := h.bufs.Get().(*buffers)
	defer h.putBuffers(b)
	body, herr := o.readOTLPBody(r, enc == "gzip", &lim, b)
	if herr != nil {
		if herr.code == http.StatusServiceUnavailable {
			// The in-flight budget is exhausted: OTLP/HTTP clients retry
			// a 503, after Retry-After if it is set.
			hdr.Set("Retry-After", "1")
		}
		return otlpAnswer{code: herr.code, msg: herr.msg}
	}
	cfg := o.cfg
	if lim.OTLP != nil {
		cfg.Translation = lim.OTLP
	}
	tr := o.translators.Get().(*otlpTranslator)
	defer o.translators.Put(tr)
	tr.col.tracing = false
	// An export of known series is served by the translation cache;
	// others are decoded and translated, and teach the cache.
	var (
		cache *otlpCache
		scan  *otlpScan
	)
	if o.cfg.TranslationCache > 0 && ct == otlpProto {
		scan = o.scans.Get().(*otlpScan)
		defer func() {
			scan.reset(nil)
			clear(scan.lsets) // Not to keep label sets alive in the pool.
			o.scans.Put(scan)
		}()
		if scan.scan(body) {
			cache = o.cache(id)
		}
	}
	var annots annotations.Annotations
	if cache != nil && translateCached(r.Context(), tr, &cfg, cache, scan, &b.req) {
		o.translated.WithLabelValues("cached").Inc()
	} else {
		o.translated.WithLabelValues("translated").Inc()
		md, err := DecodeOTLP(body, ct == otlpJSON)
		if err != nil {
			return otlpAnswer{code: http.StatusBadRequest, msg: err.Error()}
		}
		if o.cfg.ConvertDelta && hasDelta(md.Metrics()) {
			if err := o.toCumulative(r.Context(), id, &lim, md.Metrics()); err != nil {
				return otlpAnswer{code: http.StatusInternalServerError, msg: err.Error()}
			}
		}
		tr.col.tracing = cache != nil
		annots, err = translateOTLP(r.Context(), tr, &cfg, md.Metrics(), &b.req)
		if err != nil {
			// As in Prometheus, a request that does not translate is stored
			// not at all. The data is at fault: retrying cannot help.
			if r.Context().Err() != nil {
				return otlpAnswer{code: http.StatusServiceUnavailable, msg: err.Error()}
			}
			return otlpAnswer{code: http.StatusBadRequest, msg: err.Error()}
		}
		if cache != nil {
			teachOTLP(r.Context(), &cfg, cache, scan, tr.col.trace, len(annots) > 0)
		}
		tr.col.tracing = false
		clear(tr.col.trace) // Not to keep label sets alive in the pool.
	}
	var warning string
	if ws, _ := annots.AsStrings("", 0, 0); len(ws) > 0 {
		o.warnings.Add(float64(len(ws)))
		warning = strings.Join(ws, "; ")
	}

	st := h.state(id, &lim)
	if !h.haAccept(&b.req, &lim, st) {
		return otlpAnswer{code: http.StatusOK, msg: "points from a non-elected HA replica were dropped"}
	}
	nSamples, nHist, _ := b.req.Counts()
	if code, msg := h.reserve(id, &lim, st, nSamples+nHist, hdr); code != 0 {
		return otlpAnswer{code: code, msg: msg}
	}
	p, code, msg := h.admit(r.Context(), id, &lim, st, b)
	if code != 0 {
		return otlpAnswer{code: code, msg: msg}
	}
	app, err := h.store.Appender(r.Context(), id)
	if err != nil {
		return otlpAnswer{code: http.StatusInternalServerError, msg: fmt.Sprintf("open workspace %s for writing: %v", id, err)}
	}
	h.write(app, id, b, &p)
	code, msg, wr := h.commit(app, id, &p)
	var rejected int64
	for _, n := range p.rejected {
		rejected += int64(n)
	}
	switch {
	case code == http.StatusNoContent:
		return otlpAnswer{code: http.StatusOK, msg: warning}
	case code == http.StatusBadRequest && wr.samples+wr.histograms > 0:
		// Some points were stored: a partial success, which the client
		// must not retry.
		return otlpAnswer{code: http.StatusOK, rejected: rejected, msg: msg}
	default:
		return otlpAnswer{code: code, msg: msg}
	}
}

// otlpTranslator is Prometheus' OTLP converter and the collector it
// appends to, reused across requests (and workspaces) from a pool:
// translateOTLP resets both before and after each request, so nothing of
// one request reaches the next.
type otlpTranslator struct {
	conv *otlptranslator.PrometheusConverter
	col  otlpCollector
}

func newOTLPTranslator() *otlpTranslator {
	return &otlpTranslator{conv: otlptranslator.NewPrometheusConverter(nil)}
}

// cache returns the workspace's translation cache.
func (o *OTLP) cache(id workspace.ID) *otlpCache {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.caches[id]
	if c == nil {
		c = newOTLPCache(&o.cfg, o.cfg.TranslationCache)
		o.caches[id] = c
	}
	return c
}

// otlpSettings are the translation's settings for cfg.
func otlpSettings(cfg *OTLPConfig) otlptranslator.Settings {
	tc := cfg.Translation
	return otlptranslator.Settings{
		AddMetricSuffixes:                    tc.TranslationStrategy.ShouldAddSuffixes(),
		AllowUTF8:                            !tc.TranslationStrategy.ShouldEscape(),
		PromoteResourceAttributes:            otlptranslator.NewPromoteResourceAttributes(*tc),
		KeepIdentifyingResourceAttributes:    tc.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:              tc.ConvertHistogramsToNHCB,
		PromoteScopeMetadata:                 tc.PromoteScopeMetadata,
		LookbackDelta:                        cfg.LookbackDelta,
		LabelNameUnderscoreSanitization:      tc.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: tc.LabelNamePreserveMultipleUnderscores,
	}
}

// translateOTLP translates metrics with Prometheus' OTLP converter into a
// remote write 2.0 request r, which the remote write path validates and
// stores. r's labels alias the label sets the converter built, which no
// one writes to: r stays valid after tr is reused.
func translateOTLP(ctx context.Context, tr *otlpTranslator, cfg *OTLPConfig, md pmetric.Metrics, r *Request) (annotations.Annotations, error) {
	col, conv := &tr.col, tr.conv
	col.start(r)
	conv.Reset(col)
	defer func() {
		conv.Reset(nil)
		col.r = nil
	}()
	annots, err := conv.FromMetrics(ctx, md, otlpSettings(cfg))
	if err != nil {
		return annots, fmt.Errorf("translate OTLP metrics: %w", err)
	}
	return annots, nil
}

// readOTLPBody reads a request body within the workspace's limits on the
// body's size and its size after decompression, into b.body (and, for a
// gzip-compressed body, b.decoded) so that the pooled buffers are reused.
// Both count against the in-flight budget as remote write bodies do
// (Handler.readRaw). The bytes returned are valid until b is returned to
// its pool.
func (o *OTLP) readOTLPBody(r *http.Request, gzipped bool, lim *workspace.Limits, b *buffers) ([]byte, *httpError) {
	if herr := o.h.readRaw(r, lim, b); herr != nil {
		return nil, herr
	}
	if !gzipped {
		if len(b.in) > lim.MaxDecodedRequestBytes {
			return nil, errorf(http.StatusRequestEntityTooLarge, "request body is larger than the workspace's limit of %d decoded bytes", lim.MaxDecodedRequestBytes)
		}
		return b.in, nil
	}
	return o.gunzip(b.in, lim, b)
}

// gunzip decompresses a gzip-compressed body into b.decoded, within the
// workspace's limit on the decompressed size and the in-flight budget,
// which count the bytes as they grow: what a gzip bomb costs is bounded
// by both.
func (o *OTLP) gunzip(body []byte, lim *workspace.Limits, b *buffers) ([]byte, *httpError) {
	zr, _ := o.gunzips.Get().(*gunzipper)
	if zr == nil {
		zr = &gunzipper{}
	}
	defer o.gunzips.Put(zr)
	zr.br.Reset(body)
	defer zr.br.Reset(nil) // Not to keep the body alive in the pool.
	var err error
	if zr.zr == nil {
		zr.zr, err = gzip.NewReader(&zr.br)
	} else {
		err = zr.zr.Reset(&zr.br)
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "request body is not gzip-compressed: %v", err)
	}
	b.decoded, err = o.h.readReserved(b, b.decoded[:0], zr.zr, lim.MaxDecodedRequestBytes, 0)
	var herr *httpError
	switch {
	case err == nil:
		return b.decoded, nil
	case errors.Is(err, errTooLarge):
		return nil, errorf(http.StatusRequestEntityTooLarge, "request decompresses to more than the workspace's limit of %d bytes", lim.MaxDecodedRequestBytes)
	case errors.As(err, &herr):
		return nil, herr
	default:
		return nil, errorf(http.StatusBadRequest, "request body is not gzip-compressed: %v", err)
	}
}

// gunzipper is a gzip reader and the reader of the body it decompresses,
// pooled: a gzip reader's state is some 40 KiB.
type gunzipper struct {
	br bytes.Reader
	zr *gzip.Reader
}

// DecodeOTLP decodes an ExportMetricsServiceRequest from its protobuf or,
// if json is set, its JSON encoding.
func DecodeOTLP(b []byte, json bool) (pmetricotlp.ExportRequest, error) {
	req := pmetricotlp.NewExportRequest()
	if json {
		if err := req.UnmarshalJSON(b); err != nil {
			return req, fmt.Errorf("decode OTLP JSON ExportMetricsServiceRequest: %w", err)
		}
		return req, nil
	}
	if err := req.UnmarshalProto(b); err != nil {
		return req, fmt.Errorf("decode OTLP protobuf ExportMetricsServiceRequest: %w", err)
	}
	return req, nil
}

// otlpCollector is the storage.AppenderV2 that Prometheus' OTLP converter
// appends to: it writes the translated points into a remote write 2.0
// Request for the remote write path, in the order the converter appends
// them, as Prometheus appends them to its TSDB. Consecutive points of one
// series share a Series. It stores nothing.
//
// Each Series keeps the label set the converter built (a new one per
// Append, which the TSDB head would keep as well): admission looks series
// up in its cache by those, and the wire labels are made from them only
// when something asks for them (see Request.Labels).
type otlpCollector struct {
	r          *Request
	targetInfo int // target_info samples so far.
	// With tracing set, trace records every append, for the translation
	// cache to learn.
	tracing bool
	trace   []otlpAppend
}

// maxTargetInfoSamples bounds the target_info samples one request may
// yield. Prometheus' translation writes a target_info sample every half
// lookback delta between a resource's earliest and latest data points, so
// a request with one point at the epoch and one today would expand to
// millions of samples (a fuzzer found it). 10,000 covers a span of two
// weeks at the default 5 m lookback; real exporters send seconds.
const maxTargetInfoSamples = 10_000

// errTargetInfoSpan is the translation's error for such a request.
var errTargetInfoSpan = fmt.Errorf("the data points' timestamps are too far apart: target_info would need more than %d samples (one every half lookback delta between a resource's earliest and latest points)", maxTargetInfoSamples)

var _ storage.AppenderV2 = (*otlpCollector)(nil)

// start resets r and makes it the request the collector fills.
func (c *otlpCollector) start(r *Request) {
	r.Reset()
	r.Version = 2
	c.r, c.targetInfo = r, 0
	clear(c.trace) // Not to keep label sets alive in the pool.
	c.trace = c.trace[:0]
}

// Append implements storage.AppenderV2.
func (c *otlpCollector) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if ls.Get(labels.MetricName) == "target_info" {
		if c.targetInfo++; c.targetInfo > maxTargetInfoSamples {
			return 0, errTargetInfoSpan
		}
	}
	if c.tracing {
		c.trace = append(c.trace, otlpAppend{lset: ls, family: opts.MetricFamilyName, meta: opts.Metadata})
	}
	r := c.r
	n := len(r.Series)
	if n == 0 || !labels.Equal(r.Series[n-1].lset, ls) {
		// The series' points start at the ends of the arenas.
		s := Series{lset: ls, lazyLabels: true,
			samples:    r.spanSamples(len(r.samples)),
			histograms: r.spanHist(len(r.histograms)),
			exemplars:  r.spanExemplar(len(r.exemplars)),
		}
		if !opts.Metadata.IsEmpty() {
			s.Metadata, s.HasMetadata = opts.Metadata, true
		}
		r.Series = append(r.Series, s)
		n++
	}
	s := &r.Series[n-1]
	switch {
	case h != nil || fh != nil:
		m := writev2.FromIntHistogram(st, t, h)
		if fh != nil {
			m = writev2.FromFloatHistogram(st, t, fh)
		}
		raw, err := m.Marshal()
		if err != nil {
			return 0, fmt.Errorf("encode histogram of %s: %w", ls, err)
		}
		r.histograms = append(r.histograms, raw)
		s.histograms.hi++
	default:
		r.samples = append(r.samples, Sample{Value: v, Timestamp: t, StartTimestamp: st})
		s.samples.hi++
	}
	for _, e := range opts.Exemplars {
		lo := len(r.labels)
		r.labels = appendWireLabels(r.labels, e.Labels)
		r.exemplars = append(r.exemplars, Exemplar{Value: e.Value, Timestamp: e.Ts, labels: r.spanLabels(lo)})
		s.exemplars.hi++
	}
	return storage.SeriesRef(n), nil
}

// Commit implements storage.AppenderV2; the converter does not call it.
func (*otlpCollector) Commit() error { return nil }

// Rollback implements storage.AppenderV2; the converter does not call it.
func (*otlpCollector) Rollback() error { return nil }

// appendWireLabels appends ls to wire as wire labels, which alias ls'
// strings.
func appendWireLabels(wire []Label, ls labels.Labels) []Label {
	ls.Range(func(l labels.Label) {
		wire = append(wire, Label{Name: stringBytes(l.Name), Value: stringBytes(l.Value)})
	})
	return wire
}

// stringBytes returns the bytes of s without copying; they must not be
// written to.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
