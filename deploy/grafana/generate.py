#!/usr/bin/env python3
"""Generates kafka-bridge.json, the Grafana dashboard for kafka-pubsub-bridge.

Edit this file, run it (`deploy/grafana/generate.py`), commit both. scripts/check-deploy checks
that the JSON is what this script produces and that every query is valid PromQL (promtool).

Rows: overview (throughput, p99, lag, dead letters, rebalances), publish, subscribe, Kafka
health, and Dapr's own `dapr_component_pubsub_*` metrics (as daprd sees the component).
"""

import json
import pathlib
import sys

SEL = 'namespace=~"$namespace", component=~"$component"'
SEL_T = SEL + ', topic=~"$topic"'
# Series every bridge has, publishing or subscribing: for the variables' values.
ANY = '__name__=~"kafka_bridge_(published_records|delivered_messages)_total"'
DAPR_SEL = 'namespace=~"$namespace", component=~"$component"'

panels = []
y = 0


def row(title):
    global y
    panels.append({"type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
    y += 1


def ts(title, targets, unit="short", w=8, h=8, description="", stack=False):
    """A time series panel; targets are (expr, legend)."""
    x = sum(p["gridPos"]["w"] for p in panels if p["gridPos"]["y"] == y and p["type"] != "row")
    panel = {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"stacking": {"mode": "normal" if stack else "none"}, "fillOpacity": 10},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "range": True}
            for i, (expr, legend) in enumerate(targets)
        ],
    }
    panels.append(panel)
    return panel


def next_line(h=8):
    global y
    y += h


def stat(title, expr, unit="short", w=4, thresholds=None, description=""):
    x = sum(p["gridPos"]["w"] for p in panels if p["gridPos"]["y"] == y and p["type"] != "row")
    steps = thresholds or [{"color": "green", "value": None}]
    panels.append({
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 4, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background", "graphMode": "area"},
        "targets": [{"refId": "A", "expr": expr, "instant": False, "range": True}],
    })


RED_ABOVE_ZERO = [{"color": "green", "value": None}, {"color": "red", "value": 1}]

row("Overview")
stat("Published / s", f'sum(rate(kafka_bridge_published_records_total{{{SEL_T}, outcome="ok"}}[$__rate_interval]))', "ops")
stat("Acked / s", f'sum(rate(kafka_bridge_acks_total{{{SEL_T}, outcome="acked"}}[$__rate_interval]))', "ops")
stat("Publish p99", f'histogram_quantile(0.99, sum by (le) (rate(kafka_bridge_publish_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))', "s")
stat("Consumer lag", f'sum(kafka_bridge_consumer_lag_messages{{{SEL_T}}})', "short",
     thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1000}, {"color": "red", "value": 100000}])
stat("Dead-lettered (1h)", f'sum(increase(kafka_bridge_dead_lettered_total{{{SEL_T}, outcome="ok"}}[1h]))', "short", thresholds=RED_ABOVE_ZERO)
stat("Partitions revoked (1h)", f'sum(increase(kafka_bridge_rebalance_partitions_total{{{SEL_T}, kind="revoke"}}[1h]))', "short")
next_line(4)

row("Publish")
ts("Records published / s", [
    (f'sum by (component, topic, outcome) (rate(kafka_bridge_published_records_total{{{SEL_T}}}[$__rate_interval]))', "{{component}} {{topic}} {{outcome}}"),
], "ops")
ts("Publish latency (call to last delivery report)", [
    (f'histogram_quantile(0.5, sum by (le, component) (rate(kafka_bridge_publish_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))', "p50 {{component}}"),
    (f'histogram_quantile(0.99, sum by (le, component) (rate(kafka_bridge_publish_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))', "p99 {{component}}"),
    (f'histogram_quantile(0.999, sum by (le, component) (rate(kafka_bridge_publish_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))', "p99.9 {{component}}"),
], "s")
ts("Publish error ratio", [
    (f'sum by (component, topic) (rate(kafka_bridge_published_records_total{{{SEL_T}, outcome="failed"}}[$__rate_interval])) / sum by (component, topic) (rate(kafka_bridge_published_records_total{{{SEL_T}}}[$__rate_interval]))', "{{component}} {{topic}}"),
], "percentunit", description="Alert KafkaBridgePublishErrors fires above 1% for 5 minutes.")
next_line()

row("Subscribe")
ts("Consumer lag per partition (high watermark - committed)", [
    (f'sum by (component, topic, partition) (kafka_bridge_consumer_lag_messages{{{SEL_T}}})', "{{component}} {{topic}}/{{partition}}"),
], "short", w=12)
ts("Lag in seconds (lag / ack rate)", [
    (f'sum by (component, topic) (kafka_bridge_consumer_lag_messages{{{SEL_T}}}) / clamp_min(sum by (component, topic) (rate(kafka_bridge_acks_total{{{SEL_T}, outcome="acked"}}[$__rate_interval])), 0.001)', "{{component}} {{topic}}"),
], "s", w=12, description="Alert KafkaBridgeConsumerLagAboveSLO fires above 300 s.")
next_line()
ts("Delivered and acked / s", [
    (f'sum by (component, topic) (rate(kafka_bridge_delivered_messages_total{{{SEL_T}}}[$__rate_interval]))', "delivered {{component}} {{topic}}"),
    (f'sum by (component, topic, outcome) (rate(kafka_bridge_acks_total{{{SEL_T}}}[$__rate_interval]))', "{{outcome}} {{component}} {{topic}}"),
], "ops")
ts("In flight and held", [
    (f'sum by (component, topic) (kafka_bridge_in_flight_messages{{{SEL_T}}})', "in flight {{component}} {{topic}}"),
    (f'sum by (component, topic) (kafka_bridge_held_messages{{{SEL_T}}})', "held {{component}} {{topic}}"),
], "short", description="In flight: delivered to daprd, not acked. Held: fetched from Kafka, waiting for room.")
ts("Paused partitions", [
    (f'sum by (component, topic) (kafka_bridge_paused_partitions{{{SEL_T}}})', "flow control {{component}} {{topic}}"),
    (f'sum by (component, topic, reason) (kafka_bridge_blocked_partitions{{{SEL_T}}})', "blocked ({{reason}}) {{component}} {{topic}}"),
], "short")
next_line()
ts("Retries and dead letters / s", [
    (f'sum by (component, topic, kind) (rate(kafka_bridge_redeliveries_total{{{SEL_T}}}[$__rate_interval]))', "redelivery {{kind}} {{component}} {{topic}}"),
    (f'sum by (component, topic, outcome) (rate(kafka_bridge_dead_lettered_total{{{SEL_T}}}[$__rate_interval]))', "dead-lettered {{outcome}} {{component}} {{topic}}"),
], "ops", description="kind=exhausted: a poison message without a dead-letter topic, redelivered forever.")
ts("Rebalances (partitions / min)", [
    (f'sum by (component, topic, kind) (rate(kafka_bridge_rebalance_partitions_total{{{SEL_T}}}[$__rate_interval])) * 60', "{{kind}} {{component}} {{topic}}"),
], "short")
ts("Commits", [
    (f'histogram_quantile(0.99, sum by (le, component) (rate(kafka_bridge_commit_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))', "p99 {{component}}"),
    (f'histogram_quantile(0.5, sum by (le, component) (rate(kafka_bridge_commit_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))', "p50 {{component}}"),
], "s", description="Commit latency; failed commits are in Kafka health.")
next_line()

row("Kafka health")
ts("Broker connection (1 = connected)", [
    (f'min by (component, client, pod) (kafka_bridge_broker_connected{{{SEL}}})', "{{component}} {{client}} {{pod}}"),
], "short")
ts("Errors", [
    (f'sum by (component, outcome) (rate(kafka_bridge_commits_total{{{SEL_T}, outcome="failed"}}[$__rate_interval]))', "commit failed {{component}}"),
    ('sum by (client) (rate(kafka_bridge_kafka_errors_total{namespace=~"$namespace"}[$__rate_interval]))', "librdkafka {{client}}"),
], "ops")
ts("Init failures", [
    (f'sum by (component) (increase(kafka_bridge_init_failures_total{{{SEL}}}[$__rate_interval]))', "{{component}}"),
], "short")
next_line()

row("Dapr (daprd's view of the component)")
ts("Published through Dapr / s", [
    (f'sum by (app_id, component, topic, success) (rate(dapr_component_pubsub_egress_count{{{DAPR_SEL}}}[$__rate_interval]))', "{{app_id}} {{topic}} success={{success}}"),
], "ops")
ts("Delivered to the app / s", [
    (f'sum by (app_id, component, topic, process_status) (rate(dapr_component_pubsub_ingress_count{{{DAPR_SEL}}}[$__rate_interval]))', "{{app_id}} {{topic}} {{process_status}}"),
], "ops")
ts("Dapr latencies p99", [
    (f'histogram_quantile(0.99, sum by (le, app_id) (rate(dapr_component_pubsub_egress_latencies_bucket{{{DAPR_SEL}}}[$__rate_interval])))', "publish {{app_id}}"),
    (f'histogram_quantile(0.99, sum by (le, app_id) (rate(dapr_component_pubsub_ingress_latencies_bucket{{{DAPR_SEL}}}[$__rate_interval])))', "app handling {{app_id}}"),
], "ms")
next_line()

for i, p in enumerate(panels, 1):
    p["id"] = i


def var(name, query, label):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": name},
        "definition": query,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
    }


dashboard = {
    "title": "Kafka pub/sub bridge (Dapr)",
    "uid": "kafka-pubsub-bridge",
    "description": "kafka-pubsub-bridge: publish, subscribe (lag, flow control, retries, dead letters), Kafka health, and Dapr's own pub/sub metrics.",
    "tags": ["dapr", "kafka", "pubsub"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "refresh": "30s",
    "time": {"from": "now-3h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0},
        var("namespace", f"label_values({{{ANY}}}, namespace)", "Namespace"),
        var("component", f'label_values({{{ANY}, namespace=~"$namespace"}}, component)', "Component"),
        var("topic", f'label_values({{{ANY}, namespace=~"$namespace", component=~"$component"}}, topic)', "Topic"),
    ]},
    "annotations": {"list": []},
    "panels": panels,
}

out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).with_name("kafka-bridge.json")
out.write_text(json.dumps(dashboard, indent=2) + "\n")
