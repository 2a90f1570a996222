//! The Markdown summary: what ran, the best settings, the trade-off, each dimension's effect,
//! capacity advice, then every step.

use std::fmt::Write;

use super::{count, micros};
use crate::analysis;
use crate::sweep::{StepResult, SweepResult};

/// The explanation printed under every report.
pub const HOW_TO_READ: &str = "\
- **publish** latency runs from the send to the delivery report (the broker acknowledged with the step's `acks`); \
**end-to-end** from the send to this tool's own consumer reading the message. In fixed-rate (open-loop) steps both \
run from the message's *intended* send time, so a stall shows up in the percentiles instead of being hidden \
(no coordinated omission); **send delay** is how late sends were against that schedule.
- `rate=max` steps are closed-loop: as fast as the in-flight window allows. Their latency is latency *at saturation*; \
use fixed-rate steps to see latency at your rate.
- **batch** columns are librdkafka's own statistics over the measured phase: bytes and messages per produced \
batch (what linger and batch.size achieved), **queue** is the time a message waited in the producer before \
being batched, **rtt** the broker round trip per request.
- Percentiles come from HdrHistograms (3 significant digits) merged across producers; each step's histograms are in \
its `.hlog` file (HdrHistogram interval log) for merging and plotting with HdrHistogram's tools.";

pub(crate) fn settings(s: &StepResult) -> String {
    s.label.clone()
}

/// Renders the summary.
pub fn render(result: &SweepResult) -> String {
    let analysis = analysis::analyse(result);
    let mut md = String::new();
    let _ = writeln!(md, "# kafka-loadgen sweep `{}`\n", result.scenario.name);
    if result.target.in_process {
        let _ = writeln!(
            md,
            "> **In-process broker.** This sweep ran against librdkafka's mock cluster inside this process. \
             It measures client-side costs only (batching, compression, CPU); there is no disk, replication or \
             network. Use `--brokers` to measure a real cluster.\n"
        );
    }
    let env = &result.environment;
    let _ = writeln!(md, "- target: {}", result.target.description);
    let _ = writeln!(
        md,
        "- environment: {} on {} ({} CPUs), kafka-loadgen {}, librdkafka {}",
        env.host, env.platform, env.cpus, env.tool_version, env.librdkafka_version
    );
    let p = &result.scenario.phases;
    let measured = match p.messages {
        Some(n) => format!("{n} messages"),
        None => humantime::format_duration(p.duration).to_string(),
    };
    let _ = writeln!(
        md,
        "- phases: warm-up {}, measured {measured}, cool-down {}; in-flight bound {} per producer",
        humantime::format_duration(p.warmup),
        humantime::format_duration(p.cooldown),
        result.scenario.max_in_flight
    );
    let mut payloads: Vec<String> = result
        .steps
        .iter()
        .filter_map(|s| s.payload.as_ref())
        .map(|c| {
            format!(
                "{} ({:.0} B): measured compressibility zstd {:.2}×, lz4 {:.2}×{}",
                c.source,
                c.mean_size,
                c.zstd_ratio,
                c.lz4_ratio,
                c.target_ratio.map(|t| format!(" (target {t:.1}×)")).unwrap_or_default()
            )
        })
        .collect();
    payloads.dedup();
    for p in payloads {
        let _ = writeln!(md, "- payload: {p}");
    }
    let _ = writeln!(md, "- ran {} → {}\n", result.started_at, result.finished_at);

    let _ = writeln!(md, "## Best settings\n");
    let line = |s: &StepResult| {
        let m = s.measurement.as_ref().expect("analysed steps have measurements");
        format!(
            "step {} `{}`: {} msgs/s ({:.1} MB/s), publish p99 {}",
            s.index,
            settings(s),
            count(m.produced.msgs_per_sec),
            m.produced.mb_per_sec,
            micros(m.publish_latency.p99)
        )
    };
    match (analysis.best_throughput, analysis.best_p99) {
        (Some(t), Some(l)) => {
            let _ = writeln!(md, "- **throughput**: {}", line(t));
            let _ = writeln!(md, "- **p99 latency**: {}", line(l));
        }
        _ => {
            let _ = writeln!(md, "No step succeeded.");
        }
    }
    if !analysis.frontier.is_empty() {
        let _ = writeln!(
            md,
            "\n**Trade-off** — steps no other step beats on both throughput and p99 (more throughput costs latency along this list):\n"
        );
        let _ = writeln!(md, "| step | settings | msgs/s | MB/s | publish p99 | e2e p99 |\n|---|---|---|---|---|---|");
        for s in &analysis.frontier {
            let m = s.measurement.as_ref().expect("measured");
            let _ = writeln!(
                md,
                "| {} | `{}` | {} | {:.1} | {} | {} |",
                s.index,
                settings(s),
                count(m.produced.msgs_per_sec),
                m.produced.mb_per_sec,
                micros(m.publish_latency.p99),
                m.end_to_end_latency.map(|e| micros(e.p99)).unwrap_or_else(|| "–".into())
            );
        }
    }

    if !analysis.effects.is_empty() {
        let _ = writeln!(md, "\n## Effect of each dimension\n\nMean over the successful steps with each value:\n");
        for (dim, rows) in &analysis.effects {
            let _ = writeln!(md, "| {dim} | mean msgs/s | mean publish p99 | steps |\n|---|---|---|---|");
            for e in rows {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    e.value,
                    count(e.msgs_per_sec),
                    micros(e.p99_us as u64),
                    e.steps
                );
            }
            md.push('\n');
        }
    }

    let _ = writeln!(md, "## Capacity advice\n");
    for a in &analysis.advice {
        let _ = writeln!(md, "- {a}");
    }

    let _ = writeln!(md, "\n## All steps\n");
    let _ = writeln!(
        md,
        "| step | status | settings | msgs/s | MB/s | publish p50 / p99 / p99.9 / max | e2e p50 / p99 / max | send delay p99 | batch B / msgs | queue | rtt | errors |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &result.steps {
        let Some(m) = &s.measurement else {
            let _ = writeln!(md, "| {} | {} | `{}` | | | | | | | | | |", s.index, s.status, settings(s));
            continue;
        };
        let pl = &m.publish_latency;
        let e2e = m
            .end_to_end_latency
            .map(|e| format!("{} / {} / {}", micros(e.p50), micros(e.p99), micros(e.max)))
            .unwrap_or_else(|| "–".into());
        let st = &m.librdkafka;
        let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "–".into());
        let errors: Vec<String> = m.errors.iter().map(|(k, n)| format!("{k}×{n}")).collect();
        let _ = writeln!(
            md,
            "| {} | {} | `{}` | {} | {:.1} | {} / {} / {} / {} | {} | {} | {} / {} | {} | {} | {} |",
            s.index,
            s.status,
            settings(s),
            count(m.produced.msgs_per_sec),
            m.produced.mb_per_sec,
            micros(pl.p50),
            micros(pl.p99),
            micros(pl.p999),
            micros(pl.max),
            e2e,
            m.send_delay.map(|d| micros(d.p99)).unwrap_or_else(|| "–".into()),
            opt(st.avg_batch_bytes, &|v| count(v)),
            opt(st.avg_batch_messages, &|v| format!("{v:.1}")),
            opt(st.queue_latency_us, &|v| micros(v as u64)),
            opt(st.broker_rtt_us, &|v| micros(v as u64)),
            if errors.is_empty() { "0".into() } else { errors.join(", ") }
        );
    }
    let failed: Vec<&StepResult> = result.steps.iter().filter(|s| !s.ok()).collect();
    if !failed.is_empty() {
        let _ = writeln!(md, "\n## Failed steps\n");
        for s in failed {
            let _ = writeln!(md, "- step {} `{}`: {}", s.index, settings(s), s.failure.as_deref().unwrap_or("unknown"));
        }
    }
    let notes: Vec<String> =
        result.steps.iter().flat_map(|s| s.notes.iter().map(move |n| format!("step {}: {n}", s.index))).collect();
    if !notes.is_empty() {
        let _ = writeln!(md, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    let _ = writeln!(md, "\n## How to read this\n\n{HOW_TO_READ}");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_the_best_steps_the_trade_off_and_the_failures() {
        let result = crate::report::tests::sample(true);
        let md = render(&result);
        assert!(md.contains("client-side costs only"), "{md}");
        assert!(md.contains("- **throughput**: step 18 "), "{md}");
        assert!(md.contains("- **p99 latency**: step 1 "), "{md}");
        assert!(md.contains("**Trade-off**"));
        assert!(md.contains("| linger_ms | mean msgs/s"));
        assert!(md.contains("## Capacity advice"));
        assert!(md.contains("step 6 `"), "failed step listed");
        assert!(md.contains("AllBrokersDown"));
        assert!(md.contains("measured compressibility zstd 3.01×, lz4 2.50× (target 3.0×)"));
        assert_eq!(md.lines().filter(|l| l.starts_with("| ") && l.contains(" | ok | ")).count(), 17);

        let real = crate::report::tests::sample(false);
        assert!(!render(&real).contains("client-side costs only"));
    }
}
