//! The Markdown summary: what ran, the best settings, the trade-off, each dimension's effect,
//! capacity advice, then every step.

use std::fmt::Write;

use super::{count, micros, pct};
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
- **achieved** is acknowledged measured messages over the wall time from the first measured send to the last measured \
acknowledgement; **consumed** is the tool's consumer over its own window (first to last measured message read). Failed, \
timed-out and never-sent measured messages are the **error rate** and have a latency histogram of their own.
- Percentiles come from HdrHistograms (3 significant digits) merged across producers; a percentile with fewer than ten \
samples beyond it is shown as n/a (n=…). Each step's `.hlog` file (HdrHistogram interval log, microseconds) has one \
interval per second of the measured phase per tag (publish, end-to-end, send-delay) and the failures.";

pub(crate) fn settings(s: &StepResult) -> String {
    s.label.clone()
}

/// `sustained`, `NOT sustained`, `closed loop` or `failed`.
pub(crate) fn status(s: &StepResult) -> &'static str {
    match s.measurement.as_ref().and_then(|m| m.verdict.as_ref()) {
        _ if !s.ok() => "failed",
        Some(v) if v.sustained => "sustained",
        Some(_) => "NOT sustained",
        None => "closed loop",
    }
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
    let _ = writeln!(md, "**{}**\n", analysis.answer);
    let _ = writeln!(md, "## Manifest\n");
    let configs: Vec<_> = result.steps.iter().map(|s| s.config).collect();
    for line in super::manifest(&result.environment, &result.target, &result.scenario, &configs) {
        let _ = writeln!(md, "- {line}");
    }
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
    let _ = writeln!(md, "## Method and pass rule\n\n{}\n", super::pass_rule_text(&result.scenario.pass));

    let _ = writeln!(
        md,
        "## Best settings\n\n{}\n",
        if analysis.best_is_sustained {
            "Among sustained fixed-rate steps:"
        } else {
            "No fixed-rate step was sustained; these are closed-loop steps (latency at saturation):"
        }
    );
    let line = |s: &StepResult| {
        let m = s.measurement.as_ref().expect("analysed steps have measurements");
        format!(
            "step {} `{}`: {} msgs/s ({:.1} MB/s), publish p99 {}",
            s.index,
            settings(s),
            count(m.produced.msgs_per_sec),
            m.produced.mb_per_sec,
            pct(&m.publish_latency, 0.99)
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
        let _ = writeln!(
            md,
            "| step | settings | msgs/s | MB/s | publish p99 | e2e p99 | held its rate |\n|---|---|---|---|---|---|---|"
        );
        for s in &analysis.frontier {
            let m = s.measurement.as_ref().expect("measured");
            // A fixed-rate step that fell behind is latency at saturation, not an option at
            // its offered rate: say so beside it.
            let held = match (s.config.rate, &m.verdict) {
                (crate::scenario::Rate::Max, _) | (_, None) => "closed loop".to_owned(),
                (_, Some(v)) if v.sustained => "yes".to_owned(),
                (_, Some(v)) => format!("**no** ({})", v.reasons.join("; ")),
            };
            let _ = writeln!(
                md,
                "| {} | `{}` | {} | {:.1} | {} | {} | {held} |",
                s.index,
                settings(s),
                count(m.produced.msgs_per_sec),
                m.produced.mb_per_sec,
                pct(&m.publish_latency, 0.99),
                m.end_to_end_latency.map(|e| pct(&e, 0.99)).unwrap_or_else(|| "–".into())
            );
        }
    }

    if !analysis.effects.is_empty() {
        let _ = writeln!(
            md,
            "\n## Effect of each dimension\n\nMean over the successful steps with each value, taken over the same \
             settings of the other dimensions for every value (those with which every value succeeded):\n"
        );
        for (dim, rows) in &analysis.effects {
            let _ = writeln!(md, "| {dim} | mean msgs/s | mean publish p99 | steps |\n|---|---|---|---|");
            for e in rows {
                // Nothing comparable measured: no mean to print, and say why.
                let (tput, p99) = match (e.msgs_per_sec, e.p99_us) {
                    (Some(t), Some(p)) => (count(t), micros(p as u64)),
                    _ if e.succeeded == 0 => ("– (no successful step)".to_owned(), "–".to_owned()),
                    _ => ("– (no other settings every value succeeded with)".to_owned(), "–".to_owned()),
                };
                let _ = writeln!(md, "| {} | {tput} | {p99} | {} |", e.value, e.steps);
            }
            md.push('\n');
        }
    }

    if let Some(section) = super::paths::markdown(result) {
        let _ = writeln!(md, "{section}");
    }
    let _ = writeln!(md, "## Capacity advice\n");
    for a in &analysis.advice {
        let _ = writeln!(md, "- {a}");
    }

    let _ = writeln!(md, "\n## All steps\n");
    let _ = writeln!(
        md,
        "| step | status | settings | offered | achieved msgs/s | MB/s | publish p50 / p99 / p99.9 / max | e2e p50 / p99 / max | consumed msgs/s | send delay p99 | error rate | batch B / msgs | queue | rtt | errors |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &result.steps {
        let Some(m) = &s.measurement else {
            let _ = writeln!(md, "| {} | {} | `{}` | | | | | | | | | | | | |", s.index, s.status, settings(s));
            continue;
        };
        let pl = &m.publish_latency;
        let e2e = m
            .end_to_end_latency
            .map(|e| format!("{} / {} / {}", pct(&e, 0.5), pct(&e, 0.99), micros(e.max)))
            .unwrap_or_else(|| "–".into());
        let st = &m.librdkafka;
        let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "–".into());
        let errors: Vec<String> = m.errors.iter().map(|(k, n)| format!("{k}×{n}")).collect();
        let _ = writeln!(
            md,
            "| {} | {} | `{}` | {} | {} | {:.1} | {} / {} / {} / {} | {} | {} | {} | {:.3} % | {} / {} | {} | {} | {} |",
            s.index,
            status(s),
            settings(s),
            m.offered_msgs_per_sec.map(count).unwrap_or_else(|| "max".into()),
            count(m.produced.msgs_per_sec),
            m.produced.mb_per_sec,
            pct(pl, 0.5),
            pct(pl, 0.99),
            pct(pl, 0.999),
            micros(pl.max),
            e2e,
            m.consumed.map(|c| count(c.msgs_per_sec)).unwrap_or_else(|| "–".into()),
            m.send_delay.map(|d| pct(&d, 0.99)).unwrap_or_else(|| "–".into()),
            m.error_rate * 100.0,
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
        assert_eq!(md.lines().filter(|l| l.starts_with("| ") && l.contains(" | closed loop | ")).count(), 17);
        assert!(md.contains("**No fixed-rate step was sustained; at saturation (closed loop)"), "answer first: {md}");
        assert!(md.contains("## Manifest") && md.contains("durability: acks=all"), "{md}");
        // 1000 samples support p99 but not p99.9.
        assert!(md.contains("n/a (n=1000)"), "{md}");

        let real = crate::report::tests::sample(false);
        assert!(!render(&real).contains("client-side costs only"));
    }

    #[test]
    fn a_headline_p99_the_samples_cannot_back_is_not_printed() {
        let mut result = crate::report::tests::sample(false);
        for s in &mut result.steps {
            if let Some(m) = s.measurement.as_mut() {
                m.publish_latency.count = 400; // 4 samples beyond p99
            }
        }
        let md = render(&result);
        let answer = md.lines().find(|l| l.contains("at saturation (closed loop)")).expect("the answer");
        assert!(answer.contains("publish p99 n/a (n=400)"), "{answer}");
    }

    #[test]
    fn effects_compare_each_value_over_the_same_other_settings() {
        let mut result = crate::report::tests::sample(false);
        for s in result.steps.iter_mut() {
            // Throughput set by linger and batch size alone.
            let big = s.config.batch_size == 1_000_000;
            let m = s.measurement.as_mut().unwrap();
            m.produced.msgs_per_sec = 1000.0 * (1.0 + s.config.linger_ms as f64) + if big { 500_000.0 } else { 0.0 };
            // linger 0 failed with the big batches: its mean would have only the small ones.
            if s.config.linger_ms == 0 && big {
                s.status = "failed".into();
                s.failure = Some("AllBrokersDown".into());
            }
        }
        let md = render(&result);
        let row = |value: &str| {
            let start = md.find("| linger_ms | mean msgs/s").expect("linger table");
            md[start..].lines().find(|l| l.starts_with(&format!("| {value} | "))).unwrap().to_owned()
        };
        // Over the small batches only, for every linger: 1 000, 6 000 and 51 000.
        assert!(row("0").starts_with("| 0 | 1 000 |"), "{}", row("0"));
        assert!(row("5").starts_with("| 5 | 6 000 |"), "{}", row("5"));
        assert!(row("50").starts_with("| 50 | 51 000 |"), "{}", row("50"));
    }

    #[test]
    fn a_value_whose_every_step_failed_gets_no_mean() {
        let mut result = crate::report::tests::sample(false);
        // Every step with linger 50 fails: the effects table has nothing to average for it.
        for s in result.steps.iter_mut().filter(|s| s.config.linger_ms == 50) {
            s.status = "failed".into();
            s.failure = Some("AllBrokersDown".into());
        }
        let md = render(&result);
        assert!(md.contains("| 50 | – (no successful step) | – | 0 |"), "{md}");
        assert!(!md.contains("| 50 | 0 |"), "{md}");
        // The values that were measured keep their means.
        assert!(md.lines().any(|l| l.starts_with("| 5 | ") && !l.contains("no successful step")), "{md}");
    }

    #[test]
    fn a_sweep_with_sustained_steps_answers_with_the_best_sustained_one() {
        let mut result = crate::report::tests::sample(false);
        for (i, s) in result.steps.iter_mut().enumerate() {
            // Six configurations (batch × linger), three rates each.
            s.config.compression = crate::scenario::Compression::NONE;
            s.config.rate = crate::scenario::Rate::PerSecond(1000 * (i as u64 % 3 + 1));
            s.label = s.config.label();
            let m = s.measurement.as_mut().unwrap();
            m.offered_msgs_per_sec = Some(1000.0 * ((i % 3) as f64 + 1.0));
            let sustained = i < 10;
            m.verdict = Some(crate::verdict::Verdict {
                sustained,
                achieved_ratio: if sustained { 1.0 } else { 0.8 },
                reasons: if sustained { vec![] } else { vec!["achieved 80 %".into()] },
            });
        }
        let md = render(&result);
        assert!(md.contains("(step 9); 9 of 18 fixed-rate steps were not sustained"), "{md}");
        assert!(md.contains("| NOT sustained |"));
        assert!(md.contains("not sustained (achieved 80 %)"), "{md}");
        let html = crate::report::html::render(&result);
        assert!(html.contains("id=\"hockey-1-achieved\"") && html.contains("id=\"heat-map\""), "charts");
        assert!(html.contains("id=\"timeline-rate\""));
    }
}
