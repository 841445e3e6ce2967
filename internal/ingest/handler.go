package ingest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"golang.org/x/time/rate"

	"github.com/orrery-dev/orrery/internal/failure"
	"github.com/orrery-dev/orrery/internal/workspace"
)

// Storage is what ingestion needs of the engine that stores a workspace.
// Implementations are safe for concurrent use.
type Storage interface {
	// Appender returns an appender for the workspace's storage. The caller
	// must end it with Commit or Rollback. When Commit returns nil the data
	// is durable: it survives a crash of the process. A Commit error is
	// answered with the status of its failure kind (a remote engine's
	// 429 is failure.Limited; an error without a kind is 500), or 202 if
	// it is ErrDropped.
	Appender(ctx context.Context, id workspace.ID) (storage.AppenderV2, error)
	// ActiveSeries returns how many series the workspace holds in memory.
	ActiveSeries(id workspace.ID) (int, error)
	// HasSeries reports whether the workspace holds a series with exactly
	// these labels in memory.
	HasSeries(ctx context.Context, id workspace.ID, lset labels.Labels) (bool, error)
	// CountLabelSets returns how many series in memory carry each label
	// set (for the empty set: carry none of the others).
	CountLabelSets(ctx context.Context, id workspace.ID, ls []workspace.LabelSetLimit) ([]int, error)
	// SetMetadata records the metadata of a metric family.
	SetMetadata(id workspace.ID, family string, m metadata.Metadata)
}

// Forwarder is a Storage that forwards requests to another engine (the
// Cortex engine's) and leaves series limits (active series, label set
// limits) to it. Given to NewForwarding, it lets the handler check a remote
// write 1.0 request in one pass over its body (scanValidV1) and, when
// every series passes, forward the sender's bytes without decoding them
// into series at all.
type Forwarder interface {
	Storage
	// ForwardingAppender is Appender, for an appender that can forward.
	ForwardingAppender(ctx context.Context, id workspace.ID) (ForwardingAppender, error)
}

// ForwardingAppender is an appender that can forward the sender's own
// bytes. For a remote write 1.0 request the handler first validates every
// series without appending; when the request is admitted whole and
// unchanged (no series rejected, no label dropped), it calls ForwardRaw
// with the request's snappy-compressed body and then Commit, with no Append
// at all: Commit sends those bytes. Otherwise it appends what it admits as
// with any appender. The body is valid until Commit returns.
type ForwardingAppender interface {
	storage.AppenderV2
	ForwardRaw(body []byte)
}

// Config configures a Handler.
type Config struct {
	// CreationGracePeriod is how far in the future a sample's timestamp may
	// be. Later samples are rejected: they would stretch the head block.
	CreationGracePeriod time.Duration
	// MaxInflightBytes bounds the request bodies, compressed and
	// decoded, all requests together hold at once; a request that would
	// go beyond it gets 503 with Retry-After before it allocates. Zero
	// means DefaultMaxInflightBytes.
	MaxInflightBytes int64
}

// DefaultConfig returns the handler's defaults.
func DefaultConfig() Config {
	return Config{CreationGracePeriod: 10 * time.Minute, MaxInflightBytes: DefaultMaxInflightBytes}
}

// RegisterFlags registers the handler's flags on fs, with c's values as
// their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.MaxInflightBytes, "ingest.max-inflight-bytes", c.MaxInflightBytes, "remote write and OTLP request bytes (bodies, compressed and decoded) all requests may hold at once; beyond it requests get 503 with Retry-After")
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxInflightBytes < 0 {
		return errors.New("--ingest.max-inflight-bytes must not be negative")
	}
	if c.CreationGracePeriod < 0 {
		return errors.New("the creation grace period must not be negative")
	}
	return nil
}

// DefaultMaxInflightBytes is Config.MaxInflightBytes's default: one
// request of the largest default size (16 MiB compressed, 64 MiB decoded)
// and many of the usual few hundred KiB.
const DefaultMaxInflightBytes = 128 << 20

// Handler serves Prometheus remote write for the workspace carried in the
// request context (see workspace.FromContext).
type Handler struct {
	cfg     Config
	store   Storage
	limits  workspace.LimitsSource
	logger  *slog.Logger
	now     func() time.Time
	metrics *metrics
	fwd     Forwarder // nil: the storage stores; no forwarding fast path.

	mu     sync.Mutex
	states map[workspace.ID]*wsState

	bufs sync.Pool // *buffers

	// inflight is the bytes requests hold now (Config.MaxInflightBytes).
	inflight atomic.Int64
}

// wsState is per-workspace ingestion state.
type wsState struct {
	cache   *seriesCache
	limiter *rate.Limiter
	ha      haTracker
}

// buffers is scratch space for one request, pooled.
type buffers struct {
	body, decoded, hash []byte
	// in is the request's compressed body: body, or the one
	// authentication read. It is not kept across requests.
	in []byte
	// reserved is what the request counts in Handler.inflight.
	reserved  int64
	req       Request
	sb        labels.ScratchBuilder
	exemplars []exemplar.Exemplar
	sets      []int
	// admitted and histograms are admission's decisions (admit.go).
	admitted   []*cacheEntry
	histograms []admittedHistogram
}

type metrics struct {
	samples, histograms, exemplars *prometheus.CounterVec
	rejected                       *prometheus.CounterVec
	requests                       *prometheus.CounterVec
	fastPath                       prometheus.Counter
	duration                       prometheus.Histogram
	cacheSize                      *prometheus.GaugeVec
}

// New returns a remote write Handler.
func New(cfg Config, store Storage, limits workspace.LimitsSource, logger *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if store == nil || limits == nil {
		return nil, errors.New("ingest needs a storage and a limits source")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CreationGracePeriod == 0 {
		cfg.CreationGracePeriod = 10 * time.Minute
	}
	if cfg.MaxInflightBytes <= 0 {
		cfg.MaxInflightBytes = DefaultMaxInflightBytes
	}
	f := promauto.With(reg)
	h := &Handler{
		cfg: cfg, store: store, limits: limits, logger: logger.With("component", "ingest"), now: time.Now,
		states: map[workspace.ID]*wsState{},
		metrics: &metrics{
			samples: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingest_samples_total",
				Help: "Float samples stored."}, []string{"workspace"}),
			histograms: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingest_histograms_total",
				Help: "Native histogram samples stored."}, []string{"workspace"}),
			exemplars: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingest_exemplars_total",
				Help: "Exemplars stored."}, []string{"workspace"}),
			rejected: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingest_rejected_samples_total",
				Help: "Samples and histograms not stored, by reason."}, []string{"workspace", "reason"}),
			requests: f.NewCounterVec(prometheus.CounterOpts{Name: "orrery_ingest_requests_total",
				Help: "Remote write requests by protocol version and status code."}, []string{"version", "code"}),
			fastPath: f.NewCounter(prometheus.CounterOpts{Name: "orrery_ingest_fast_path_requests_total",
				Help: "Remote write 1.0 requests of valid, sorted series with float samples only, checked in one pass and forwarded as sent."}),
			duration: f.NewHistogram(prometheus.HistogramOpts{Name: "orrery_ingest_request_duration_seconds",
				Help: "Time to serve a remote write request.", NativeHistogramBucketFactor: 1.1,
				Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
			cacheSize: f.NewGaugeVec(prometheus.GaugeOpts{Name: "orrery_ingest_series_cache_entries",
				Help: "Series in the ingestion series cache after the last sweep."}, []string{"workspace"}),
		},
	}
	h.bufs.New = func() any { return &buffers{sb: labels.NewScratchBuilder(16)} }
	return h, nil
}

// NewForwarding returns a remote write Handler that forwards to fw, taking
// the fast path Forwarder describes.
func NewForwarding(cfg Config, fw Forwarder, limits workspace.LimitsSource, logger *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	if fw == nil {
		return nil, errors.New("ingest needs a forwarder")
	}
	h, err := New(cfg, fw, limits, logger, reg)
	if err != nil {
		return nil, err
	}
	h.fwd = fw
	return h, nil
}

func (h *Handler) state(id workspace.ID, lim *workspace.Limits) *wsState {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := rate.Limit(lim.IngestionRate)
	if lim.IngestionRate == 0 {
		r = rate.Inf
	}
	st, ok := h.states[id]
	if !ok {
		// A new limiter starts with a full bucket.
		st = &wsState{cache: newSeriesCache(), limiter: rate.NewLimiter(r, lim.IngestionBurstSize)}

		h.states[id] = st
	}
	if st.limiter.Limit() != r || st.limiter.Burst() != lim.IngestionBurstSize {
		st.limiter.SetLimit(r)
		st.limiter.SetBurst(lim.IngestionBurstSize)
	}
	return st
}

// Sweep evicts series the workspaces have not written since the previous
// sweep from the series caches. The server calls it periodically.
func (h *Handler) Sweep() {
	h.mu.Lock()
	states := make(map[workspace.ID]*wsState, len(h.states))
	for id, st := range h.states {
		states[id] = st
	}
	h.mu.Unlock()
	for id, st := range states {
		h.metrics.cacheSize.WithLabelValues(id.String()).Set(float64(st.cache.sweep()))

	}
}

// Forget drops all state of a workspace, for when it is deleted.
func (h *Handler) Forget(id workspace.ID) {
	h.mu.Lock()
	delete(h.states, id)
	h.mu.Unlock()
	for _, v := range []*prometheus.CounterVec{h.metrics.samples, h.metrics.histograms, h.metrics.exemplars, h.metrics.rejected} {
		v.DeletePartialMatch(prometheus.Labels{"workspace": id.String()})
	}
	h.metrics.cacheSize.DeleteLabelValues(id.String())
}

// ErrDropped is returned by a Storage's Commit when the engine accepted the
// request but dropped its samples on purpose: those of a high-availability
// pair's replica that is not elected. The sender is answered 202.
var ErrDropped = errors.New("samples from a non-elected HA replica were dropped")

// httpError is an error with the status code to answer.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// written counts what one request stored, for remote write 2.0's headers.
type written struct{ samples, histograms, exemplars int }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	version := "1"
	code, msg, wr := h.serve(r, w.Header(), &version)
	if version == "2" {
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(wr.samples))
		w.Header().Set("X-Prometheus-Remote-Write-Histograms-Written", strconv.Itoa(wr.histograms))
		w.Header().Set("X-Prometheus-Remote-Write-Exemplars-Written", strconv.Itoa(wr.exemplars))
	}
	h.metrics.requests.WithLabelValues(version, strconv.Itoa(code)).Inc()
	h.metrics.duration.Observe(time.Since(start).Seconds())
	if code == http.StatusNoContent {
		w.WriteHeader(code)
		return
	}
	http.Error(w, msg, code)
}

// serve handles one request and returns the status code and message to
// answer; it may set response headers in hdr. It never panics on input.
func (h *Handler) serve(r *http.Request, hdr http.Header, version *string) (int, string, written) {
	var wr written
	if r.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "remote write takes POST", wr
	}
	id, ok := workspace.FromContext(r.Context())
	if !ok {
		return http.StatusInternalServerError, "no workspace in request context", wr
	}
	lim := h.limits.Limits(id)

	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return http.StatusUnsupportedMediaType, fmt.Sprintf(
			"Content-Encoding %q is not accepted; remote write bodies must be snappy-compressed (Content-Encoding: snappy)", enc), wr
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/x-protobuf"
	}
	msgType, err := remoteapi.ParseProtoMsg(ct)
	if err != nil {
		return http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q is not accepted: %v; use application/x-protobuf;proto=prometheus.WriteRequest or ;proto=io.prometheus.write.v2.Request", ct, err), wr
	}
	if msgType == remoteapi.WriteV2MessageType {
		*version = "2"
	}

	b := h.bufs.Get().(*buffers)
	defer h.putBuffers(b)
	if herr := h.readBody(r, &lim, b); herr != nil {
		if herr.code == http.StatusServiceUnavailable {
			hdr.Set("Retry-After", "1")
		}
		return herr.code, herr.msg, wr
	}
	st := h.state(id, &lim)
	if h.fwd != nil && *version == "1" && lim.HAClusterLabel == "" {
		// A request of valid series is forwarded as sent, checked in one
		// pass over the body.
		if n, ok := scanValidV1(b.decoded, &lim, h.maxTimestamp()); ok {
			app, err := h.fwd.ForwardingAppender(r.Context(), id)
			if err != nil {
				return http.StatusInternalServerError, fmt.Sprintf("open workspace %s for writing: %v", id, err), wr
			}
			if code, msg := h.reserve(id, &lim, st, n, hdr); code != 0 {
				_ = app.Rollback()
				return code, msg, wr
			}
			h.metrics.fastPath.Inc()
			app.ForwardRaw(b.in)
			return h.commit(app, id, &pass{wr: written{samples: n}})
		}
	}
	req := &b.req
	if *version == "2" {
		err = DecodeV2(b.decoded, req)
	} else {
		err = DecodeV1(b.decoded, req)
	}
	if err != nil {
		return http.StatusBadRequest, fmt.Sprintf("decode remote write %s request: %v", *version, err), wr
	}

	if !h.haAccept(req, &lim, st) {
		// Cortex answers 202 for samples of a replica that is not elected.
		return http.StatusAccepted, "samples from a non-elected HA replica were dropped", wr
	}

	nSamples, nHist, _ := req.Counts()
	if code, msg := h.reserve(id, &lim, st, nSamples+nHist, hdr); code != 0 {
		return code, msg, wr
	}

	for _, m := range req.Metadata {
		if m.Family != "" {
			h.store.SetMetadata(id, m.Family, m.Metadata)
		}
	}
	return h.append(r.Context(), id, &lim, st, b)
}

// reserve takes n samples from the workspace's ingestion rate limit, or
// returns the status code and message refusing the request.
func (h *Handler) reserve(id workspace.ID, lim *workspace.Limits, st *wsState, n int, hdr http.Header) (int, string) {
	if n == 0 {
		return 0, ""
	}
	if lim.IngestionBurstSize > 0 && n > lim.IngestionBurstSize && lim.IngestionRate > 0 {
		return http.StatusBadRequest, fmt.Sprintf("request carries %d samples, more than the workspace's ingestion burst size of %d; send smaller requests (remote_write queue_config max_samples_per_send)", n, lim.IngestionBurstSize)
	}
	if res := st.limiter.ReserveN(h.now(), n); !res.OK() || res.Delay() > 0 {
		delay := res.Delay()
		res.Cancel()
		h.metrics.rejected.WithLabelValues(id.String(), "rate_limited").Add(float64(n))
		hdr.Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(delay.Seconds())))))
		return http.StatusTooManyRequests, fmt.Sprintf("ingestion rate limit of %g samples/s (burst %d) exceeded for workspace %s while adding %d samples; retry later",
			lim.IngestionRate, lim.IngestionBurstSize, id, n)
	}
	return 0, ""
}

// maxTimestamp is the latest sample timestamp accepted now.
func (h *Handler) maxTimestamp() int64 { return h.now().Add(h.cfg.CreationGracePeriod).UnixMilli() }

const (
	// maxSnappyRatio bounds how much a snappy block may decompress to,
	// per compressed byte: snappy's densest element, a copy of 64 bytes,
	// takes 3 bytes (21.3 times).
	maxSnappyRatio = 22
	// maxPooledBytes is the largest decoded body whose buffers are pooled:
	// a request larger than what senders send (a few hundred KiB) gets
	// buffers that are not kept, so that a few large requests do not pin
	// their size in the pool for good.
	maxPooledBytes = 4 << 20
)

// take counts n more bytes for the request, or refuses it when all
// requests would then hold more than Config.MaxInflightBytes.
func (h *Handler) take(b *buffers, n int64) *httpError {
	if n <= 0 {
		return nil
	}
	if h.inflight.Add(n) > h.cfg.MaxInflightBytes {
		h.inflight.Add(-n)
		return errorf(http.StatusServiceUnavailable, "the server holds as many ingested request bytes as it allows at once (%d, --ingest.max-inflight-bytes); retry later", h.cfg.MaxInflightBytes)
	}
	b.reserved += n
	return nil
}

// putBuffers returns a request's buffers to the pool, unless they grew
// beyond maxPooledBytes.
func (h *Handler) putBuffers(b *buffers) {
	b.in = nil
	h.inflight.Add(-b.reserved)
	b.reserved = 0
	if cap(b.decoded) > maxPooledBytes || cap(b.body) > maxPooledBytes {
		return
	}
	h.bufs.Put(b)
}

// readBody reads a remote write body into b.in and decodes its snappy
// block into b.decoded, within the workspace's limits and the in-flight
// budget.
func (h *Handler) readBody(r *http.Request, lim *workspace.Limits, b *buffers) *httpError {
	if herr := h.readRaw(r, lim, b); herr != nil {
		return herr
	}
	return h.decode(b.in, lim, b)
}

// readRaw reads a request's body, as sent, into b.in (b.body, unless
// authentication has buffered the body already) within the workspace's
// limit on its size, counting the bytes it holds against the in-flight
// budget (Handler.take) as they grow.
func (h *Handler) readRaw(r *http.Request, lim *workspace.Limits, b *buffers) *httpError {
	if r.ContentLength > int64(lim.MaxRequestBytes) {
		return errorf(http.StatusRequestEntityTooLarge, "request body of %d bytes is larger than the workspace's limit of %d bytes", r.ContentLength, lim.MaxRequestBytes)
	}
	tooLarge := errorf(http.StatusRequestEntityTooLarge, "request body is larger than the workspace's limit of %d bytes", lim.MaxRequestBytes)
	if rb, ok := r.Body.(interface{ Bytes() []byte }); ok {
		// Authentication has read the body already (to check a signature
		// over it): take it rather than copy it. The decoders do not
		// modify it.
		b.in = rb.Bytes()
		if len(b.in) > lim.MaxRequestBytes {
			return tooLarge
		}
		return h.take(b, int64(len(b.in)))
	}
	buf, err := h.readReserved(b, b.body[:0], r.Body, lim.MaxRequestBytes, r.ContentLength)
	b.body = buf
	var herr *httpError
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		b.in = buf
		return nil
	case errors.Is(err, errTooLarge), errors.As(err, &mbe):
		return tooLarge
	case errors.As(err, &herr):
		return herr
	default:
		return errorf(http.StatusBadRequest, "read request body: %v", err)
	}
}

// errTooLarge is readReserved's error for a source longer than its limit.
var errTooLarge = errors.New("larger than the limit")

// readChunk is how much more readReserved reserves when what it reserved
// is full.
const readChunk = 32 << 10

// readReserved appends what src reads until EOF to buf, the one read loop
// of request bodies and their decompressed forms. It counts against the
// in-flight budget the bytes it reads, a chunk ahead of reading them, and
// all the capacity it allocates: a pooled buffer's unused capacity is not
// counted, so that one large request does not make the next ones that
// reuse its buffers count its size. size, if positive, is the expected
// length, reserved and allocated at once. It returns errTooLarge once buf
// holds more than limit bytes, the budget's *httpError when the budget is
// exhausted, or src's error. The buf returned, even with an error, is the
// buffer to keep.
func (h *Handler) readReserved(b *buffers, buf []byte, src io.Reader, limit int, size int64) ([]byte, error) {
	var held int64 // Bytes of buf reserved: what it holds and the window read into next.
	if size > 0 {
		if herr := h.take(b, size); herr != nil {
			return buf, herr
		}
		held = size
	}
	for {
		if int64(len(buf)) == held {
			if herr := h.take(b, readChunk); herr != nil {
				return buf, herr
			}
			held += readChunk
		}
		if int64(cap(buf)) < held {
			buf = slices.Grow(buf, int(held)-len(buf))
			// Growth may allocate more than asked: it is held all the same.
			if extra := int64(cap(buf)) - held; extra > 0 {
				if herr := h.take(b, extra); herr != nil {
					return buf, herr
				}
				held += extra
			}
		}
		n, err := src.Read(buf[len(buf):held])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, errTooLarge
		}
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// decode decompresses a snappy block into b.decoded.
func (h *Handler) decode(buf []byte, lim *workspace.Limits, b *buffers) *httpError {
	n, err := snappy.DecodedLen(buf)
	if err != nil {
		return errorf(http.StatusBadRequest, "request body is not snappy block-compressed: %v", err)
	}
	if n > maxSnappyRatio*len(buf) {
		// The size is only a claim, and the buffer is allocated before
		// decoding: a few bytes claiming 64 MiB would cost 64 MiB.
		return errorf(http.StatusBadRequest, "request body of %d bytes claims to decompress to %d bytes, more than snappy can reach (%d times); it is corrupt", len(buf), n, maxSnappyRatio)
	}
	if n > lim.MaxDecodedRequestBytes {
		return errorf(http.StatusRequestEntityTooLarge, "request decompresses to %d bytes, more than the workspace's limit of %d bytes", n, lim.MaxDecodedRequestBytes)
	}
	if herr := h.take(b, int64(n)); herr != nil {
		return herr
	}
	if cap(b.decoded) < n {
		b.decoded = make([]byte, n)
	}
	b.decoded, err = snappy.Decode(b.decoded[:cap(b.decoded)], buf)
	if err != nil {
		return errorf(http.StatusBadRequest, "request body is not snappy block-compressed: %v", err)
	}
	return nil
}

// haAccept applies HA-pair deduplication: it reports whether the request's
// samples are to be stored and, if so, strips the replica label.
func (h *Handler) haAccept(req *Request, lim *workspace.Limits, st *wsState) bool {
	if lim.HAClusterLabel == "" || lim.HAReplicaLabel == "" || len(req.Series) == 0 {
		return true
	}
	var cluster, replica string
	for _, l := range req.Labels(&req.Series[0]) {
		switch string(l.Name) {
		case lim.HAClusterLabel:
			cluster = string(l.Value)
		case lim.HAReplicaLabel:
			replica = string(l.Value)
		}
	}
	if cluster == "" || replica == "" {
		return true
	}
	if !st.ha.accept(cluster, replica, h.now(), time.Duration(lim.HAFailoverTimeout)) {
		return false
	}
	for i := range req.Series {
		req.filterLabel(&req.Series[i], lim.HAReplicaLabel)
	}
	return true
}

// rejections collects why parts of a request were not stored.
type rejections struct {
	msgs  []string
	count int
}

const maxReportedRejections = 10

func (rj *rejections) add(msg string) {
	rj.count++
	if len(rj.msgs) < maxReportedRejections {
		rj.msgs = append(rj.msgs, msg)
	}
}

func (rj *rejections) String() string {
	s := strings.Join(rj.msgs, "\n")
	if rj.count > len(rj.msgs) {
		s += fmt.Sprintf("\n… and %d more", rj.count-len(rj.msgs))
	}
	return s
}

func sampleReason(err error) string {
	switch {
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return "out_of_order"
	case errors.Is(err, storage.ErrTooOldSample):
		return "too_old"
	case errors.Is(err, storage.ErrOutOfBounds):
		return "out_of_bounds"
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return "duplicate_timestamp"
	default:
		return "invalid_sample"
	}
}

// append admits the request's series and writes what it admits: the
// sender's own bytes when a forwarding engine can take them whole.
func (h *Handler) append(ctx context.Context, id workspace.ID, lim *workspace.Limits, st *wsState, b *buffers) (int, string, written) {
	p, code, msg := h.admit(ctx, id, lim, st, b)
	if code != 0 {
		return code, msg, written{}
	}
	if h.fwd != nil {
		fw, err := h.fwd.ForwardingAppender(ctx, id)
		if err != nil {
			return http.StatusInternalServerError, fmt.Sprintf("open workspace %s for writing: %v", id, err), written{}
		}
		if b.req.Version == 1 && !b.req.rewritten && p.rj.count == 0 {
			// Admitted whole and unchanged: the sender's bytes are the
			// request to forward.
			fw.ForwardRaw(b.in)
			p.wr = p.admitted
			return h.commit(fw, id, &p)
		}
		h.write(fw, id, b, &p)
		return h.commit(fw, id, &p)
	}
	app, err := h.store.Appender(ctx, id)
	if err != nil {
		return http.StatusInternalServerError, fmt.Sprintf("open workspace %s for writing: %v", id, err), written{}
	}
	h.write(app, id, b, &p)
	return h.commit(app, id, &p)
}

// commit commits what a pass wrote and answers the request.
func (h *Handler) commit(app storage.AppenderV2, id workspace.ID, p *pass) (int, string, written) {
	wr := p.wr
	if err := app.Commit(); err != nil {
		code := failure.KindOf(err).Status()
		if errors.Is(err, ErrDropped) {
			code = http.StatusAccepted
		}
		return code, fmt.Sprintf("commit to workspace %s: %v", id, err), written{}
	}
	ws := id.String()
	h.metrics.samples.WithLabelValues(ws).Add(float64(wr.samples))
	if wr.histograms > 0 {
		h.metrics.histograms.WithLabelValues(ws).Add(float64(wr.histograms))
	}
	if wr.exemplars > 0 {
		h.metrics.exemplars.WithLabelValues(ws).Add(float64(wr.exemplars))
	}
	for reason, n := range p.rejected {
		h.metrics.rejected.WithLabelValues(ws, reason).Add(float64(n))
	}
	if p.rj.count > 0 {
		return http.StatusBadRequest, fmt.Sprintf("stored %d samples and %d histograms; rejected %d:\n%s", wr.samples, wr.histograms, p.rj.count, p.rj.String()), wr
	}
	return http.StatusNoContent, "", wr
}

// noSamplesMsg is Prometheus 3's message refusing a 2.0 series that carries
// no sample or histogram.
func noSamplesMsg(lset labels.Labels) string {
	return fmt.Sprintf("TimeSeries must contain at least one sample or histogram for series %v", lset.String())
}

// checkLabelSets decides whether a series not in the cache may be stored
// under the workspace's label set limits, counting it in counts if so. It
// returns the rejection message, or "" to accept. A series the head
// already holds is always accepted. counts may overestimate (a cache miss
// is counted as new even when the head holds the series), never
// underestimate, so a limit is never exceeded.
func (h *Handler) checkLabelSets(ctx context.Context, id workspace.ID, ls []workspace.LabelSetLimit, counts []int, lset labels.Labels, b *buffers) (string, error) {
	b.sets = workspace.LabelSetsOf(ls, lset, b.sets)
	for _, i := range b.sets {
		if ls[i].MaxSeries > 0 && counts[i] >= ls[i].MaxSeries {
			exists, err := h.store.HasSeries(ctx, id, lset)
			if err != nil {
				return "", err
			}
			if exists {
				return "", nil
			}
			return fmt.Sprintf("series %s would exceed the limit of %d active series for label set %s (limitsPerLabelSet)", lset, ls[i].MaxSeries, ls[i]), nil
		}
	}
	for _, i := range b.sets {
		counts[i]++
	}
	return "", nil
}
