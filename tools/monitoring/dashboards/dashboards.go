// Package dashboards builds the platform's Grafana dashboards (uplink, downlink) with the
// Grafana Foundation SDK. The chart ships the JSON they render to
// (charts/iov-platform/files/dashboards); `go test ./dashboards -update` rewrites it, and the
// golden test fails when the committed JSON differs from a fresh render.
package dashboards

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Files maps each dashboard's file name in the chart to its builder.
var Files = map[string]func() *dashboard.DashboardBuilder{
	"iov-uplink.json":   Uplink,
	"iov-downlink.json": Downlink,
}

// Render returns the indented JSON of every dashboard, by file name.
func Render() (map[string][]byte, error) {
	out := make(map[string][]byte, len(Files))
	for name, build := range Files {
		d, err := build().Build()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", name, err)
		}
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", name, err)
		}
		out[name] = append(b, '\n')
	}
	return out, nil
}

// ds is the dashboard's Prometheus data source variable, chosen when the dashboard is opened.
var ds = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// query is one PromQL target and its legend.
type query struct{ expr, legend string }

// panel is a time series panel over the given queries.
func panel(title, unit, description string, width uint32, qs ...query) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(ds).
		Unit(unit).
		Min(0).
		Height(8).
		Span(width).
		Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	for i, q := range qs {
		p.WithTarget(prometheus.NewDataqueryBuilder().Datasource(ds).RefId(string(rune('A' + i))).Expr(q.expr).LegendFormat(q.legend))
	}
	return p
}

func base(title, uid, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"iov-platform"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus"))
}

// exhookService matches EMQX's ExHook gRPC service, v2 (EMQX 5) and v3 (EMQX 6).
const exhookService = `grpc_service=~"emqx\\.exhook\\.v[23]\\.HookProvider"`

// Uplink is the vehicle -> EMQX -> exhook-producer -> Kafka -> consumer dashboard.
func Uplink() *dashboard.DashboardBuilder {
	return base("IoV uplink", "iov-uplink", "Vehicle messages from EMQX's ExHook calls to Kafka and the consumers. Alerts: charts/MONITORING.md.").
		WithRow(dashboard.NewRowBuilder("ExHook calls")).
		WithPanel(panel("Hook rate by route and outcome", "reqps",
			"message.publish calls by route and outcome (queued/produced/lost for async, spooled, dead_lettered, failed, unrouted, oversize).", 12,
			query{`sum by (route, outcome) (rate(exhook_messages_total[$__rate_interval]))`, "{{route}} {{outcome}}"})).
		WithPanel(panel("Hook latency by mode", "s",
			"Time from EMQX's request to our reply, message.publish, by delivery mode. EMQX gives up at its request_timeout.", 12,
			query{`histogram_quantile(0.5, sum by (mode, le) (rate(exhook_hook_duration_seconds_bucket{hook="message.publish"}[$__rate_interval])))`, "p50 {{mode}}"},
			query{`histogram_quantile(0.99, sum by (mode, le) (rate(exhook_hook_duration_seconds_bucket{hook="message.publish"}[$__rate_interval])))`, "p99 {{mode}}"})).
		WithPanel(panel("ExHook gRPC errors by code", "reqps",
			"HookProvider calls that returned an error to EMQX, by method and gRPC code (alert IoVExhookHookErrors): message.publish from the producer's exhook_publish_calls_total, the other methods from grpcprom's grpc_server_handled_total.", 12,
			query{`sum by (grpc_code) (rate(exhook_publish_calls_total{grpc_code!="OK"}[$__rate_interval]))`, "OnMessagePublish {{grpc_code}}"},
			query{`sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{` + exhookService + `,grpc_code!="OK"}[$__rate_interval]))`, "{{grpc_method}} {{grpc_code}}"})).
		WithPanel(panel("EMQX messages and ExHook calls", "reqps",
			"EMQX's own counters (its /api/v5/prometheus/stats) beside the message.publish calls the producers get. EMQX 5.8 and 6.0 do not export their ExHook server metrics to Prometheus (only their REST API /api/v5/exhooks/{name}/metrics has them): a gap between the two lines is the ExHook server not loaded or calls not reaching us (alert IoVEmqxExhookNotLoaded; per node: the panel below).", 12,
			query{`sum(rate(emqx_messages_received[$__rate_interval]))`, "EMQX received"},
			query{`sum(rate(emqx_messages_dropped[$__rate_interval]))`, "EMQX dropped"},
			query{`sum(rate(emqx_messages_dropped_no_subscribers[$__rate_interval]))`, "EMQX dropped, no subscribers"},
			query{`sum(rate(exhook_publish_calls_total[$__rate_interval]))`, "ExHook message.publish calls"})).
		WithPanel(panel("ExHook calls past grpc.maxRunningCalls", "reqps",
			"Calls a producer's connection read while it already ran grpc.maxRunningCalls, because none of the running calls had its request yet: EMQX sends more calls at once than the bound, which then does not cap the producer's memory in bursts (alert IoVExHookCallsPastLimit). 0 while the bound holds.", 12,
			query{`sum by (pod, instance) (rate(exhook_grpc_calls_past_limit_total[$__rate_interval]))`, "{{pod}}{{instance}}"})).
		WithPanel(panel("ExHook server loaded per EMQX node", "short",
			"From the ExHook status exporter (exhook-reload -serve, exhookOps.statusExporter), which reads EMQX's REST API at every scrape: 1 while the node has the ExHook server connected, 0 while it does not (a node that started while the producer was unreachable stays at 0 until its next auto_reconnect; alert IoVExHookNotLoaded after 1m); whether message.publish is registered for the producer's hooks.scope; whether EMQX's API answers.", 12,
			query{`min by (node) (exhook_emqx_server_loaded)`, "{{node}}"},
			query{`min(exhook_emqx_server_scope_matches)`, "scope matches hooks.scope"},
			query{`max(exhook_emqx_api_up)`, "EMQX API answers"})).
		WithRow(dashboard.NewRowBuilder("Kafka")).
		WithPanel(panel("Kafka delivery results", "reqps",
			"Kafka delivery reports by topic and result; failed records of async routes are lost (alert IoVKafkaDeliveryFailures).", 12,
			query{`sum by (topic, result) (rate(exhook_kafka_deliveries_total[$__rate_interval]))`, "{{topic}} {{result}}"})).
		WithPanel(panel("Kafka producer state and readiness", "short",
			"Producers in each Kafka client state (delivering, unreachable, recovering, failed) and ready producer pods.", 12,
			query{`sum by (producer, state) (exhook_kafka_producer_state)`, "{{producer}} {{state}}"},
			query{`sum(exhook_ready)`, "ready pods"})).
		WithPanel(panel("Kafka producer backlog", "short",
			"Records each producer holds unacknowledged by Kafka (async: already answered to EMQX) and its bound, queue.buffering.max.messages; at the bound hook calls fail at EMQX's deadline (alert IoVKafkaProducerBacklogNearBound at 80% for the main producer).", 24,
			query{`exhook_kafka_producer_queued_records`, "{{pod}}{{instance}} {{producer}} queued"},
			query{`exhook_kafka_producer_queue_limit_records`, "{{pod}}{{instance}} {{producer}} bound"})).
		WithRow(dashboard.NewRowBuilder("Spool")).
		WithPanel(panel("Spool bytes", "bytes",
			"Bytes in each producer's spool (unacknowledged by Kafka) and its limit spool.maxBytes.", 12,
			query{`exhook_spool_bytes`, "{{pod}}{{instance}} used"},
			query{`exhook_spool_max_bytes`, "{{pod}}{{instance}} limit"})).
		WithPanel(panel("Spool fill", "percentunit",
			"Spool bytes over spool.maxBytes; at 100% the hook rejects or blocks (alert IoVSpoolAbove80Percent at 80%).", 12,
			query{`exhook_spool_bytes / (exhook_spool_max_bytes > 0)`, "{{pod}}{{instance}}"})).
		WithRow(dashboard.NewRowBuilder("Consumers")).
		WithPanel(panel("Consumer lag", "short",
			"Records behind the end of each topic, by consumer group (Strimzi Kafka Exporter, kafka.kafkaExporter.enabled).", 12,
			query{`sum by (consumergroup, topic) (kafka_consumergroup_lag)`, "{{consumergroup}} {{topic}}"})).
		WithPanel(panel("Dead letters", "reqps",
			"Messages the producer wrote to the dead-letter topic, by route, and records the sample consumer dead-lettered, by topic.", 12,
			query{`sum by (route) (rate(exhook_messages_total{outcome="dead_lettered"}[$__rate_interval]))`, "producer {{route}}"},
			query{`sum by (topic) (rate(consumer_records_total{result="dead_lettered"}[$__rate_interval]))`, "consumer {{topic}}"})).
		WithPanel(panel("Consumer records by result", "reqps",
			"Records the sample consumer finished, by topic and result (handled, dead_lettered, failed).", 24,
			query{`sum by (topic, result) (rate(consumer_records_total[$__rate_interval]))`, "{{topic}} {{result}}"}))
}

// Downlink is the command downlink dashboard: Kafka commands -> MQTT 5 -> vehicle, and the
// status events the downlink and the producer write.
func Downlink() *dashboard.DashboardBuilder {
	return base("IoV downlink", "iov-downlink", "Commands from Kafka to vehicles over MQTT 5, and their status events. Alerts: charts/MONITORING.md.").
		WithRow(dashboard.NewRowBuilder("Commands")).
		WithPanel(panel("Commands by outcome", "reqps",
			"Command records the downlink finished: sent, expired, failed, dead_lettered.", 12,
			query{`sum by (outcome) (rate(downlink_commands_total[$__rate_interval]))`, "{{outcome}}"})).
		WithPanel(panel("Status counts", "reqps",
			"CommandStatus events by status: SENT, EXPIRED, FAILED from the downlink; DELIVERED, ACKED, RESPONDED (and FAILED/EXPIRED on message.dropped) from the exhook producer.", 12,
			query{`sum by (status) (rate(downlink_status_events_total{result="ok"}[$__rate_interval]))`, "downlink {{status}}"},
			query{`sum by (status) (rate(exhook_command_events_total[$__rate_interval]))`, "broker {{status}}"})).
		WithRow(dashboard.NewRowBuilder("MQTT")).
		WithPanel(panel("Publish latency", "s",
			"Time from MQTT PUBLISH to EMQX's PUBACK, by result.", 12,
			query{`histogram_quantile(0.99, sum by (result, le) (rate(downlink_publish_duration_seconds_bucket[$__rate_interval])))`, "p99 {{result}}"},
			query{`histogram_quantile(0.5, sum by (result, le) (rate(downlink_publish_duration_seconds_bucket[$__rate_interval])))`, "p50 {{result}}"})).
		WithPanel(panel("Connection, readiness and retries", "short",
			"Downlink instances connected to EMQX and ready, and publish retries per second.", 12,
			query{`sum(downlink_mqtt_connected)`, "connected"},
			query{`sum(downlink_ready)`, "ready"},
			query{`sum(rate(downlink_publish_retries_total[$__rate_interval]))`, "retries/s"}))
}
