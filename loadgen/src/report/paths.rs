//! The section that compares paths: each component (or dapr) step next to the direct step of
//! the same configuration (every dimension equal but `publish` and `target`), as ratios, and
//! what the bridge process itself cost.
//!
//! Ratios are *other / direct*: throughput below 1 and latency above 1 are the bridge's price.
//! A percentile the sample count cannot support is left out of its ratio (`–`).

use std::fmt::Write;

use crate::histogram::Percentiles;
use crate::scenario::TargetKind;
use crate::sweep::{StepResult, SweepResult};

/// A step's configuration without the path: what a direct and a component step share.
pub fn configuration(step: &StepResult) -> String {
    step.label
        .split(' ')
        .filter(|p| !p.starts_with("publish=") && !p.starts_with("target="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One non-direct step and its direct twin.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRow {
    /// The other path's step.
    pub step: usize,
    /// The direct step it is compared with.
    pub direct_step: usize,
    /// `component` or `dapr`.
    pub target: String,
    /// `unary:N`, `bulk:ExC`.
    pub publish: String,
    /// Throughput, msgs/s: direct, other.
    pub msgs_per_sec: (f64, f64),
    /// other / direct for throughput, publish p50, p99, p99.9 and end-to-end p99.
    pub ratios: [Option<f64>; 5],
    /// Whether each step was sustained (open loop), `None` for closed loop.
    pub sustained: (Option<bool>, Option<bool>),
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (a > 0).then(|| b as f64 / a as f64)
}

/// p99.9 only where at least 10 000 samples back it.
fn p999(p: &Percentiles) -> u64 {
    if p.count >= 10_000 { p.p999 } else { 0 }
}

/// Every non-direct ok step with a direct ok step of the same configuration. A failed step
/// keeps what it measured before it failed (say one of four producers could not start), which
/// is no price of the path: it is left out on either side.
pub fn rows(result: &SweepResult) -> Vec<PathRow> {
    let direct: Vec<&StepResult> = result
        .steps
        .iter()
        .filter(|s| s.config.target == TargetKind::Direct && s.ok() && s.measurement.is_some())
        .collect();
    result
        .steps
        .iter()
        .filter(|s| s.config.target != TargetKind::Direct && s.ok())
        .filter_map(|s| {
            let d = direct.iter().find(|d| configuration(d) == configuration(s))?;
            let (dm, m) = (d.measurement.as_ref()?, s.measurement.as_ref()?);
            let (dp, p) = (&dm.publish_latency, &m.publish_latency);
            Some(PathRow {
                step: s.index,
                direct_step: d.index,
                target: s.config.target.to_string(),
                publish: s.config.publish.to_string(),
                msgs_per_sec: (dm.produced.msgs_per_sec, m.produced.msgs_per_sec),
                ratios: [
                    (dm.produced.msgs_per_sec > 0.0).then(|| m.produced.msgs_per_sec / dm.produced.msgs_per_sec),
                    ratio(dp.p50, p.p50),
                    ratio(dp.p99, p.p99),
                    ratio(p999(dp), p999(p)).filter(|_| p999(p) > 0),
                    match (&dm.end_to_end_latency, &m.end_to_end_latency) {
                        (Some(a), Some(b)) => ratio(a.p99, b.p99),
                        _ => None,
                    },
                ],
                sustained: (dm.verdict.as_ref().map(|v| v.sustained), m.verdict.as_ref().map(|v| v.sustained)),
            })
        })
        .collect()
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}×"))
}

fn fmt_sustained(s: Option<bool>) -> &'static str {
    match s {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "closed loop",
    }
}

/// The Markdown section, when the sweep ran more than the direct path.
pub fn markdown(result: &SweepResult) -> Option<String> {
    let rows = rows(result);
    let costs: Vec<&StepResult> = result.steps.iter().filter(|s| s.ok() && s.process.is_some()).collect();
    if rows.is_empty() && costs.is_empty() {
        return None;
    }
    let mut md = String::new();
    let _ = writeln!(md, "## Paths compared: what the component costs over direct Kafka\n");
    let _ = writeln!(
        md,
        "Each component step next to the direct step of the same configuration (run interleaved, on the same \
         cluster); ratios are component / direct: throughput below 1× and latency above 1× are the component's \
         price. Publish latency through the component is the RPC round trip (the bridge answers once Kafka \
         acknowledged at the step's `acks`).\n"
    );
    if !rows.is_empty() {
        let _ = writeln!(
            md,
            "| configuration | path | publish | direct msgs/s | path msgs/s | throughput | publish p50 | p99 | p99.9 | e2e p99 | sustained (direct / path) |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &rows {
            let config = result.steps.iter().find(|s| s.index == r.step).map(configuration).unwrap_or_default();
            let _ = writeln!(
                md,
                "| `{config}` | {} (step {}) | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} / {} |",
                r.target,
                r.step,
                r.publish,
                r.msgs_per_sec.0,
                r.msgs_per_sec.1,
                fmt_ratio(r.ratios[0]),
                fmt_ratio(r.ratios[1]),
                fmt_ratio(r.ratios[2]),
                fmt_ratio(r.ratios[3]),
                fmt_ratio(r.ratios[4]),
                fmt_sustained(r.sustained.0),
                fmt_sustained(r.sustained.1),
            );
        }
    }
    if !costs.is_empty() {
        let _ = writeln!(
            md,
            "\n**The bridge process's own cost** (from `/proc/<pid>` over each measured phase; millicores per MB/s \
             = CPU-milliseconds per MB acknowledged; peak RSS is `VmHWM`, the high-water mark since the bridge \
             started):\n\n| step | publish | MB/s | bridge CPU (millicores) | millicores per MB/s | peak RSS |\n|---|---|---|---|---|---|"
        );
        for s in costs {
            let p = s.process.as_ref().expect("filtered");
            let mb = s.measurement.as_ref().map_or(0.0, |m| m.produced.mb_per_sec);
            let _ = writeln!(
                md,
                "| {} | {} | {mb:.1} | {:.0} | {} | {} |",
                s.index,
                s.config.publish,
                p.millicores,
                p.millicores_per_mb_s.map_or("–".into(), |m| format!("{m:.0}")),
                p.peak_rss_bytes.map_or("–".into(), |b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64)),
            );
        }
    }
    Some(md)
}

/// The same section as HTML (tables only).
pub fn html(result: &SweepResult) -> Option<String> {
    markdown(result).map(|md| markdown_to_html(&md))
}

/// The Markdown these sections write (titles, paragraphs, tables) as HTML.
pub fn markdown_to_html(md: &str) -> String {
    let mut h = String::new();
    let mut in_table = false;
    for line in md.lines() {
        if let Some(title) = line.strip_prefix("### ") {
            let _ = write!(h, "<h3>{}</h3>", super::svg::escape(title));
        } else if let Some(title) = line.strip_prefix("## ") {
            let _ = write!(h, "<h2>{}</h2>", super::svg::escape(title));
        } else if line.starts_with("|---") {
            continue;
        } else if let Some(row) = line.strip_prefix('|') {
            let cells: Vec<String> = row
                .trim_end_matches('|')
                .split(" | ")
                .map(|c| super::svg::escape(c.trim().trim_matches('`').replace("**", "").as_str()))
                .collect();
            let tag = if in_table { "td" } else { "th" };
            if !in_table {
                h.push_str("<table>");
                in_table = true;
            }
            let _ = write!(h, "<tr>{}</tr>", cells.iter().map(|c| format!("<{tag}>{c}</{tag}>")).collect::<String>());
        } else {
            if in_table {
                h.push_str("</table>");
                in_table = false;
            }
            if !line.trim().is_empty() {
                let _ = write!(h, "<p>{}</p>", super::svg::escape(&line.replace("**", "").replace('`', "")));
            }
        }
    }
    if in_table {
        h.push_str("</table>");
    }
    h
}

/// Capacity: each non-direct configuration's maximum rate at the SLO next to the direct one's.
pub fn capacity_markdown(result: &crate::capacity::CapacityResult) -> Option<String> {
    let key = |c: &crate::scenario::StepConfig| {
        c.label_without_rate()
            .split(' ')
            .filter(|p| !p.starts_with("publish=") && !p.starts_with("target="))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut md = String::new();
    for c in result.configurations.iter().filter(|c| c.config.target != TargetKind::Direct) {
        let Some(d) = result
            .configurations
            .iter()
            .find(|d| d.config.target == TargetKind::Direct && key(&d.config) == key(&c.config))
        else {
            continue;
        };
        if md.is_empty() {
            let _ = writeln!(
                md,
                "## Paths compared: maximum rate at the SLO\n\n| configuration | path | publish | direct msgs/s | path msgs/s | ratio |\n|---|---|---|---|---|---|"
            );
        }
        let fmt = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        let ratio = match (d.sustained_msgs_per_sec, c.sustained_msgs_per_sec) {
            (Some(a), Some(b)) if a > 0.0 => format!("{:.2}×", b / a),
            _ => "–".into(),
        };
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {ratio} |",
            key(&c.config),
            c.config.target,
            c.config.publish,
            fmt(d.sustained_msgs_per_sec),
            fmt(c.sustained_msgs_per_sec)
        );
    }
    (!md.is_empty()).then_some(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct step and a component step of the same configuration; `failed` marks which
    /// fail (keeping what they measured).
    fn pair(failed: [bool; 2]) -> SweepResult {
        let mut result = crate::report::tests::sample(false);
        result.steps.truncate(1);
        let mut component = result.steps[0].clone();
        component.index = 2;
        component.config.target = TargetKind::Component;
        component.label = format!("{} target=component", result.steps[0].label);
        if let Some(m) = component.measurement.as_mut() {
            m.produced.msgs_per_sec *= 0.75;
        }
        result.steps.push(component);
        for (step, failed) in result.steps.iter_mut().zip(failed) {
            if failed {
                step.status = "failed".into();
                step.failure = Some("a producer could not start".into());
            }
        }
        result
    }

    #[test]
    fn failed_steps_are_no_price_of_the_path() {
        let both = rows(&pair([false, false]));
        assert_eq!(both.len(), 1);
        assert!((both[0].ratios[0].unwrap() - 0.75).abs() < 1e-9);
        assert!(rows(&pair([false, true])).is_empty(), "a failed component step");
        assert!(rows(&pair([true, false])).is_empty(), "a failed direct twin");
    }
}
