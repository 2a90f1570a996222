//! The sweep's files: JSON (everything), CSV (one row per step), Markdown (summary), HTML
//! (self-contained, charts as inline SVG drawn here, no scripts from anywhere), and the
//! `compare` view of two results.

pub mod capacity;
pub mod compare;
pub mod csv;
pub mod html;
pub mod markdown;
pub mod paths;
mod svg;

use std::path::Path;

use crate::error::{Error, Result};
use crate::sweep::{FORMAT, Outputs, SweepResult};

/// Writes `results.json`, `results.csv`, `summary.md` and `report.html` into `dir`.
pub fn write_all(result: &SweepResult, dir: &Path) -> Result<Outputs> {
    let outputs = Outputs {
        json: dir.join("results.json"),
        csv: dir.join("results.csv"),
        markdown: dir.join("summary.md"),
        html: dir.join("report.html"),
    };
    let json =
        serde_json::to_string_pretty(result).map_err(|e| Error::io("serialising results", std::io::Error::other(e)))?;
    write(&outputs.json, &json)?;
    write(&outputs.csv, &csv::render(result))?;
    write_rendered(result, &outputs)?;
    Ok(outputs)
}

/// Writes the Markdown and HTML views of `result`.
pub fn write_rendered(result: &SweepResult, outputs: &Outputs) -> Result<()> {
    write(&outputs.markdown, &markdown::render(result))?;
    write(&outputs.html, &html::render(result))
}

/// Reads a result JSON written by a sweep.
pub fn load(path: &Path) -> Result<SweepResult> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let result: SweepResult = serde_json::from_str(&text)
        .map_err(|e| Error::BadResult { path: path.display().to_string(), reason: e.to_string() })?;
    if result.format != FORMAT {
        return Err(Error::BadResult {
            path: path.display().to_string(),
            reason: format!("format `{}`, expected `{FORMAT}`", result.format),
        });
    }
    Ok(result)
}

pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// `850 µs`, `12.3 ms`, `1.20 s`.
pub(crate) fn micros(us: u64) -> String {
    match us {
        u64::MAX => "–".into(),
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// MB/s with three significant figures down to 0.001 (0.03 MB/s is not "0.0 MB/s").
pub(crate) fn megabytes(mb: f64) -> String {
    match mb.abs() {
        m if m >= 100.0 => format!("{mb:.0}"),
        m if m >= 10.0 => format!("{mb:.1}"),
        m if m >= 1.0 => format!("{mb:.2}"),
        _ => format!("{mb:.3}"),
    }
}

/// A percentile of `p` (`q` = 0.99 …), or `n/a (n=…)` when its sample count cannot
/// support it (fewer than ten samples beyond it).
pub fn pct(p: &crate::histogram::Percentiles, q: f64) -> String {
    let v = if q >= 0.9999 {
        p.p9999
    } else if q >= 0.999 {
        p.p999
    } else if q >= 0.99 {
        p.p99
    } else if q >= 0.95 {
        p.p95
    } else if q >= 0.9 {
        p.p90
    } else {
        p.p50
    };
    if p.count == 0 {
        "–".into()
    } else if crate::histogram::supports(p.count, q) {
        micros(v)
    } else {
        format!("n/a (n={})", p.count)
    }
}

/// The reproducibility manifest: versions, what the cluster said, durability settings,
/// the command line and the seeds.
pub fn manifest(
    env: &crate::sweep::Environment,
    target: &crate::target::TargetInfo,
    scenario: &crate::scenario::Scenario,
    steps: &[crate::scenario::StepConfig],
) -> Vec<String> {
    let mut lines = vec![
        format!(
            "kafka-loadgen {}, librdkafka {}, {} on {} ({} CPUs)",
            env.tool_version, env.librdkafka_version, env.host, env.platform, env.cpus
        ),
        format!("target: {} ({} broker(s), bootstrap `{}`)", target.description, target.brokers, target.bootstrap),
    ];
    lines.extend(target.facts.iter().map(|f| format!("cluster: {f}")));
    let mut durability: Vec<String> = steps
        .iter()
        .map(|s| {
            format!(
                "acks={} replication factor={} min.insync.replicas={} idempotence={}",
                s.acks, s.replication_factor, s.min_insync_replicas, s.idempotence
            )
        })
        .collect();
    durability.sort();
    durability.dedup();
    lines.extend(durability.into_iter().map(|d| format!("durability: {d}")));
    let p = &scenario.phases;
    lines.push(format!(
        "phases: warm-up {}, measured {}, cool-down {}; in-flight bound {} per producer; message.timeout.ms {}",
        humantime::format_duration(p.warmup),
        p.messages
            .map(|n| format!("{n} messages"))
            .unwrap_or_else(|| humantime::format_duration(p.duration).to_string()),
        humantime::format_duration(p.cooldown),
        scenario.max_in_flight,
        scenario.message_timeout.as_millis()
    ));
    lines.push(format!(
        "end-to-end consumer: {} (fetch.wait.max.ms {} on real brokers, 5 on the mock: it bounds end-to-end latency on brokers that do not wake a waiting fetch)",
        if scenario.end_to_end { "on" } else { "off" },
        crate::driver::FETCH_WAIT_MAX_MS
    ));
    lines.push(format!("seed: {} (payloads; keys use seed + producer index)", scenario.seed));
    lines.push(format!("command line: `{}`", env.command_line.join(" ")));
    lines
}

/// The pass rule in words.
pub fn pass_rule_text(rule: &crate::scenario::PassRule) -> String {
    format!(
        "A fixed-rate step is **sustained** only if achieved/offered ≥ {:.3} (achieved = acknowledged measured \
         messages ÷ wall time from the first measured send to the last measured acknowledgement; for this ratio the \
         window is shortened by one message transit, the lowest median publish latency of any measured second, which a \
         step that keeps up pays once), \
         no measured message \
         failed (errors, timeouts and messages never sent all count), send-delay p99 ≤ {} ms (the generator kept its \
         schedule), and the tool's consumer kept up (lag grew by at most {:.2} s of the offered rate, and it read every \
         message). Percentiles with fewer than ten samples beyond them are shown as n/a.",
        rule.min_achieved_ratio,
        rule.max_send_delay_p99.as_millis(),
        rule.max_lag_growth_seconds
    )
}

/// `123 456`.
pub(crate) fn count(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::driver::{Measurement, Throughput};
    use crate::histogram::Percentiles;
    use crate::payload::Compressibility;
    use crate::scenario::{Rate, Scenario};
    use crate::stats::ClientStats;
    use crate::sweep::{Environment, StepResult};
    use crate::target::TargetInfo;

    /// A result with one step per default step, throughput and latency rising with linger.
    pub(crate) fn sample(in_process: bool) -> SweepResult {
        let mut scenario = Scenario::default();
        let d = &mut scenario.dimensions;
        d.batch_size = vec![16_384, 1_000_000];
        d.linger_ms = vec![0, 5, 50];
        d.compression = vec!["none".parse().unwrap(), "lz4".parse().unwrap(), "zstd".parse().unwrap()];
        d.rate = vec![Rate::Max];
        let steps = scenario
            .validate()
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, config)| {
                let tput = 10_000.0 + 1_000.0 * config.linger_ms as f64 + i as f64;
                let p = |base: u64| Percentiles {
                    count: 1000,
                    min: base / 2,
                    mean: base as f64,
                    p50: base,
                    p90: base * 2,
                    p95: base * 3,
                    p99: base * 4,
                    p999: base * 5,
                    p9999: base * 6,
                    max: base * 7,
                };
                let failed = i == 5;
                StepResult {
                    index: i + 1,
                    config,
                    label: config.label(),
                    properties: config.producer_properties(&scenario),
                    topic: format!("t-{i}"),
                    status: if failed { "failed".into() } else { "ok".into() },
                    failure: failed.then(|| "broker went away: AllBrokersDown".into()),
                    notes: vec![],
                    payload: Some(Compressibility {
                        source: "generated".into(),
                        mean_size: 1024.0,
                        target_ratio: Some(3.0),
                        zstd_ratio: 3.01,
                        lz4_ratio: 2.5,
                    }),
                    measurement: Some(Measurement {
                        measured_seconds: 2.0,
                        window_seconds: 2.0,
                        offered_msgs_per_sec: match config.rate {
                            Rate::PerSecond(r) => Some(r as f64),
                            Rate::Max => None,
                        },
                        intended: 2 * tput as u64,
                        failed: 0,
                        error_rate: 0.0,
                        failure_latency: None,
                        consumer_seconds: Some(2.0),
                        timeline: (0..2)
                            .map(|i| crate::driver::Second {
                                second: i,
                                acked: tput as u64,
                                failed: 0,
                                consumed: tput as u64,
                                publish_p99_us: Some(400 + 100 * i as u64),
                                e2e_p99_us: Some(1200),
                            })
                            .collect(),
                        verdict: None,
                        produced: Throughput {
                            messages: 2 * tput as u64,
                            bytes: 2048 * tput as u64,
                            msgs_per_sec: tput,
                            mb_per_sec: tput * 1024.0 / 1e6,
                        },
                        consumed: Some(Throughput {
                            messages: 2 * tput as u64,
                            bytes: 2048 * tput as u64,
                            msgs_per_sec: tput,
                            mb_per_sec: tput * 1024.0 / 1e6,
                        }),
                        publish_latency: p(100 + 10 * config.linger_ms as u64 * 100),
                        end_to_end_latency: Some(p(300 + config.linger_ms as u64 * 1000)),
                        send_delay: matches!(config.rate, Rate::PerSecond(_)).then(|| p(5)),
                        publish_spectrum: vec![(50.0, 100), (99.0, 400), (100.0, 700)],
                        end_to_end_spectrum: vec![(50.0, 300), (99.0, 1200), (100.0, 2100)],
                        errors: BTreeMap::from([("MessageTimedOut".to_owned(), i as u64)]),
                        librdkafka: ClientStats {
                            samples: 4,
                            avg_batch_bytes: Some(1000.0 * (1 + config.linger_ms) as f64),
                            avg_batch_messages: Some(10.0),
                            queue_latency_us: Some(50.0),
                            outbuf_latency_us: None,
                            broker_rtt_us: Some(200.0),
                        },
                    }),
                    histogram_log: Some(format!("step-{:03}.hlog", i + 1)),
                    process: None,
                }
            })
            .collect();
        SweepResult {
            format: FORMAT.into(),
            scenario,
            environment: Environment::current(),
            target: TargetInfo {
                kind: if in_process { "embedded-mock".into() } else { "kafka".into() },
                bootstrap: "127.0.0.1:9092".into(),
                brokers: 3,
                in_process,
                description: "test".into(),
                message_max_bytes: Some(1_000_000),
                facts: vec!["broker message.max.bytes = 1000000".into()],
            },
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:01:00Z".into(),
            steps,
        }
    }

    #[test]
    fn json_round_trips_and_files_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let result = sample(true);
        let outputs = write_all(&result, dir.path()).unwrap();
        let back = load(&outputs.json).unwrap();
        assert_eq!(back, result);
        let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&outputs.json).unwrap()).unwrap();
        assert_eq!(value["steps"].as_array().unwrap().len(), 18);
        assert_eq!(value["steps"][0]["config"]["compression"], "none");
        assert!(value["environment"]["librdkafka_version"].as_str().unwrap().starts_with('2'));
        assert!(std::fs::read_to_string(&outputs.html).unwrap().contains("<svg"));
        assert!(std::fs::read_to_string(&outputs.markdown).unwrap().contains("client-side costs only"));
    }

    #[test]
    fn loading_rejects_other_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{\"hello\": 1}").unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("not a kafka-loadgen result"));
    }

    #[test]
    fn number_formatting() {
        assert_eq!(micros(850), "850 µs");
        assert_eq!(micros(12_345), "12.35 ms");
        assert_eq!(micros(2_000_000), "2.00 s");
        assert_eq!(count(1234567.4), "1 234 567");
        assert_eq!(count(999.0), "999");
        // 100 B × 300 msgs/s is not "0.0 MB/s"; an SLO of 2.4 ms is not "2 ms".
        assert_eq!(megabytes(0.03), "0.030");
        assert_eq!(megabytes(2.5), "2.50");
        assert_eq!(megabytes(30.04), "30.0");
        assert_eq!(micros(2_400), "2.40 ms");
        assert_eq!(micros(400), "400 µs");
    }
}
