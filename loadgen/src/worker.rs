//! Worker mode: one of N processes (a Kubernetes Indexed Job's pods) running the same sweep
//! together against one cluster, each with its share of the load, all starting at the same
//! wall-clock time.
//!
//! ```text
//!  pod i of N (JOB_COMPLETION_INDEX=i, LOADGEN_WORKERS=N, same flags, same --start-at T)
//!    rate   r_i = ⌊r / N⌋ (+1 for the first r mod N workers)      Σ r_i = r
//!    keys   rr:K, uniform:K → keys i, i+N, i+2N, … (disjoint slices; the union is all K)
//!           zipf:K:S        → the whole key space, a seed of its own (the union of N
//!                             independent Zipf draws is Zipf at the summed rate)
//!    topic  loadgen-<run>-<step>: shared; every worker creates it (already exists = fine)
//!           and none deletes it (another worker may still be draining)
//!    time   step k's warm-up starts at T + k × slot (slot = the planned step + --step-gap),
//!           the same on every worker; a worker that is late starts at once and says so
//!    stamp  payload marker `lgw` + index: each worker's end-to-end consumer reads the whole
//!           topic but measures only its own messages (stamps are relative to its own clock)
//! ```
//!
//! Each worker writes an ordinary sweep directory (`results.json`, `.hlog`s);
//! [`crate::merge`] adds them up.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args as ClapArgs;
use serde::{Deserialize, Serialize};

use crate::driver::Recorder;
use crate::error::{Error, Result};
use crate::scenario::{Keys, Rate, Scenario, StepConfig};
use crate::sweep::{self, Observer, SweepResult};
use crate::target::{PhaseHooks, Publisher, Target, TargetInfo, TopicSpec};

/// Worker-mode flags (part of `sweep`). Worker mode is on when `--worker-index` is given,
/// which in an Indexed Job comes from `JOB_COMPLETION_INDEX`.
#[derive(Debug, Clone, Default, ClapArgs)]
pub struct WorkerArgs {
    /// Worker mode: this worker's index, 0 ≤ i < --workers (an Indexed Job sets
    /// `JOB_COMPLETION_INDEX`).
    #[arg(long, env = "JOB_COMPLETION_INDEX", requires = "workers")]
    pub worker_index: Option<u32>,
    /// Worker mode: how many workers share the load (the Job's `completions`).
    #[arg(long, env = "LOADGEN_WORKERS")]
    pub workers: Option<u32>,
    /// Worker mode: the shared start, wall clock: RFC 3339 (`2025-01-31T12:00:00Z`) or unix
    /// seconds. Every worker waits for it before the first warm-up.
    #[arg(long, env = "LOADGEN_START_AT")]
    pub start_at: Option<String>,
    /// Worker mode: the run's name in topic names (default: the start time in unix seconds).
    #[arg(long, env = "LOADGEN_RUN_ID")]
    pub run_id: Option<String>,
    /// Worker mode: time between one step's planned end and the next step's shared start
    /// (topic creation, draining, a late worker).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub step_gap: Duration,
}

/// This process's share of a distributed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based.
    pub index: u32,
    /// Workers in the run.
    pub count: u32,
}

static SHARD: OnceLock<Shard> = OnceLock::new();

/// The process's shard, once worker mode set it.
pub fn current() -> Option<Shard> {
    SHARD.get().copied()
}

/// The 8 bytes after a stamp that say "this is a loadgen message, and mine": `loadgen\0` in a
/// single process, `lgw` + the worker index in worker mode.
pub fn marker() -> [u8; 8] {
    match current() {
        None => *b"loadgen\0",
        Some(shard) => {
            let mut m = *b"lgw\0\0\0\0\0";
            m[3..7].copy_from_slice(&shard.index.to_le_bytes());
            m
        }
    }
}

impl Shard {
    /// This worker's share of `total`: the remainder goes to the first workers.
    pub fn share(self, total: u64) -> u64 {
        total / u64::from(self.count) + u64::from(u64::from(self.index) < total % u64::from(self.count))
    }

    /// Whether key `i` of a round-robin or uniform key space is this worker's.
    pub fn owns_key(self, i: u32) -> bool {
        i % self.count == self.index
    }

    /// The seed of this worker (payloads, key choice): distinct per worker.
    pub fn seed(self, seed: u64) -> u64 {
        seed.wrapping_add(u64::from(self.index).wrapping_mul(1_000_003))
    }

    /// The step as this worker runs it: its share of the rate.
    pub fn step(self, step: &StepConfig) -> StepConfig {
        let mut s = *step;
        if let Rate::PerSecond(r) = s.rate {
            s.rate = Rate::PerSecond(self.share(r).max(1));
        }
        s
    }
}

/// A validated worker-mode setting.
#[derive(Debug, Clone)]
pub struct Plan {
    /// This worker.
    pub shard: Shard,
    /// The shared start.
    pub start_at: SystemTime,
    /// The run's name in topic names.
    pub run_id: String,
    /// Between a step's planned end and the next step's start.
    pub step_gap: Duration,
}

impl WorkerArgs {
    /// The plan, or `None` when worker mode is off.
    pub fn plan(&self) -> Result<Option<Plan>> {
        let Some(index) = self.worker_index else {
            if self.workers.is_some() || self.start_at.is_some() {
                return Err(Error::invalid(
                    "--workers and --start-at are worker-mode flags: give --worker-index too (JOB_COMPLETION_INDEX)",
                ));
            }
            return Ok(None);
        };
        let count = self.workers.ok_or_else(|| Error::invalid("--worker-index needs --workers (LOADGEN_WORKERS)"))?;
        if count == 0 || index >= count {
            return Err(Error::invalid(format!("--worker-index {index} is not below --workers {count}")));
        }
        let spec = self.start_at.as_deref().ok_or_else(|| {
            Error::invalid(
                "worker mode needs --start-at (LOADGEN_START_AT): the shared start, RFC 3339 or unix seconds",
            )
        })?;
        let start_at = parse_start_at(spec)?;
        let run_id = match &self.run_id {
            Some(r) => r.clone(),
            None => start_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0).to_string(),
        };
        if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.') {
            return Err(Error::invalid(format!("--run-id `{run_id}` must be letters, digits, `-`, `_` or `.`")));
        }
        Ok(Some(Plan { shard: Shard { index, count }, start_at, run_id, step_gap: self.step_gap }))
    }
}

/// `2025-01-31T12:00:00Z` (RFC 3339) or unix seconds (`1738324800`, fractions allowed).
pub fn parse_start_at(s: &str) -> Result<SystemTime> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
        }
    }
    humantime::parse_rfc3339_weak(t).map_err(|_| {
        Error::invalid(format!("--start-at `{s}` is neither RFC 3339 (2025-01-31T12:00:00Z) nor unix seconds"))
    })
}

/// Checks what cannot be split across workers.
fn check(scenario: &Scenario, steps: &[StepConfig], shard: Shard) -> Result<()> {
    for step in steps {
        match step.keys {
            Keys::RoundRobin(k) | Keys::Uniform(k) if k < shard.count => {
                return Err(Error::invalid(format!(
                    "keys {} cannot be split over {} workers: use at least one key per worker",
                    step.keys, shard.count
                )));
            }
            _ => {}
        }
        if let Rate::PerSecond(r) = step.rate
            && r < u64::from(shard.count)
        {
            return Err(Error::invalid(format!("rate {r} msgs/s is below one message per second per worker")));
        }
    }
    if let Some(n) = scenario.phases.messages
        && n < u64::from(shard.count)
    {
        return Err(Error::invalid(format!("--messages {n} is fewer than one per worker")));
    }
    Ok(())
}

/// Runs the sweep as worker `plan.shard`: the steps with this worker's share, each step's
/// warm-up at its shared start, on shared topics. Writes an ordinary sweep directory.
pub fn run(
    target: &dyn Target,
    scenario: &Scenario,
    plan: &Plan,
    out_dir: &Path,
    observer: &dyn Observer,
) -> Result<SweepResult> {
    let shard = plan.shard;
    if SHARD.set(shard).is_err() && current() != Some(shard) {
        return Err(Error::invalid("this process already runs as another worker"));
    }
    let mut steps = scenario.validate()?;
    check(scenario, &steps, shard)?;
    let mut scenario = sweep::prepare(target, scenario, &mut steps)?;
    // The schedule comes from the whole steps, identical on every worker.
    let mut starts = Vec::with_capacity(steps.len());
    let mut at = plan.start_at;
    for step in &steps {
        starts.push(at);
        at += scenario.planned_step_length(step) + plan.step_gap;
    }
    scenario.seed = shard.seed(scenario.seed);
    if let Some(n) = scenario.phases.messages {
        scenario.phases.messages = Some(shard.share(n));
    }
    scenario.name = format!("{} (worker {} of {})", scenario.name, shard.index, shard.count);
    let steps: Vec<StepConfig> = steps.iter().map(|s| shard.step(s)).collect();
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(format!("creating {}", out_dir.display()), e))?;

    let shared = SharedTopics { inner: target, starts, next: AtomicUsize::new(0) };
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let planned = steps.iter().map(|s| scenario.planned_step_length(s)).sum();
    observer.sweep_started(&steps, planned);
    let mut payloads = sweep::PayloadCache::new(&scenario)?;
    let mut results = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        observer.step_started(i, step);
        let tick = |elapsed: Duration, rate: f64| observer.tick(i, elapsed, rate);
        let topic = format!("loadgen-{}-{:03}", plan.run_id, i + 1);
        shared.next.store(i, Ordering::Relaxed);
        let mut result = sweep::run_one(&shared, &scenario, step, i + 1, &topic, payloads.get(step), out_dir, &tick);
        result.notes.push(format!(
            "worker {} of {}: topic {topic} is shared by all workers and left in place",
            shard.index, shard.count
        ));
        observer.step_finished(i, &result);
        results.push(result);
    }
    let result = SweepResult {
        format: sweep::FORMAT.into(),
        scenario,
        environment: sweep::Environment::current(),
        target: target.info(),
        started_at,
        finished_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        steps: results,
    };
    crate::report::write_all(&result, out_dir)?;
    Ok(result)
}

/// The sweep's target with shared topics (created by whichever worker comes first, never
/// deleted) and a wait for each step's shared start just before its warm-up.
struct SharedTopics<'a> {
    inner: &'a dyn Target,
    starts: Vec<SystemTime>,
    next: AtomicUsize,
}

impl Target for SharedTopics<'_> {
    fn info(&self) -> TargetInfo {
        self.inner.info()
    }

    fn consumer_bootstrap(&self) -> String {
        self.inner.consumer_bootstrap()
    }

    fn consumer_properties(&self) -> Vec<(String, String)> {
        self.inner.consumer_properties()
    }

    fn create_topic(&self, topic: &str, spec: &TopicSpec) -> Result<Vec<String>> {
        match self.inner.create_topic(topic, spec) {
            Ok(notes) => Ok(notes),
            Err(e) if e.to_string().to_ascii_lowercase().contains("already exists") => {
                Ok(vec![format!("topic {topic} was created by another worker")])
            }
            Err(e) => Err(e),
        }
    }

    fn delete_topic(&self, _topic: &str) -> Result<()> {
        Ok(())
    }

    /// The last call before the warm-up: wait here for the step's shared start.
    fn configure(&self, scenario: &Scenario, step: &StepConfig, topic: &str) -> Result<Vec<String>> {
        let mut notes = self.inner.configure(scenario, step, topic)?;
        let start = self.starts[self.next.load(Ordering::Relaxed)];
        match start.duration_since(SystemTime::now()) {
            Ok(wait) => std::thread::sleep(wait),
            Err(late) => notes.push(format!(
                "this worker started {} ms after the shared start (the previous step overran --step-gap)",
                late.duration().as_millis()
            )),
        }
        Ok(notes)
    }

    fn publisher(
        &self,
        scenario: &Scenario,
        step: &StepConfig,
        topic: &str,
        recorder: Arc<Recorder>,
        stats_interval: Duration,
    ) -> Result<Box<dyn Publisher>> {
        self.inner.publisher(scenario, step, topic, recorder, stats_interval)
    }

    fn process(&self, step: &StepConfig) -> Option<u32> {
        self.inner.process(step)
    }

    fn phase_hooks(&self) -> Option<&dyn PhaseHooks> {
        self.inner.phase_hooks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_whole() {
        for count in 1..=7u32 {
            for total in [1u64, 7, 100, 2001, 40_000] {
                let sum: u64 = (0..count).map(|index| Shard { index, count }.share(total)).sum();
                assert_eq!(sum, total, "{total} over {count}");
            }
        }
        let owned: Vec<u32> = (0..10).filter(|&k| Shard { index: 1, count: 3 }.owns_key(k)).collect();
        assert_eq!(owned, vec![1, 4, 7]);
        assert_ne!(Shard { index: 0, count: 2 }.seed(42), Shard { index: 1, count: 2 }.seed(42));
    }

    #[test]
    fn the_command_line_reaches_worker_mode_and_merge() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "kafka-loadgen",
            "sweep",
            "--worker-index",
            "2",
            "--workers",
            "3",
            "--start-at",
            "2030-01-01T00:00:00Z",
            "--run-id",
            "r1",
        ])
        .unwrap();
        let crate::cli::Command::Sweep(args) = cli.command else { panic!("sweep") };
        let plan = args.worker.plan().unwrap().unwrap();
        assert_eq!((plan.shard, plan.run_id.as_str()), (Shard { index: 2, count: 3 }, "r1"));
        let cli = crate::cli::Cli::try_parse_from(["kafka-loadgen", "merge", "a", "b", "--out", "m"]).unwrap();
        let crate::cli::Command::Merge(m) = cli.command else { panic!("merge") };
        assert_eq!(m.dirs.len(), 2);
        assert!(crate::cli::Cli::try_parse_from(["kafka-loadgen", "merge"]).is_err());
    }

    #[test]
    fn start_at_reads_rfc3339_and_unix_seconds() {
        let a = parse_start_at("2025-01-31T12:00:00Z").unwrap();
        let b = parse_start_at("1738324800").unwrap();
        assert_eq!(a, b);
        assert_eq!(parse_start_at("1738324800.5").unwrap(), b + Duration::from_millis(500));
        assert!(parse_start_at("tomorrow").unwrap_err().to_string().contains("RFC 3339"));
    }

    #[test]
    fn worker_flags_are_checked() {
        let args = |i: Option<u32>, n: Option<u32>, s: Option<&str>| WorkerArgs {
            worker_index: i,
            workers: n,
            start_at: s.map(String::from),
            run_id: None,
            step_gap: Duration::from_secs(1),
        };
        assert!(args(None, None, None).plan().unwrap().is_none());
        assert!(args(Some(3), Some(3), Some("0")).plan().unwrap_err().to_string().contains("below"));
        assert!(args(Some(0), Some(3), None).plan().unwrap_err().to_string().contains("--start-at"));
        assert!(args(None, Some(3), Some("0")).plan().unwrap_err().to_string().contains("--worker-index"));
        let plan = args(Some(1), Some(3), Some("1738324800")).plan().unwrap().unwrap();
        assert_eq!(plan.run_id, "1738324800");
        assert_eq!(plan.shard, Shard { index: 1, count: 3 });
    }
}
