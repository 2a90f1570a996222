//! `capacity`: the maximum sustainable rate of each configuration at a latency SLO.
//!
//! ```text
//!   per configuration (every swept setting but the rate):
//!     ramp    start, 2×, 4×, …  open-loop probes until one fails (or the ceiling)
//!             (the first fails? halve until one passes)
//!     bisect  geometric midpoint of [highest pass, lowest fail] until (fail − pass)/pass ≤ 5 %
//!     repeat  the highest passing rate 3× more: mean achieved rate ± 95 % interval
//!             (most repeats fail? step down by 2 × precision and repeat, at most twice)
//! ```
//!
//! Every probe is a step of its own: a fresh topic, its own warm-up, a measured phase and a
//! cool-down, judged by the pass rule of [`crate::verdict`] *and* the SLO. The search never
//! trusts a backlog signal (OpenMessaging Benchmark's rate controller settles on wrong rates
//! that way): a rate passes only if everything offered was delivered on time.
//!
//! The whole search is bounded by `--budget`; the plan and its expected length are printed
//! before the first probe, and a configuration the budget does not reach says so.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::histogram::Percentiles;
use crate::scenario::{Rate, Scenario, StepConfig};
use crate::sizing::{self, Sizing, UslFit};
use crate::sweep::{self, Environment, StepResult};
use crate::target::{Target, TargetInfo};
use crate::verdict::{self, Slo};

/// The format tag of `capacity.json`.
pub const FORMAT: &str = "kafka-loadgen-capacity/1";

/// How the search runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpec {
    /// The latency objective.
    pub slo: Slo,
    /// Upper bound of the whole search.
    #[serde(with = "crate::scenario::values::human_duration")]
    pub budget: Duration,
    /// Repeats of the final probe.
    pub repeats: u32,
    /// First ramp rate, msgs/s.
    pub start_rate: u64,
    /// Highest rate tried, msgs/s.
    pub max_rate: u64,
    /// Relative width at which bisection stops.
    pub precision: f64,
}

/// The plan, printed before the first probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Configurations searched.
    pub configurations: usize,
    /// Length of one probe (warm-up + measured + cool-down + topic and drain), seconds.
    pub probe_seconds: f64,
    /// Probes expected per configuration (ramp + bisection + repeats).
    pub probes_per_configuration: u32,
    /// Expected length of the whole search, seconds (capped by the budget).
    pub expected_seconds: f64,
}

impl Plan {
    /// What will happen, in words.
    pub fn describe(&self, spec: &SearchSpec) -> String {
        let total = self.configurations as f64 * self.probes_per_configuration as f64 * self.probe_seconds;
        let mut text = format!(
            "capacity plan: {} configuration(s) × ~{} probes × {:.1} s ≈ {} (budget {}); \
             ramp ×2 from {} msgs/s, bisect to {:.0} %, repeat the final probe {}×; \
             pass = sustained (pass rule) and publish p99 ≤ {:.1} ms{}",
            self.configurations,
            self.probes_per_configuration,
            self.probe_seconds,
            humantime::format_duration(Duration::from_secs(total.round() as u64)),
            humantime::format_duration(spec.budget),
            spec.start_rate,
            spec.precision * 100.0,
            spec.repeats,
            spec.slo.publish_p99_us as f64 / 1e3,
            spec.slo.e2e_p99_us.map(|e| format!(" and end-to-end p99 ≤ {:.1} ms", e as f64 / 1e3)).unwrap_or_default()
        );
        if total > spec.budget.as_secs_f64() {
            text.push_str(&format!(
                "\n  the budget is shorter than the plan: expect about {} configuration(s) to finish",
                ((spec.budget.as_secs_f64() / (self.probes_per_configuration as f64 * self.probe_seconds)).floor()
                    as usize)
                    .min(self.configurations)
            ));
        }
        text
    }
}

/// One probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// `ramp`, `bisect` or `repeat`.
    pub phase: String,
    /// Offered rate, msgs/s.
    pub rate: u64,
    /// Passed the pass rule and the SLO.
    pub passed: bool,
    /// Achieved rate, msgs/s, as the pass rule counts it: acknowledged messages over the
    /// window from the first send to the last acknowledgement, less one message transit.
    pub achieved_msgs_per_sec: f64,
    /// Achieved rate, MB/s (the same way).
    pub achieved_mb_per_sec: f64,
    /// Publish latency.
    pub publish: Percentiles,
    /// End-to-end latency.
    pub end_to_end: Option<Percentiles>,
    /// Consumer throughput over its own window, msgs/s.
    pub consumed_msgs_per_sec: Option<f64>,
    /// Failed / (acknowledged + failed).
    pub error_rate: f64,
    /// Why it failed.
    pub reasons: Vec<String>,
    /// Index into [`CapacityResult::steps`] (1-based, as the step's index).
    pub step: usize,
    /// Whether the step measured anything (a step that failed before sending, say its topic
    /// could not be created, did not: its achieved rate is no measurement and is left out of
    /// means). Files written before this field count every probe as measured.
    #[serde(default = "measured_by_default")]
    pub measured: bool,
}

fn measured_by_default() -> bool {
    true
}

/// One configuration's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigCapacity {
    /// The configuration (its `rate` is the sustained rate found, or `max` when none).
    pub config: StepConfig,
    /// Its label without the rate.
    pub label: String,
    /// `found`, `none` (not even the lowest rate passed), `ceiling` (the highest rate passed),
    /// `budget` (stopped by the budget; the bracket so far) or `unstable` (repeats kept failing
    /// after two step-downs).
    pub status: String,
    /// The highest rate that passed, msgs/s.
    pub sustained_msgs_per_sec: Option<f64>,
    /// The same in MB/s (payload bytes).
    pub sustained_mb_per_sec: Option<f64>,
    /// Mean achieved rate over the repeats, and its 95 % interval, msgs/s.
    pub repeat_mean_msgs_per_sec: Option<f64>,
    /// 95 % interval of the mean, msgs/s `(low, high)`.
    pub interval_msgs_per_sec: Option<(f64, f64)>,
    /// The same interval, MB/s.
    pub interval_mb_per_sec: Option<(f64, f64)>,
    /// Repeats that passed, of those run.
    pub repeats_passed: (u32, u32),
    /// The lowest rate that failed, msgs/s.
    pub lowest_failing_rate: Option<u64>,
    /// Publish p99 at the sustained rate (worst repeat), µs.
    pub publish_p99_us: Option<u64>,
    /// Consumer throughput at the sustained rate, msgs/s.
    pub consumed_msgs_per_sec: Option<f64>,
    /// Every probe, in order.
    pub probes: Vec<Probe>,
}

/// What `capacity` writes to `capacity.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityResult {
    /// [`FORMAT`].
    pub format: String,
    /// The scenario as run (its rate dimension ignored).
    pub scenario: Scenario,
    /// The search settings.
    pub search: SearchSpec,
    /// The plan printed up front.
    pub plan: Plan,
    /// Versions, host, command line.
    pub environment: Environment,
    /// The cluster.
    pub target: TargetInfo,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    pub finished_at: String,
    /// One per configuration.
    pub configurations: Vec<ConfigCapacity>,
    /// Every probe as a sweep step (for the charts and the `.hlog` files).
    pub steps: Vec<StepResult>,
    /// Sizing, when a target rate was given.
    pub sizing: Option<Sizing>,
    /// USL fits over concurrency dimensions with three or more values.
    pub usl: Vec<UslFit>,
}

impl CapacityResult {
    /// The configuration the answer names, which is also the one the sizing (if any) was
    /// computed from: see [`headline`].
    pub fn best(&self) -> Option<&ConfigCapacity> {
        headline(&self.configurations, self.sizing.as_ref().map(|s| &s.input.target))
    }

    /// What [`best`](Self::best) ranks configurations by: MB/s, or msgs/s for a message target.
    pub fn rank_load(&self, c: &ConfigCapacity) -> f64 {
        sustained(c, ranks_by_bytes(self.sizing.as_ref().map(|s| &s.input.target)))
    }
}

/// Configurations are ranked by the bytes they carried, unless the target is in messages.
fn ranks_by_bytes(target: Option<&sizing::RateSpec>) -> bool {
    !matches!(target, Some(sizing::RateSpec::Msgs(_)))
}

/// The configuration that answers: for a message target the one that sustained the most
/// msgs/s; for a byte target, or without a target, the one that sustained the most MB/s
/// (configurations whose messages differ in size carry different loads at the same msgs/s).
/// The answer and the sizing both use it, so the partitions the answer prints are that
/// configuration's.
fn headline<'a>(configurations: &'a [ConfigCapacity], target: Option<&sizing::RateSpec>) -> Option<&'a ConfigCapacity> {
    highest(configurations, ranks_by_bytes(target))
}

/// The configuration that sustained the most: in MB/s with `by_bytes` (configurations whose
/// messages differ in size carry different loads at the same msgs/s), else in msgs/s.
fn highest(configurations: &[ConfigCapacity], by_bytes: bool) -> Option<&ConfigCapacity> {
    configurations
        .iter()
        .filter(|c| c.sustained_msgs_per_sec.is_some())
        .max_by(|a, b| sustained(a, by_bytes).total_cmp(&sustained(b, by_bytes)))
}

/// What `c` sustained: MB/s with `by_bytes`, else msgs/s (0 when nothing passed).
fn sustained(c: &ConfigCapacity, by_bytes: bool) -> f64 {
    if by_bytes { c.sustained_mb_per_sec } else { c.sustained_msgs_per_sec }.unwrap_or(0.0)
}

/// Sizing inputs apart from what the search measures.
#[derive(Debug, Clone)]
pub struct SizingRequest {
    /// Target rate.
    pub target: sizing::RateSpec,
    /// Growth headroom.
    pub growth: f64,
    /// Retention.
    pub retention: Duration,
    /// Consumer groups.
    pub consumer_groups: u32,
    /// Per-consumer processing rate (default: what the tool's consumer read).
    pub consumer_rate: Option<sizing::RateSpec>,
}

/// The configurations: every step of the scenario with the rate dimension removed.
pub fn configurations(steps: &[StepConfig]) -> Vec<StepConfig> {
    let mut configs: Vec<StepConfig> = Vec::new();
    for s in steps {
        let c = StepConfig { rate: Rate::Max, ..*s };
        if !configs.contains(&c) {
            configs.push(c);
        }
    }
    configs
}

/// The expected length of one probe.
pub fn probe_seconds(scenario: &Scenario) -> f64 {
    let p = &scenario.phases;
    // Topic creation, consumer assignment and the end-to-end drain: about a second.
    (p.warmup + p.duration + p.cooldown).as_secs_f64() + 1.0
}

/// Expected probes per configuration: a ramp of ~7 doublings, bisection from a factor of 2
/// down to `precision`, and the repeats.
pub fn probes_per_configuration(spec: &SearchSpec) -> u32 {
    let bisect = (2f64.ln() / (1.0 + spec.precision).ln()).log2().ceil().max(1.0) as u32;
    7 + bisect + spec.repeats
}

/// Runs the search for every configuration; `observer` sees every probe.
pub fn run(
    target: &dyn Target,
    scenario: &Scenario,
    spec: &SearchSpec,
    sizing_request: Option<&SizingRequest>,
    out_dir: &std::path::Path,
    log: &dyn Fn(&str),
) -> Result<CapacityResult> {
    let mut steps = scenario.validate()?;
    let scenario = &sweep::prepare(target, scenario, &mut steps)?;
    let configs = configurations(&steps);
    std::fs::create_dir_all(out_dir).map_err(|e| crate::Error::io(format!("creating {}", out_dir.display()), e))?;
    let plan = Plan {
        configurations: configs.len(),
        probe_seconds: probe_seconds(scenario),
        probes_per_configuration: probes_per_configuration(spec),
        expected_seconds: (configs.len() as f64 * probes_per_configuration(spec) as f64 * probe_seconds(scenario))
            .min(spec.budget.as_secs_f64()),
    };
    log(&plan.describe(spec));
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let started = Instant::now();
    let run_id = sweep::run_id();
    let mut payloads = sweep::PayloadCache::new(scenario)?;
    let mut all_steps: Vec<StepResult> = Vec::new();
    let mut results = Vec::new();
    for (ci, config) in configs.iter().enumerate() {
        let mut search = Search { spec, config, probes: Vec::new() };
        let out_of_budget = || started.elapsed().as_secs_f64() + plan.probe_seconds > spec.budget.as_secs_f64();
        let mut probe = |phase: &str, rate: u64, all_steps: &mut Vec<StepResult>| -> Option<Probe> {
            if out_of_budget() {
                return None;
            }
            let step = StepConfig { rate: Rate::PerSecond(rate), ..*config };
            let index = all_steps.len() + 1;
            let topic = format!("loadgen-{run_id}-c{:02}-{index:03}", ci + 1);
            let result =
                sweep::run_one(target, scenario, &step, index, &topic, payloads.get(&step), out_dir, &|_, _| {});
            let probe = judge_probe(phase, rate, &result, &spec.slo);
            log(&format!(
                "  config {}/{} {phase:>6} {rate:>9} msgs/s → {} achieved {:.0} msgs/s, publish p99 {}{}",
                ci + 1,
                configs.len(),
                if probe.passed { "pass" } else { "FAIL" },
                probe.achieved_msgs_per_sec,
                crate::report::micros(probe.publish.p99),
                if probe.reasons.is_empty() { String::new() } else { format!(" ({})", probe.reasons.join("; ")) }
            ));
            all_steps.push(result);
            Some(probe)
        };
        let status = search.run(&mut |phase, rate| probe(phase, rate, &mut all_steps));
        results.push(search.finish(status, scenario));
    }
    let finished_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let info = target.info();
    let sizing = sizing_request.and_then(|r| size_best(&results, scenario, &info, r));
    let usl = fit_concurrency(&results);
    Ok(CapacityResult {
        format: FORMAT.into(),
        scenario: scenario.clone(),
        search: spec.clone(),
        plan,
        environment: Environment::current(),
        target: info,
        started_at,
        finished_at,
        configurations: results,
        steps: all_steps,
        sizing,
        usl,
    })
}

/// Judges one probe: the pass rule, then the SLO.
pub fn judge_probe(phase: &str, rate: u64, result: &StepResult, slo: &Slo) -> Probe {
    let mut reasons = Vec::new();
    let mut probe = Probe {
        phase: phase.into(),
        rate,
        passed: false,
        achieved_msgs_per_sec: 0.0,
        achieved_mb_per_sec: 0.0,
        publish: Percentiles::default(),
        end_to_end: None,
        consumed_msgs_per_sec: None,
        error_rate: 0.0,
        reasons: Vec::new(),
        step: result.index,
        measured: result.measurement.is_some(),
    };
    if !result.ok() {
        reasons.push(format!("step failed: {}", result.failure.as_deref().unwrap_or("unknown")));
    }
    if let Some(m) = &result.measurement {
        // As the pass rule counts it (one transit off the window), so that a probe's achieved
        // rate, its verdict and the sustained rate agree.
        let achieved = match (&m.verdict, m.offered_msgs_per_sec) {
            (Some(v), Some(offered)) if m.produced.msgs_per_sec > 0.0 => v.achieved_ratio * offered,
            _ => m.produced.msgs_per_sec,
        };
        let scale = if m.produced.msgs_per_sec > 0.0 { achieved / m.produced.msgs_per_sec } else { 1.0 };
        probe.achieved_msgs_per_sec = achieved;
        probe.achieved_mb_per_sec = m.produced.mb_per_sec * scale;
        probe.publish = m.publish_latency;
        probe.end_to_end = m.end_to_end_latency;
        probe.consumed_msgs_per_sec = m.consumed.map(|c| c.msgs_per_sec);
        probe.error_rate = m.error_rate;
        match &m.verdict {
            Some(v) => reasons.extend(v.reasons.iter().cloned()),
            None => reasons.push("no verdict (closed loop)".into()),
        }
        reasons.extend(verdict::slo_misses(slo, m.publish_latency.p99, m.end_to_end_latency.map(|e| e.p99)));
    } else if result.ok() {
        reasons.push("nothing measured".into());
    }
    probe.passed = reasons.is_empty();
    probe.reasons = reasons;
    probe
}

/// The search state of one configuration.
struct Search<'a> {
    spec: &'a SearchSpec,
    config: &'a StepConfig,
    probes: Vec<Probe>,
}

impl Search<'_> {
    /// Ramp, bisect, repeat; `probe` returns `None` when the budget is spent.
    fn run(&mut self, probe: &mut dyn FnMut(&str, u64) -> Option<Probe>) -> &'static str {
        let floor = u64::from(self.config.producers).max(10);
        let mut rate = self.spec.start_rate.clamp(floor, self.spec.max_rate.max(floor));
        let (mut pass, mut fail): (Option<u64>, Option<u64>) = (None, None);
        let mut step = |phase: &str, rate: u64, probes: &mut Vec<Probe>| -> Option<bool> {
            let p = probe(phase, rate)?;
            let ok = p.passed;
            probes.push(p);
            Some(ok)
        };
        // Ramp up (or down, when the first rate already fails).
        loop {
            let Some(ok) = step("ramp", rate, &mut self.probes) else { return "budget" };
            if ok {
                pass = Some(rate);
                if fail.is_some() {
                    break;
                }
                if rate >= self.spec.max_rate {
                    break;
                }
                rate = (rate * 2).min(self.spec.max_rate);
            } else {
                fail = Some(rate);
                if pass.is_some() {
                    break;
                }
                if rate <= floor {
                    return "none";
                }
                rate = (rate / 2).max(floor);
            }
        }
        // Bisect on a geometric scale.
        while let (Some(lo), Some(hi)) = (pass, fail) {
            if (hi - lo) as f64 / lo as f64 <= self.spec.precision || hi - lo <= 1 {
                break;
            }
            let mid = ((lo as f64 * hi as f64).sqrt().round() as u64).clamp(lo + 1, hi - 1);
            match step("bisect", mid, &mut self.probes) {
                None => return "budget",
                Some(true) => pass = Some(mid),
                Some(false) => fail = Some(mid),
            }
        }
        let Some(mut lo) = pass else { return "none" };
        // Repeat; when most repeats fail the rate was luck, so step down and repeat again.
        for attempt in 0..3 {
            let mut passed = 0;
            for _ in 0..self.spec.repeats {
                match step("repeat", lo, &mut self.probes) {
                    None => return "budget",
                    Some(ok) => passed += u32::from(ok),
                }
            }
            if self.spec.repeats == 0 || passed * 2 > self.spec.repeats {
                return if fail.is_none() { "ceiling" } else { "found" };
            }
            if attempt == 2 {
                break;
            }
            lo = ((lo as f64 * (1.0 - 2.0 * self.spec.precision)).round() as u64).max(floor);
        }
        "unstable"
    }

    fn finish(self, status: &str, scenario: &Scenario) -> ConfigCapacity {
        // The answer is the highest rate whose repeats mostly passed; without repeats (the
        // budget ran out first, or none asked), the highest passing probe.
        let repeated: Vec<u64> = {
            let mut rates: Vec<u64> = self.probes.iter().filter(|p| p.phase == "repeat").map(|p| p.rate).collect();
            rates.dedup();
            rates
        };
        let mostly_passed = |r: u64| {
            let group: Vec<&Probe> = self.probes.iter().filter(|p| p.phase == "repeat" && p.rate == r).collect();
            group.iter().filter(|p| p.passed).count() * 2 > group.len()
        };
        let stable = repeated.iter().copied().filter(|&r| mostly_passed(r)).max();
        let best = match (stable, repeated.is_empty() || status == "budget") {
            (Some(r), _) => Some(r),
            // Never a rate whose repeats mostly failed (the budget ran out before the rate
            // below it was repeated): a passing probe there was luck.
            (None, true) => {
                self.probes.iter().filter(|p| p.passed && !repeated.contains(&p.rate)).map(|p| p.rate).max()
            }
            (None, false) => None,
        };
        let lowest_fail =
            self.probes.iter().filter(|p| !p.passed && best.is_none_or(|b| p.rate > b)).map(|p| p.rate).min();
        let at_best: Vec<&Probe> = self.probes.iter().filter(|p| Some(p.rate) == best).collect();
        let repeats: Vec<&Probe> = at_best.iter().copied().filter(|p| p.phase == "repeat").collect();
        // The mean and its interval describe the repeats only: the ramp or bisection probe
        // that found the rate is there because it passed, and would pull them up. Without
        // repeats (the budget ran out first, or none were asked) that probe is all there is.
        let sample = if repeats.is_empty() { &at_best } else { &repeats };
        let achieved: Vec<f64> = sample.iter().filter(|p| p.measured).map(|p| p.achieved_msgs_per_sec).collect();
        let size = message_bytes(&self.probes, self.config);
        let (mean, half) = sizing::mean_ci95(&achieved);
        let interval = (achieved.len() >= 2 && half.is_finite()).then_some((mean - half, mean + half));
        let _ = scenario;
        ConfigCapacity {
            config: StepConfig { rate: best.map_or(Rate::Max, Rate::PerSecond), ..*self.config },
            label: self.config.label_without_rate(),
            status: if best.is_none() && !matches!(status, "budget" | "unstable") {
                "none".into()
            } else {
                status.into()
            },
            sustained_msgs_per_sec: best.map(|b| b as f64),
            sustained_mb_per_sec: best.map(|b| b as f64 * size / 1e6),
            repeat_mean_msgs_per_sec: (!achieved.is_empty()).then_some(mean),
            interval_msgs_per_sec: interval,
            interval_mb_per_sec: interval.map(|(a, b)| (a * size / 1e6, b * size / 1e6)),
            repeats_passed: (repeats.iter().filter(|p| p.passed).count() as u32, repeats.len() as u32),
            lowest_failing_rate: lowest_fail,
            publish_p99_us: at_best.iter().filter(|p| p.passed).map(|p| p.publish.p99).max(),
            consumed_msgs_per_sec: at_best
                .iter()
                .filter_map(|p| p.consumed_msgs_per_sec)
                .fold(None, |a: Option<f64>, c| Some(a.map_or(c, |a| a.min(c)))),
            probes: self.probes,
        }
    }
}

/// The mean size of the messages a configuration's probes sent, in bytes: measured (bytes
/// acknowledged per message acknowledged), which is what `--payload-file` or a recorded
/// payload makes them, not the `size` setting; that setting only without measurements.
fn message_bytes(probes: &[Probe], config: &StepConfig) -> f64 {
    let (bytes, msgs) = probes
        .iter()
        .filter(|p| p.achieved_msgs_per_sec > 0.0 && p.achieved_mb_per_sec > 0.0)
        .fold((0.0, 0.0), |(b, m), p| (b + p.achieved_mb_per_sec * 1e6, m + p.achieved_msgs_per_sec));
    if msgs > 0.0 { bytes / msgs } else { f64::from(config.message_size) }
}

fn size_best(
    results: &[ConfigCapacity],
    scenario: &Scenario,
    info: &TargetInfo,
    request: &SizingRequest,
) -> Option<Sizing> {
    // A byte target is met by the configuration that carries the most bytes; a message
    // target by the one that carries the most messages: the one the answer names.
    let best = headline(results, Some(&request.target))?;
    let rate = best.sustained_msgs_per_sec?;
    let c = &best.config;
    let size = message_bytes(&best.probes, c);
    let per_consumer = match request.consumer_rate {
        Some(r) => r.msgs(size),
        None => best.consumed_msgs_per_sec.unwrap_or(rate),
    };
    let _ = scenario;
    Some(sizing::size(
        &sizing::SizingInput {
            target: request.target,
            growth: request.growth,
            retention: request.retention,
            replication_factor: c.replication_factor.or(1),
            consumer_groups: request.consumer_groups,
            brokers: u32::try_from(info.brokers.max(1)).unwrap_or(1),
            message_size: size,
        },
        &sizing::MeasuredRates {
            per_partition: rate / f64::from(c.partitions),
            partitions_tested: c.partitions,
            per_producer: rate / f64::from(c.producers),
            per_consumer,
        },
    ))
}

/// Fits the USL over every group of configurations that differ only in producers (or only
/// in partitions) and have three or more values of it.
pub fn fit_concurrency(results: &[ConfigCapacity]) -> Vec<UslFit> {
    let mut fits = Vec::new();
    for dimension in ["producers", "partitions"] {
        let mut groups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for r in results {
            let Some(x) = r.sustained_msgs_per_sec else { continue };
            let mut key = r.config;
            let n = match dimension {
                "producers" => std::mem::replace(&mut key.producers, 0),
                _ => std::mem::replace(&mut key.partitions, 0),
            };
            let label = key.label_without_rate();
            match groups.iter_mut().find(|g| g.0 == label) {
                Some(g) => g.1.push((f64::from(n), x)),
                None => groups.push((label, vec![(f64::from(n), x)])),
            }
        }
        for (label, points) in groups {
            if let Some(fit) = sizing::fit_usl(dimension, &label, &points) {
                fits.push(fit);
            }
        }
    }
    fits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SearchSpec {
        SearchSpec {
            slo: Slo::new(Duration::from_millis(20), None),
            budget: Duration::from_secs(3600),
            repeats: 3,
            start_rate: 1000,
            max_rate: 1_000_000,
            precision: 0.05,
        }
    }

    fn fake(rate: u64, capacity: u64, phase: &str) -> Probe {
        Probe {
            phase: phase.into(),
            rate,
            passed: rate <= capacity,
            achieved_msgs_per_sec: rate.min(capacity) as f64,
            achieved_mb_per_sec: 0.0,
            publish: Percentiles::default(),
            end_to_end: None,
            consumed_msgs_per_sec: Some(rate as f64),
            error_rate: 0.0,
            reasons: Vec::new(),
            step: 0,
            measured: true,
        }
    }

    /// A system that sustains 7 300 msgs/s: ramp 1000 … 8000 (fails), bisect to within 5 %,
    /// then three repeats at the highest passing rate.
    #[test]
    fn a_system_sustaining_7300_is_found_within_5_percent_below() {
        let spec = spec();
        let config = StepConfig::default();
        let mut search = Search { spec: &spec, config: &config, probes: Vec::new() };
        let status = search.run(&mut |phase, rate| Some(fake(rate, 7300, phase)));
        assert_eq!(status, "found");
        let ramp: Vec<u64> = search.probes.iter().filter(|p| p.phase == "ramp").map(|p| p.rate).collect();
        assert_eq!(ramp, vec![1000, 2000, 4000, 8000]);
        let result = search.finish(status, &Scenario::default());
        let found = result.sustained_msgs_per_sec.unwrap();
        assert!((7300.0 / 1.05..=7300.0).contains(&found), "{found}");
        let fail = result.lowest_failing_rate.unwrap() as f64;
        assert!((fail - found) / found <= 0.05);
        assert_eq!(result.repeats_passed, (3, 3));
        assert!(result.interval_msgs_per_sec.is_some());
    }

    /// The probe that found the rate passed by selection: the mean and interval are the
    /// repeats' own, not pulled up by it.
    #[test]
    fn the_repeat_mean_is_the_repeats_own() {
        let spec = spec();
        let config = StepConfig::default();
        let mut search = Search { spec: &spec, config: &config, probes: Vec::new() };
        let status = search.run(&mut |phase, rate| {
            let mut p = fake(rate, 7300, phase);
            // The finding probe achieved the full rate; its repeats 5 % less (still passing).
            if phase == "repeat" {
                p.achieved_msgs_per_sec = rate as f64 * 0.95;
            }
            Some(p)
        });
        let r = search.finish(status, &Scenario::default());
        let found = r.sustained_msgs_per_sec.unwrap();
        assert_eq!(r.repeats_passed, (3, 3));
        let mean = r.repeat_mean_msgs_per_sec.unwrap();
        assert!((mean - found * 0.95).abs() < 1e-6, "mean {mean} of repeats at {found}");
        let (low, high) = r.interval_msgs_per_sec.unwrap();
        assert!((low - found * 0.95).abs() < 1e-6 && (high - found * 0.95).abs() < 1e-6, "{low}–{high}");
    }

    /// A repeat whose step measured nothing (it failed before sending) is no rate of 0: it is
    /// left out of the mean and the interval.
    #[test]
    fn a_repeat_that_measured_nothing_is_not_a_zero_in_the_mean() {
        let spec = spec();
        let config = StepConfig::default();
        let mut search = Search { spec: &spec, config: &config, probes: Vec::new() };
        let mut repeats = 0;
        let status = search.run(&mut |phase, rate| {
            let mut p = fake(rate, 7300, phase);
            if phase == "repeat" {
                repeats += 1;
                if repeats == 3 {
                    // Its topic could not be created: failed, nothing measured.
                    (p.passed, p.measured, p.achieved_msgs_per_sec) = (false, false, 0.0);
                }
            }
            Some(p)
        });
        let r = search.finish(status, &Scenario::default());
        let found = r.sustained_msgs_per_sec.unwrap();
        assert_eq!(r.repeats_passed, (2, 3));
        assert_eq!(r.repeat_mean_msgs_per_sec, Some(found), "the two measured repeats achieved {found}");
        let (low, high) = r.interval_msgs_per_sec.unwrap();
        assert!((low - found).abs() < 1e-6 && (high - found).abs() < 1e-6, "{low}–{high}");
    }

    /// Repeats at the found rate fail twice in three: step down 10 % and repeat again.
    #[test]
    fn repeats_that_mostly_fail_step_the_rate_down() {
        let spec = spec();
        let config = StepConfig::default();
        let mut search = Search { spec: &spec, config: &config, probes: Vec::new() };
        let mut repeats_at_top = 0;
        let status = search.run(&mut |phase, rate| {
            let mut p = fake(rate, 7300, phase);
            if phase == "repeat" && rate > 7000 {
                repeats_at_top += 1;
                p.passed = repeats_at_top == 1;
            }
            Some(p)
        });
        assert_eq!(status, "found");
        let r = search.finish(status, &Scenario::default());
        let found = r.sustained_msgs_per_sec.unwrap();
        assert!(found < 7000.0, "{found}");
        assert_eq!(r.repeats_passed, (3, 3));
    }

    /// With `--payload-file` the `size` setting is not what was sent: MB/s come from the
    /// bytes measured (300 B lines here, against the default 1024).
    #[test]
    fn megabytes_come_from_the_measured_message_size() {
        let spec = spec();
        let config = StepConfig::default();
        assert_eq!(config.message_size, 1024);
        let mut search = Search { spec: &spec, config: &config, probes: Vec::new() };
        let status = search.run(&mut |phase, rate| {
            let mut p = fake(rate, 7300, phase);
            p.achieved_mb_per_sec = p.achieved_msgs_per_sec * 300.0 / 1e6;
            Some(p)
        });
        let r = search.finish(status, &Scenario::default());
        let (msgs, mb) = (r.sustained_msgs_per_sec.unwrap(), r.sustained_mb_per_sec.unwrap());
        assert!((mb - msgs * 300.0 / 1e6).abs() < 1e-9, "{mb} MB/s for {msgs} msgs/s");
    }

    /// The budget runs out after repeats at the top rate mostly failed and before the rate
    /// below was repeated: the answer is not that rate.
    #[test]
    fn a_rate_whose_repeats_mostly_failed_is_never_the_answer() {
        let spec = spec();
        let config = StepConfig::default();
        let mut search = Search { spec: &spec, config: &config, probes: Vec::new() };
        let mut repeats = 0;
        let status = search.run(&mut |phase, rate| {
            if phase == "repeat" {
                repeats += 1;
                if repeats > 3 {
                    return None; // the budget ends before the step down is repeated
                }
            }
            let mut p = fake(rate, 7300, phase);
            p.passed &= phase != "repeat" || repeats == 1;
            Some(p)
        });
        assert_eq!(status, "budget");
        let r = search.finish(status, &Scenario::default());
        let top_repeated = r.probes.iter().find(|p| p.phase == "repeat").unwrap().rate;
        let answer = r.sustained_msgs_per_sec.map(|s| s as u64);
        assert!(answer.is_some_and(|a| a < top_repeated), "{answer:?} vs repeats at {top_repeated}");
    }

    /// 100 B messages at 7 300 msgs/s carry 0.7 MB/s; 10 KB messages at 3 000 msgs/s carry
    /// 30 MB/s: the best in bytes is not the best in messages.
    #[test]
    fn with_sizes_that_differ_the_best_is_ranked_by_bytes() {
        let spec = spec();
        let run = |size: u32, capacity: u64| {
            let config = StepConfig { message_size: size, ..StepConfig::default() };
            let mut search = Search { spec: &spec, config: &config, probes: Vec::new() };
            let status = search.run(&mut |phase, rate| {
                let mut p = fake(rate, capacity, phase);
                p.achieved_mb_per_sec = p.achieved_msgs_per_sec * f64::from(size) / 1e6;
                Some(p)
            });
            search.finish(status, &Scenario::default())
        };
        let results = vec![run(100, 7300), run(10_000, 3000)];
        assert_eq!(highest(&results, true).unwrap().config.message_size, 10_000);
        assert_eq!(highest(&results, false).unwrap().config.message_size, 100);
        // The answer names the configuration the sizing used: the most msgs/s for a message
        // target, the most MB/s otherwise.
        let size_of = |target: Option<&sizing::RateSpec>| headline(&results, target).unwrap().config.message_size;
        assert_eq!(size_of(Some(&sizing::RateSpec::Msgs(20_000.0))), 100);
        assert_eq!(size_of(Some(&sizing::RateSpec::Bytes(50e6))), 10_000);
        assert_eq!(size_of(None), 10_000);
    }

    #[test]
    fn a_first_rate_that_fails_ramps_down() {
        let spec = spec();
        let config = StepConfig::default();
        let mut search = Search { spec: &spec, config: &config, probes: Vec::new() };
        let status = search.run(&mut |phase, rate| Some(fake(rate, 300, phase)));
        assert_eq!(status, "found");
        let found = search.finish(status, &Scenario::default()).sustained_msgs_per_sec.unwrap();
        assert!((300.0 / 1.05..=300.0).contains(&found), "{found}");
    }

    #[test]
    fn the_budget_stops_the_search_with_the_bracket_so_far() {
        let spec = spec();
        let config = StepConfig::default();
        let mut search = Search { spec: &spec, config: &config, probes: Vec::new() };
        let mut left = 3;
        let status = search.run(&mut |phase, rate| {
            left -= 1;
            (left >= 0).then(|| fake(rate, 7300, phase))
        });
        assert_eq!(status, "budget");
        let r = search.finish(status, &Scenario::default());
        assert_eq!(r.status, "budget");
        assert_eq!(r.sustained_msgs_per_sec, Some(4000.0));
    }

    #[test]
    fn the_plan_states_its_length_and_warns_when_the_budget_is_short() {
        let mut s = spec();
        s.budget = Duration::from_secs(60);
        let plan = Plan { configurations: 4, probe_seconds: 4.5, probes_per_configuration: 15, expected_seconds: 60.0 };
        let text = plan.describe(&s);
        assert!(text.contains("4 configuration(s) × ~15 probes × 4.5 s ≈ 4m 30s"), "{text}");
        assert!(text.contains("expect about 0 configuration(s) to finish"), "{text}");
        assert_eq!(probes_per_configuration(&spec()), 7 + 4 + 3);
    }
}
