#!/usr/bin/env python3
"""Check deploy/grafana/kafka-bridge.json for scripts/check-deploy.

- it is what deploy/grafana/generate.py produces (no hand edits that the generator would lose);
- panel ids are unique, every panel uses the `$datasource` variable;
- every query is valid PromQL: Grafana's variables are substituted and the queries are run
  through `promtool check rules` as recording rules;
- every metric it reads is one the bridge exports (bridge/src/telemetry/metrics.rs, plus the
  names listed in METRICS_EXPECTED below) or one of Dapr's `dapr_component_pubsub_*`.
"""

import json
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy/grafana/kafka-bridge.json"
RULES = ROOT / "deploy/prometheus/kafka-bridge.rules.yaml"
# Gauges and histograms the alert rules and the dashboard rely on; some are added by the
# fault-tolerance work. Listed here so a rename on either side is noticed.
METRICS_EXPECTED = {
    "kafka_bridge_consumer_lag_messages",
    "kafka_bridge_committed_offset",
    "kafka_bridge_in_flight_messages",
    "kafka_bridge_held_messages",
    "kafka_bridge_paused_partitions",
    "kafka_bridge_commit_duration_seconds",
    "kafka_bridge_broker_connected",
    "kafka_bridge_init_failures_total",
    "kafka_bridge_blocked_partitions",
}
DAPR = {
    "dapr_component_pubsub_egress_count",
    "dapr_component_pubsub_ingress_count",
    "dapr_component_pubsub_egress_latencies",
    "dapr_component_pubsub_ingress_latencies",
}


def bridge_metrics():
    source = (ROOT / "bridge/src/telemetry/metrics.rs").read_text()
    return set(re.findall(r'"(kafka_bridge_[a-z_]+)"', source)) | METRICS_EXPECTED


def metric_names(expr):
    names = set(re.findall(r"\b((?:kafka_bridge|dapr_component)_[a-z_]+)\b", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if not n.endswith("_total") and n not in DAPR else n for n in names}


def main():
    problems = []
    current = json.loads(DASHBOARD.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        fresh = pathlib.Path(tmp) / "dashboard.json"
        generated = subprocess.run(
            [sys.executable, str(ROOT / "deploy/grafana/generate.py"), str(fresh)], capture_output=True, text=True
        )
        if generated.returncode != 0:
            problems.append(f"generate.py failed: {generated.stderr}")
        elif json.loads(fresh.read_text()) != current:
            problems.append("kafka-bridge.json is not generate.py's output: run deploy/grafana/generate.py")

    known = bridge_metrics() | DAPR
    ids = [p["id"] for p in current["panels"]]
    if len(ids) != len(set(ids)):
        problems.append("panel ids are not unique")
    exprs = []
    for panel in current["panels"]:
        if panel["type"] == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"panel {panel['title']!r} does not use the $datasource variable")
        for target in panel.get("targets", []):
            exprs.append((panel["title"], target["expr"]))
    for title, expr in exprs:
        for name in metric_names(expr):
            if name not in known:
                problems.append(f"panel {title!r} reads {name}, which nothing exports")
    # Rule expressions must use the same metric names.
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for name in metric_names(rule["expr"]):
                if name not in known:
                    problems.append(f"rule {rule.get('alert') or rule.get('record')} reads {name}, which nothing exports")

    substituted = [
        re.sub(r"\$__rate_interval", "5m", re.sub(r"\$(namespace|component|topic)\b", ".*", e)) for _, e in exprs
    ]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(substituted)
    ]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(rules, f)  # JSON is YAML
    checked = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True, text=True)
    pathlib.Path(f.name).unlink()
    if checked.returncode != 0:
        problems.append(f"promtool rejects a dashboard query:\n{checked.stdout}{checked.stderr}")

    for p in problems:
        print(f"grafana: {p}")
    if not problems:
        print(f"grafana: {len(exprs)} queries valid, {len(current['panels'])} panels")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
