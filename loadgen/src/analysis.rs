//! What the numbers mean for a deployment: best settings, the throughput/latency trade-off,
//! the effect of each swept dimension, and capacity advice.
//!
//! The advice follows the usual rule for queues: utilisation near 100% makes waiting time
//! explode, so plan for at most 70% of the measured closed-loop maximum per producer, and
//! trust open-loop (fixed-rate) steps for latency at a given rate — a closed loop measures
//! latency at saturation.

use crate::scenario::{Rate, Scenario};
use crate::sweep::{StepResult, SweepResult};

/// Plan for at most this share of the measured maximum.
pub const HEADROOM: f64 = 0.7;

/// Mean results of the successful steps with one value of a dimension.
pub struct Effect {
    /// The value.
    pub value: String,
    /// Mean produced msgs/s.
    pub msgs_per_sec: f64,
    /// Mean publish p99 (µs).
    pub p99_us: f64,
    /// Successful steps with this value.
    pub steps: usize,
}

/// A summary of a sweep.
pub struct Analysis<'a> {
    /// Highest produced msgs/s.
    pub best_throughput: Option<&'a StepResult>,
    /// Lowest publish p99.
    pub best_p99: Option<&'a StepResult>,
    /// Steps no other step beats on both throughput and p99, by throughput descending.
    pub frontier: Vec<&'a StepResult>,
    /// Per varied dimension (name, rows).
    pub effects: Vec<(String, Vec<Effect>)>,
    /// Sentences of advice.
    pub advice: Vec<String>,
}

fn throughput(s: &StepResult) -> f64 {
    s.measurement.as_ref().map(|m| m.produced.msgs_per_sec).unwrap_or(0.0)
}

fn p99(s: &StepResult) -> u64 {
    s.measurement.as_ref().map(|m| m.publish_latency.p99).unwrap_or(u64::MAX)
}

/// Analyses the successful steps of `result`.
pub fn analyse(result: &SweepResult) -> Analysis<'_> {
    let ok: Vec<&StepResult> = result.steps.iter().filter(|s| s.ok() && s.measurement.is_some()).collect();
    let best_throughput = ok.iter().copied().max_by(|a, b| throughput(a).total_cmp(&throughput(b)));
    let best_p99 = ok.iter().copied().min_by_key(|s| p99(s));
    let mut frontier: Vec<&StepResult> = ok
        .iter()
        .copied()
        .filter(|s| {
            !ok.iter().any(|o| {
                (throughput(o) > throughput(s) && p99(o) <= p99(s))
                    || (throughput(o) >= throughput(s) && p99(o) < p99(s))
            })
        })
        .collect();
    frontier.sort_by(|a, b| throughput(b).total_cmp(&throughput(a)));

    let configs: Vec<_> = result.steps.iter().map(|s| s.config).collect();
    let effects = Scenario::varied_dimensions(&configs)
        .into_iter()
        .map(|dim| {
            let mut values: Vec<String> = Vec::new();
            for s in &result.steps {
                let v = s.config.value(dim);
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            let rows = values
                .into_iter()
                .map(|v| {
                    let with: Vec<&&StepResult> = ok.iter().filter(|s| s.config.value(dim) == v).collect();
                    let n = with.len().max(1) as f64;
                    let tput = with.iter().map(|s| throughput(s)).sum::<f64>() / n;
                    let lat = with.iter().map(|s| p99(s) as f64).sum::<f64>() / n;
                    Effect { value: v, msgs_per_sec: tput, p99_us: lat, steps: with.len() }
                })
                .collect();
            (dim.to_owned(), rows)
        })
        .collect();

    let mut advice = Vec::new();
    if result.target.in_process {
        advice.push(
            "These numbers come from an in-process broker: they measure client-side costs only (librdkafka batching, \
             compression, this machine's CPU). Re-run with --brokers against your cluster before sizing anything."
                .to_owned(),
        );
    }
    if let Some(best) = best_throughput {
        let m = best.measurement.as_ref().expect("ok steps have measurements");
        let per_producer = m.produced.msgs_per_sec / best.config.producers as f64;
        advice.push(format!(
            "Maximum measured: {:.0} msgs/s ({:.1} MB/s) with {} producer(s) at `{}`, i.e. {:.0} msgs/s per producer. \
             Plan for at most {:.0}% of that: {:.0} msgs/s per producer.",
            m.produced.msgs_per_sec,
            m.produced.mb_per_sec,
            best.config.producers,
            best.label,
            per_producer,
            HEADROOM * 100.0,
            per_producer * HEADROOM
        ));
        let rates: Vec<u64> = ok
            .iter()
            .filter_map(|s| match s.config.rate {
                Rate::PerSecond(r) => Some(r),
                Rate::Max => None,
            })
            .collect();
        if let Some(&target) = rates.iter().max() {
            let needed = (target as f64 / (per_producer * HEADROOM)).ceil().max(1.0);
            advice.push(format!(
                "For {target} msgs/s (the highest rate swept) plan {needed:.0} producer(s) with those settings."
            ));
        }
    }
    for s in &ok {
        if let (Rate::PerSecond(rate), Some(m)) = (s.config.rate, &s.measurement) {
            if m.produced.msgs_per_sec < 0.95 * rate as f64 {
                advice.push(format!(
                    "Step {} could not keep up with {rate} msgs/s (achieved {:.0}): that rate is beyond this setting's capacity.",
                    s.index, m.produced.msgs_per_sec
                ));
            }
        }
    }
    let failed = result.steps.iter().filter(|s| !s.ok()).count();
    if failed > 0 {
        advice.push(format!(
            "{failed} step(s) failed; their reasons are listed below and they are excluded from the advice."
        ));
    }
    Analysis { best_throughput, best_p99, frontier, effects, advice }
}
