package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// otlpMeterProvider returns a meter provider whose exporter is the
// OpenTelemetry Go SDK's otlpmetrichttp, sending to url with a bearer
// token, gzip-compressed. payload.size is an exponential histogram.
func otlpMeterProvider(t *testing.T, url, token string) *sdkmetric.MeterProvider {
	t.Helper()
	exp, err := otlpmetrichttp.New(context.Background(), otlpmetrichttp.WithEndpointURL(url),
		otlpmetrichttp.WithHeaders(map[string]string{"Authorization": "Bearer " + token}),
		otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}))
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)),
		sdkmetric.WithResource(resource.NewSchemaless(attribute.String("service.name", "cart"),
			attribute.String("service.instance.id", "cart-0"), attribute.String("deployment.environment.name", "e2e"))),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "payload.size"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp
}

// TestOTLPFromOpenTelemetrySDK exports a meter's instruments with the
// OpenTelemetry Go SDK's otlpmetrichttp exporter and a remote-write bearer
// token: they are queryable under Prometheus' names. An exporter with a
// query-only token is refused.
func TestOTLPFromOpenTelemetrySDK(t *testing.T) {
	t.Setenv("ORRERY_ADMIN_ACCESS_KEY_ID", adminKey)
	t.Setenv("ORRERY_ADMIN_SECRET_ACCESS_KEY", adminSecret)
	o := apptest.StartOrrery(t, t.TempDir(), "--auth=sigv4")
	admin := []string{"AWS_ACCESS_KEY_ID=" + adminKey, "AWS_SECRET_ACCESS_KEY=" + adminSecret}
	out, err := orreryCLI(t, o, admin, "workspaces", "create", "--alias", "otel")
	require.NoError(t, err, out)
	ws := strings.TrimSpace(out)
	out, err = orreryCLI(t, o, admin, "tokens", "create", "--workspace", ws, "--access", "remote-write", "--description", "otel sdk")
	require.NoError(t, err, out)
	writer := envValue(t, out, "ORRERY_TOKEN")
	out, err = orreryCLI(t, o, admin, "tokens", "create", "--workspace", ws, "--access", "query")
	require.NoError(t, err, out)
	reader := envValue(t, out, "ORRERY_TOKEN")
	url := o.URL(ws, "/api/v1/otlp/v1/metrics")
	ctx := context.Background()

	mp := otlpMeterProvider(t, url, writer)
	meter := mp.Meter("orrery.test/sdk")
	orders, err := meter.Int64Counter("orders", metric.WithUnit("{order}"), metric.WithDescription("Orders placed."))
	require.NoError(t, err)
	duration, err := meter.Float64Histogram("checkout.duration", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.1, 0.5, 1))
	require.NoError(t, err)
	size, err := meter.Int64Histogram("payload.size", metric.WithUnit("By"))
	require.NoError(t, err)
	queue, err := meter.Int64UpDownCounter("queue.length", metric.WithUnit("{item}"))
	require.NoError(t, err)
	temp, err := meter.Float64Gauge("temperature", metric.WithUnit("Cel"))
	require.NoError(t, err)

	card := metric.WithAttributes(attribute.String("payment", "card"))
	orders.Add(ctx, 3, card)
	orders.Add(ctx, 2, metric.WithAttributes(attribute.String("payment", "cash")))
	for _, d := range []float64{0.02, 0.3, 1.7} {
		duration.Record(ctx, d, card)
	}
	for _, s := range []int64{100, 2000, 30000, 400000} {
		size.Record(ctx, s)
	}
	queue.Add(ctx, 7)
	queue.Add(ctx, -2)
	temp.Record(ctx, 21.5)
	require.NoError(t, mp.ForceFlush(ctx))

	api := o.URL(ws, "/api/v1")
	for q, want := range map[string]string{
		`orders_total{job="cart",instance="cart-0",payment="card"}`: "3",
		`sum(orders_total)`: "5",
		`checkout_duration_seconds_count{payment="card"}`:                             "3",
		`checkout_duration_seconds_sum{payment="card"}`:                               "2.02",
		`checkout_duration_seconds_bucket{payment="card",le="0.5"}`:                   "2",
		`histogram_count(payload_size_bytes)`:                                         "4",
		`queue_length`:                                                                "5",
		`temperature_celsius`:                                                         "21.5",
		`target_info{job="cart",instance="cart-0",deployment_environment_name="e2e"}`: "1",
	} {
		v, err := queryVectorBearer(t, reader, api, q)
		require.NoError(t, err, q)
		require.Len(t, v, 1, q)
		require.Equal(t, want, v[0].(map[string]any)["value"].([]any)[1], q)
	}

	// A token that may only query cannot export.
	refused := otlpMeterProvider(t, url, reader)
	c, err := refused.Meter("orrery.test/sdk").Int64Counter("intruder")
	require.NoError(t, err)
	c.Add(ctx, 1)
	err = refused.ForceFlush(ctx)
	require.Error(t, err)
	require.Contains(t, err.Error(), "403")
	v, err := queryVectorBearer(t, reader, api, "intruder_total")
	require.NoError(t, err)
	require.Empty(t, v)
}
