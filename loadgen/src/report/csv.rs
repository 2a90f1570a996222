//! One CSV row per step (RFC 4180 quoting), for spreadsheets and scripts.

use crate::histogram::Percentiles;
use crate::sweep::SweepResult;

/// The header, in column order.
pub const COLUMNS: &[&str] = &[
    "step",
    "status",
    "batch_size",
    "linger_ms",
    "compression",
    "partitions",
    "message_size",
    "acks",
    "idempotence",
    "producers",
    "rate",
    "measured_s",
    "produced_msgs",
    "produced_msgs_per_s",
    "produced_mb_per_s",
    "consumed_msgs",
    "consumed_msgs_per_s",
    "consumed_mb_per_s",
    "publish_p50_us",
    "publish_p90_us",
    "publish_p95_us",
    "publish_p99_us",
    "publish_p999_us",
    "publish_p9999_us",
    "publish_max_us",
    "e2e_p50_us",
    "e2e_p90_us",
    "e2e_p95_us",
    "e2e_p99_us",
    "e2e_p999_us",
    "e2e_p9999_us",
    "e2e_max_us",
    "send_delay_p50_us",
    "send_delay_p99_us",
    "send_delay_max_us",
    "avg_batch_bytes",
    "avg_batch_messages",
    "queue_latency_us",
    "broker_rtt_us",
    "payload_zstd_ratio",
    "payload_lz4_ratio",
    "errors",
    "failure",
    "replication_factor",
    "min_insync_replicas",
    "keys",
    "offered_msgs_per_s",
    "window_s",
    "sustained",
    "failed_msgs",
    "error_rate",
    "not_sustained_because",
];

fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn percentiles(p: Option<&Percentiles>) -> Vec<String> {
    match p {
        Some(p) => [p.p50, p.p90, p.p95, p.p99, p.p999, p.p9999, p.max].iter().map(u64::to_string).collect(),
        None => vec![String::new(); 7],
    }
}

/// Renders the table.
pub fn render(result: &SweepResult) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for s in &result.steps {
        let c = &s.config;
        let m = s.measurement.as_ref();
        let mut row = vec![
            s.index.to_string(),
            s.status.clone(),
            c.batch_size.to_string(),
            c.linger_ms.to_string(),
            c.compression.to_string(),
            c.partitions.to_string(),
            c.message_size.to_string(),
            c.acks.to_string(),
            c.idempotence.to_string(),
            c.producers.to_string(),
            c.rate.to_string(),
            opt(m.map(|m| format!("{:.3}", m.measured_seconds))),
            opt(m.map(|m| m.produced.messages)),
            opt(m.map(|m| format!("{:.1}", m.produced.msgs_per_sec))),
            opt(m.map(|m| format!("{:.3}", m.produced.mb_per_sec))),
            opt(m.and_then(|m| m.consumed).map(|c| c.messages)),
            opt(m.and_then(|m| m.consumed).map(|c| format!("{:.1}", c.msgs_per_sec))),
            opt(m.and_then(|m| m.consumed).map(|c| format!("{:.3}", c.mb_per_sec))),
        ];
        row.extend(percentiles(m.map(|m| &m.publish_latency)));
        row.extend(percentiles(m.and_then(|m| m.end_to_end_latency.as_ref())));
        let d = m.and_then(|m| m.send_delay);
        row.extend([opt(d.map(|d| d.p50)), opt(d.map(|d| d.p99)), opt(d.map(|d| d.max))]);
        let st = m.map(|m| &m.librdkafka);
        row.extend([
            opt(st.and_then(|s| s.avg_batch_bytes).map(|v| format!("{v:.0}"))),
            opt(st.and_then(|s| s.avg_batch_messages).map(|v| format!("{v:.1}"))),
            opt(st.and_then(|s| s.queue_latency_us).map(|v| format!("{v:.0}"))),
            opt(st.and_then(|s| s.broker_rtt_us).map(|v| format!("{v:.0}"))),
            opt(s.payload.as_ref().map(|p| format!("{:.2}", p.zstd_ratio))),
            opt(s.payload.as_ref().map(|p| format!("{:.2}", p.lz4_ratio))),
            m.map(|m| m.errors.iter().map(|(k, n)| format!("{k}={n}")).collect::<Vec<_>>().join(";"))
                .unwrap_or_default(),
            s.failure.clone().unwrap_or_default(),
            c.replication_factor.to_string(),
            c.min_insync_replicas.to_string(),
            c.keys.to_string(),
            opt(m.and_then(|m| m.offered_msgs_per_sec).map(|v| format!("{v:.0}"))),
            opt(m.map(|m| format!("{:.3}", m.window_seconds))),
            opt(m.and_then(|m| m.verdict.as_ref()).map(|v| v.sustained)),
            opt(m.map(|m| m.failed)),
            opt(m.map(|m| format!("{:.6}", m.error_rate))),
            m.and_then(|m| m.verdict.as_ref()).map(|v| v.reasons.join("; ")).unwrap_or_default(),
        ]);
        out.push_str(&row.iter().map(|f| quote(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_step_with_every_column() {
        let result = crate::report::tests::sample(false);
        let text = render(&result);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + result.steps.len());
        assert_eq!(lines[0].split(',').count(), COLUMNS.len());
        let row: Vec<&str> = lines[1].split(',').collect();
        assert_eq!(row.len(), COLUMNS.len(), "{}", lines[1]);
        let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(row[col("linger_ms")], "0");
        assert_eq!(row[col("compression")], "none");
        assert_eq!(row[col("publish_p99_us")], "400");
        assert_eq!(row[col("status")], "ok");
        let failed: Vec<&str> = lines[6].split(',').collect();
        assert_eq!(failed[col("status")], "failed");
        assert!(failed[col("failure")].contains("AllBrokersDown"));
        assert_eq!(quote("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
