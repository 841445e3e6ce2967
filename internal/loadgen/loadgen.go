package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/snappy"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"golang.org/x/time/rate"
)

// Config describes a load.
type Config struct {
	URL               string
	Series            int           // active series.
	Senders           int           // concurrent senders; each owns Series/Senders series.
	SamplesPerRequest int           // series (one sample each) per request.
	Rounds            int           // scrapes of every series to send.
	Interval          time.Duration // simulated scrape interval between rounds.
	// Start is the timestamp of the first round; rounds advance by Interval.
	Start time.Time
	// Progress, if set, is called about once a second.
	Progress func(sent int64, elapsed time.Duration)
	// Tenant, if set, is sent as X-Scope-OrgID (to write to Cortex
	// directly).
	Tenant string
	// Protocol is the remote write version, 1 (default) or 2.
	Protocol int
	// OTLP sends OTLP/HTTP metrics exports (protobuf, gzip) instead of
	// remote write: each series is a gauge data point of the metric named
	// by its __name__, its other labels as attributes.
	OTLP bool
	// OTLPResources puts each pod's points under a resource of its own,
	// as an SDK in each pod (or a Collector with k8sattributes) exports
	// them: service.name (the pod's service), service.instance.id (the
	// instance label), k8s.namespace.name and k8s.pod.name, which the
	// points' attributes then leave out. Each export holds whole pods
	// (SamplesPerRequest rounded down to them, at least one).
	OTLPResources bool
	// Rate, if positive, paces all senders together to this many samples
	// per second, for latency measurements below saturation; 0 sends as
	// fast as the receiver answers.
	Rate float64
	// SigV4, if set, signs every request.
	SigV4 *SigV4
}

// Result is what a run measured.
type Result struct {
	Samples                int64
	Requests               int64
	Errors                 int64
	Elapsed                time.Duration
	LatencyP50, LatencyP99 time.Duration
}

// SamplesPerSecond is the sustained ingestion rate.
func (r Result) SamplesPerSecond() float64 { return float64(r.Samples) / r.Elapsed.Seconds() }

// envoyMetrics are the metric families the generated series belong to,
// modelled on an Envoy sidecar's /stats/prometheus.
var envoyMetrics = []string{
	"envoy_cluster_upstream_rq_total", "envoy_cluster_upstream_rq_xx", "envoy_cluster_upstream_cx_active",
	"envoy_cluster_upstream_cx_total", "envoy_cluster_upstream_rq_time_bucket", "envoy_cluster_upstream_cx_connect_fail",
	"envoy_cluster_upstream_rq_retry", "envoy_cluster_upstream_rq_timeout", "envoy_cluster_upstream_rq_pending_active",
	"envoy_cluster_upstream_cx_rx_bytes_total", "envoy_cluster_upstream_cx_tx_bytes_total", "envoy_cluster_membership_healthy",
	"envoy_http_downstream_rq_total", "envoy_http_downstream_rq_xx", "envoy_http_downstream_rq_time_bucket",
	"envoy_http_downstream_cx_active", "envoy_server_live", "envoy_server_uptime",
}

var envoyLE = []string{"0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"}

// seriesLabels returns the i-th series' labels, sorted by name.
func seriesLabels(i int) [][2]string {
	m := envoyMetrics[i%len(envoyMetrics)]
	pod := i / (len(envoyMetrics) * len(envoyLE))
	ls := [][2]string{
		{"__name__", m},
		{"envoy_cluster_name", "cluster-" + strconv.Itoa(pod%50)},
		{"instance", "10.1." + strconv.Itoa(pod/250%250) + "." + strconv.Itoa(pod%250) + ":15090"},
		{"job", "envoy-sidecars"},
		dimension(m, i/len(envoyMetrics)),
		{"namespace", "mesh-" + strconv.Itoa(pod%7)},
		{"pod", "svc-" + strconv.Itoa(pod%400) + "-" + strconv.Itoa(pod)},
	}
	sort.Slice(ls, func(a, b int) bool { return ls[a][0] < ls[b][0] })
	return ls
}

// dimension is the label that multiplies a family's series: the bucket
// bound of histograms, the response code of the rest.
func dimension(metric string, j int) [2]string {
	if strings.HasSuffix(metric, "_bucket") {
		return [2]string{"le", envoyLE[j%len(envoyLE)]}
	}
	return [2]string{"envoy_response_code", strconv.Itoa(200 + j%len(envoyLE)*13)}
}

func appendVarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendString(b []byte, field byte, s string) []byte {
	b = append(b, field<<3|2)
	b = appendVarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeLabels pre-encodes a series' Label messages (field 1 of TimeSeries).
func encodeLabels(ls [][2]string) []byte {
	var out []byte
	for _, l := range ls {
		var msg []byte
		msg = appendString(msg, 1, l[0])
		msg = appendString(msg, 2, l[1])
		out = append(out, 1<<3|2)
		out = appendVarint(out, uint64(len(msg)))
		out = append(out, msg...)
	}
	return out
}

// value is a deterministic, counter-like value for series i at round r:
// integers that grow, as Envoy's counters and buckets do. A histogram's
// buckets are cumulative, as Envoy's are: a bucket counts at least what
// the buckets below it count.
func value(i, r int) float64 {
	m := i % len(envoyMetrics)
	if m == 2 || m == 15 { // gauges.
		return float64((i*7 + r*3) % 40)
	}
	if strings.HasSuffix(envoyMetrics[m], "_bucket") {
		j := i / len(envoyMetrics) // The dimension: le is envoyLE[j%len(envoyLE)].
		pod := j / len(envoyLE)
		return float64(r * (j%len(envoyLE) + 1) * (pod%5 + 1))
	}
	return float64(r * (i%13 + 1))
}

// Run sends the load and returns what it measured. It stops early when ctx
// is done.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Series <= 0 || cfg.Senders <= 0 || cfg.SamplesPerRequest <= 0 || cfg.Rounds <= 0 {
		return Result{}, errors.New("series, senders, samples per request and rounds must be positive")
	}
	if cfg.Interval == 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.Protocol == 0 {
		cfg.Protocol = 1
	}
	if cfg.Protocol != 1 && cfg.Protocol != 2 {
		return Result{}, fmt.Errorf("remote write protocol %d: use 1 or 2", cfg.Protocol)
	}
	labels := make([][]byte, cfg.Series)
	for i := range labels {
		labels[i] = encodeLabels(seriesLabels(i))
	}
	var (
		sent, reqs, errs atomic.Int64
		latMu            sync.Mutex
		lats             []time.Duration
		wg               sync.WaitGroup
		firstErr         error
		errOnce          sync.Once
	)
	var transport http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: cfg.Senders * 2}
	if cfg.SigV4 != nil {
		transport = newSigner(transport, *cfg.SigV4)
	}
	client := &http.Client{Transport: transport, Timeout: 2 * time.Minute}
	pace := rate.NewLimiter(rate.Inf, 0)
	if cfg.Rate > 0 {
		pace = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.SamplesPerRequest)
	}
	start := time.Now()
	done := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					cfg.Progress(sent.Load(), time.Since(start))
				}
			}
		}()
	}
	per := (cfg.Series + cfg.Senders - 1) / cfg.Senders
	if cfg.OTLP && cfg.OTLPResources {
		// A pod's points go out in one export by one sender, as an SDK
		// sends them: a pod split across exports would make two
		// target_info samples at one time, and across senders, out of
		// order ones.
		pod := len(envoyMetrics) * len(envoyLE)
		per = (per + pod - 1) / pod * pod
		cfg.SamplesPerRequest = max(cfg.SamplesPerRequest/pod, 1) * pod
	}
	for s := range cfg.Senders {
		lo, hi := s*per, min((s+1)*per, cfg.Series)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var raw, comp []byte
			var myLats []time.Duration
			defer func() {
				latMu.Lock()
				lats = append(lats, myLats...)
				latMu.Unlock()
			}()
			for r := 0; r < cfg.Rounds; r++ {
				ts := cfg.Start.Add(time.Duration(r) * cfg.Interval).UnixMilli()
				for b := lo; b < hi; b += cfg.SamplesPerRequest {
					if ctx.Err() != nil {
						return
					}
					raw = raw[:0]
					if cfg.OTLP {
						var err error
						if comp, err = appendOTLP(comp[:0], b, min(b+cfg.SamplesPerRequest, hi), r, ts, cfg.OTLPResources); err != nil {
							errOnce.Do(func() { firstErr = err })
							return
						}
					} else if cfg.Protocol == 2 {
						raw = appendRequestV2(raw, b, min(b+cfg.SamplesPerRequest, hi), r, ts)
					}
					for i := b; cfg.Protocol == 1 && i < min(b+cfg.SamplesPerRequest, hi); i++ {
						var sample [32]byte
						sm := sample[:0]
						sm = append(sm, 1<<3|1)
						sm = binary.LittleEndian.AppendUint64(sm, math.Float64bits(value(i, r)))
						sm = append(sm, 2<<3|0)
						sm = appendVarint(sm, uint64(ts))
						tsLen := len(labels[i]) + 1 + len(appendVarint(nil, uint64(len(sm)))) + len(sm)
						raw = append(raw, 1<<3|2)
						raw = appendVarint(raw, uint64(tsLen))
						raw = append(raw, labels[i]...)
						raw = append(raw, 2<<3|2)
						raw = appendVarint(raw, uint64(len(sm)))
						raw = append(raw, sm...)
					}
					if !cfg.OTLP {
						comp = snappy.Encode(comp[:cap(comp)], raw)
					}
					if err := pace.WaitN(ctx, min(b+cfg.SamplesPerRequest, hi)-b); err != nil {
						return
					}
					t0 := time.Now()
					err := post(ctx, client, cfg.URL, cfg.Tenant, cfg.Protocol, cfg.OTLP, comp)
					myLats = append(myLats, time.Since(t0))
					reqs.Add(1)
					if err != nil {
						errs.Add(1)
						errOnce.Do(func() { firstErr = err })
						if ctx.Err() != nil {
							return
						}
						continue
					}
					sent.Add(int64(min(b+cfg.SamplesPerRequest, hi) - b))
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	res := Result{Samples: sent.Load(), Requests: reqs.Load(), Errors: errs.Load(), Elapsed: time.Since(start)}
	if len(lats) > 0 {
		slices.Sort(lats)
		res.LatencyP50 = lats[len(lats)/2]
		res.LatencyP99 = lats[len(lats)*99/100]
	}
	if res.Errors > 0 {
		return res, fmt.Errorf("%d of %d requests failed; first: %w", res.Errors, res.Requests, firstErr)
	}
	return res, nil
}

// appendRequestV2 appends a remote write 2.0 request of series lo..hi-1
// at round r, timestamp ts.
func appendRequestV2(b []byte, lo, hi, r int, ts int64) []byte {
	st := writev2.NewSymbolTable()
	req := &writev2.Request{Timeseries: make([]writev2.TimeSeries, 0, hi-lo)}
	var refs []uint32
	for i := lo; i < hi; i++ {
		start := len(refs)
		for _, l := range seriesLabels(i) {
			refs = append(refs, st.Symbolize(l[0]), st.Symbolize(l[1]))
		}
		req.Timeseries = append(req.Timeseries, writev2.TimeSeries{
			LabelsRefs: refs[start:len(refs):len(refs)],
			Samples:    []writev2.Sample{{Value: value(i, r), Timestamp: ts}},
		})
	}
	req.Symbols = st.Symbols()
	n := req.Size()
	b = slices.Grow(b, n)
	m, _ := req.MarshalToSizedBuffer(b[len(b) : len(b)+n])
	return b[:len(b)+m]
}

// appendOTLP appends a gzip-compressed OTLP ExportMetricsServiceRequest
// of series lo..hi-1 at round r, timestamp ts (in milliseconds): under one
// resource without attributes, or with resources, one per pod.
func appendOTLP(b []byte, lo, hi, r int, ts int64, resources bool) ([]byte, error) {
	md := pmetric.NewMetrics()
	type scope struct {
		ms     pmetric.MetricSlice
		byName map[string]pmetric.NumberDataPointSlice
	}
	byPod := map[string]*scope{}
	for i := lo; i < hi; i++ {
		ls := seriesLabels(i)
		var name, pod string
		for _, l := range ls {
			switch l[0] {
			case "__name__":
				name = l[1]
			case "pod":
				pod = l[1]
			}
		}
		if !resources {
			pod = ""
		}
		sc, ok := byPod[pod]
		if !ok {
			rm := md.ResourceMetrics().AppendEmpty()
			if resources {
				attrs := rm.Resource().Attributes()
				attrs.PutStr("service.name", pod[:strings.LastIndexByte(pod, '-')])
				attrs.PutStr("k8s.pod.name", pod)
				for _, l := range ls {
					switch l[0] {
					case "instance":
						attrs.PutStr("service.instance.id", l[1])
					case "namespace":
						attrs.PutStr("k8s.namespace.name", l[1])
					}
				}
			}
			sc = &scope{ms: rm.ScopeMetrics().AppendEmpty().Metrics(), byName: map[string]pmetric.NumberDataPointSlice{}}
			byPod[pod] = sc
		}
		dps, ok := sc.byName[name]
		if !ok {
			m := sc.ms.AppendEmpty()
			m.SetName(name)
			dps = m.SetEmptyGauge().DataPoints()
			sc.byName[name] = dps
		}
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.Timestamp(ts * int64(time.Millisecond)))
		dp.SetDoubleValue(value(i, r))
		for _, l := range ls {
			switch {
			case l[0] == "__name__":
			case resources && (l[0] == "instance" || l[0] == "namespace" || l[0] == "pod" || l[0] == "job"):
			default:
				dp.Attributes().PutStr(l[0], l[1])
			}
		}
	}
	raw, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		return b, err
	}
	buf := bytes.NewBuffer(b)
	zw := gzip.NewWriter(buf)
	if _, err := zw.Write(raw); err != nil {
		return b, err
	}
	if err := zw.Close(); err != nil {
		return b, err
	}
	return buf.Bytes(), nil
}

func post(ctx context.Context, c *http.Client, url, tenant string, protocol int, otlp bool, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Encoding", "snappy")
	if otlp {
		req.Header.Set("Content-Encoding", "gzip")
		req.Header.Set("Content-Type", "application/x-protobuf")
	} else if protocol == 2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
