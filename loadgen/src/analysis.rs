//! What a sweep's numbers mean: the answer sentence, best settings, the throughput/latency
//! trade-off, the effect of each swept dimension, and advice.
//!
//! Only *sustained* fixed-rate steps (see [`crate::verdict`]) say what a configuration
//! carries; a step that fell behind reports its achieved rate and why it is not sustained,
//! and cannot win "best throughput". Closed-loop steps measure saturation: they rank only
//! when the sweep has no sustained step, and say so. The sweep no longer extrapolates a plan
//! across configurations: `kafka-loadgen capacity` searches each configuration's maximum
//! rate at an SLO and sizes from that.

use std::collections::{HashMap, HashSet};

use crate::scenario::{Rate, Scenario};
use crate::sweep::{StepResult, SweepResult};

/// Mean results of the successful steps with one value of a dimension.
pub struct Effect {
    /// The value.
    pub value: String,
    /// Mean produced msgs/s over `steps`; `None` when there are none.
    pub msgs_per_sec: Option<f64>,
    /// Mean publish p99 (µs) over `steps`; `None` when there are none.
    pub p99_us: Option<f64>,
    /// Successful steps with this value whose other settings every value succeeded with.
    pub steps: usize,
    /// Successful steps with this value, comparable or not.
    pub succeeded: usize,
}

/// A summary of a sweep.
pub struct Analysis<'a> {
    /// Highest produced msgs/s among sustained steps (closed-loop steps when none).
    pub best_throughput: Option<&'a StepResult>,
    /// Whether `best_throughput` is a sustained fixed-rate step (else closed loop: saturation).
    pub best_is_sustained: bool,
    /// The sentence the reports open with.
    pub answer: String,
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

/// Whether a step is a sustained fixed-rate step.
pub fn sustained(s: &StepResult) -> bool {
    s.ok() && s.measurement.as_ref().and_then(|m| m.verdict.as_ref()).is_some_and(|v| v.sustained)
}

fn closed_loop(s: &StepResult) -> bool {
    s.ok() && s.config.rate == Rate::Max && s.measurement.is_some()
}

/// Analyses the successful steps of `result`.
pub fn analyse(result: &SweepResult) -> Analysis<'_> {
    let ok: Vec<&StepResult> = result.steps.iter().filter(|s| s.ok() && s.measurement.is_some()).collect();
    let held: Vec<&StepResult> = ok.iter().copied().filter(|s| sustained(s)).collect();
    let ranked: Vec<&StepResult> =
        if held.is_empty() { ok.iter().copied().filter(|s| closed_loop(s)).collect() } else { held.clone() };
    let best_throughput = ranked.iter().copied().max_by(|a, b| throughput(a).total_cmp(&throughput(b)));
    let best_is_sustained = !held.is_empty();
    let best_p99 = ranked.iter().copied().min_by_key(|s| p99(s));
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
    let varied = Scenario::varied_dimensions(&configs);
    let effects = varied
        .iter()
        .map(|&dim| {
            let mut values: Vec<String> = Vec::new();
            for s in &result.steps {
                let v = s.config.value(dim);
                if !values.contains(&v) {
                    values.push(v);
                }
            }
            // Compare like with like: each value is averaged over the same settings of the
            // other dimensions, those with which every value that ran at all succeeded. (Over
            // all its successful steps, a value whose high-rate steps failed would look better
            // or worse for the rates it kept, not for itself.)
            let others =
                |s: &StepResult| varied.iter().filter(|d| **d != dim).map(|d| s.config.value(d)).collect::<Vec<_>>();
            let mut settings: HashMap<String, HashSet<Vec<String>>> = HashMap::new();
            for s in &ok {
                settings.entry(s.config.value(dim)).or_default().insert(others(s));
            }
            let shared: HashSet<Vec<String>> = settings
                .values()
                .cloned()
                .reduce(|shared, these| shared.intersection(&these).cloned().collect())
                .unwrap_or_default();
            let rows = values
                .into_iter()
                .map(|v| {
                    let succeeded = ok.iter().filter(|s| s.config.value(dim) == v).count();
                    let with: Vec<&&StepResult> =
                        ok.iter().filter(|s| s.config.value(dim) == v && shared.contains(&others(s))).collect();
                    let mean = |f: &dyn Fn(&StepResult) -> f64| {
                        (!with.is_empty()).then(|| with.iter().map(|s| f(s)).sum::<f64>() / with.len() as f64)
                    };
                    Effect {
                        value: v,
                        msgs_per_sec: mean(&throughput),
                        p99_us: mean(&|s| p99(s) as f64),
                        steps: with.len(),
                        succeeded,
                    }
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
        if best_is_sustained {
            advice.push(format!(
                "The highest sustained fixed-rate step carried {:.0} msgs/s ({:.1} MB/s) at `{}` with publish p99 {}. \
                 That is a rate this sweep *offered*, not the configuration's limit: run `kafka-loadgen capacity` \
                 for the maximum rate at your latency SLO, and plan at {:.0} % of it.",
                m.produced.msgs_per_sec,
                m.produced.mb_per_sec,
                best.label,
                crate::report::pct(&m.publish_latency, 0.99),
                crate::sizing::PLAN_SHARE * 100.0
            ));
        } else {
            advice.push(format!(
                "No fixed-rate step was sustained; the best closed-loop step saturated at {:.0} msgs/s ({:.1} MB/s) \
                 with publish p99 {}, which is latency at saturation. Use `kafka-loadgen capacity` to find a rate \
                 that meets an SLO.",
                m.produced.msgs_per_sec,
                m.produced.mb_per_sec,
                crate::report::pct(&m.publish_latency, 0.99)
            ));
        }
    }
    for s in &ok {
        if let (Rate::PerSecond(rate), Some(m)) = (s.config.rate, &s.measurement)
            && let Some(v) = m.verdict.as_ref().filter(|v| !v.sustained)
        {
            advice.push(format!(
                "Step {} was offered {rate} msgs/s and achieved {:.0}: not sustained ({}).",
                s.index,
                m.produced.msgs_per_sec,
                v.reasons.join("; ")
            ));
        }
    }
    let failed = result.steps.iter().filter(|s| !s.ok()).count();
    if failed > 0 {
        advice.push(format!(
            "{failed} step(s) failed; their reasons are listed below and they are excluded from the advice."
        ));
    }
    let open = result.steps.iter().filter(|s| matches!(s.config.rate, Rate::PerSecond(_))).count();
    let not_held = open - result.steps.iter().filter(|s| sustained(s)).count();
    let answer = match best_throughput {
        Some(best) => {
            let m = best.measurement.as_ref().expect("measured");
            if best_is_sustained {
                format!(
                    "Sustained {:.1} MB/s ({} msgs/s) at publish p99 {} with settings `{}` (step {}); {not_held} of {open} \
                     fixed-rate steps were not sustained. This is the best rate offered, not the limit: \
                     `kafka-loadgen capacity` finds the maximum at an SLO.",
                    m.produced.mb_per_sec,
                    crate::report::count(m.produced.msgs_per_sec),
                    crate::report::pct(&m.publish_latency, 0.99),
                    best.label,
                    best.index
                )
            } else {
                format!(
                    "No fixed-rate step was sustained; at saturation (closed loop) the best step carried {:.1} MB/s \
                     ({} msgs/s) with publish p99 {} at settings `{}`.",
                    m.produced.mb_per_sec,
                    crate::report::count(m.produced.msgs_per_sec),
                    crate::report::pct(&m.publish_latency, 0.99),
                    best.label
                )
            }
        }
        None => "No step succeeded.".to_owned(),
    };
    Analysis { best_throughput, best_is_sustained, answer, best_p99, frontier, effects, advice }
}
