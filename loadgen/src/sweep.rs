//! Runs a whole sweep: validate, then for every step create a fresh topic, run it, record
//! the outcome (a failed step is data, not an abort), delete the topic; finally write the
//! result files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::driver::{self, Measurement};
use crate::error::{Error, Result};
use crate::histogram;
use crate::payload::{Compressibility, Payloads};
use crate::report;
use crate::scenario::{Scenario, StepConfig};
use crate::target::process::{Both, ProcessMeter};
use crate::target::{NoHooks, PhaseHooks, Target, TargetInfo, TopicSpec};

/// The format tag of result files. Files of format 1 (before issue 7) still load: fields
/// added since read as empty (see the README).
pub const FORMAT: &str = "kafka-loadgen/1";

/// A whole sweep's results: the JSON file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// [`FORMAT`].
    pub format: String,
    /// The scenario as run.
    pub scenario: Scenario,
    /// Where it ran.
    pub environment: Environment,
    /// Against what.
    pub target: TargetInfo,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    pub finished_at: String,
    /// One per step, in run order.
    pub steps: Vec<StepResult>,
}

/// One step's configuration and results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// 1-based.
    pub index: usize,
    /// The full setting.
    pub config: StepConfig,
    /// [`StepConfig::label`].
    pub label: String,
    /// The librdkafka producer properties used.
    pub properties: Vec<(String, String)>,
    /// The fresh topic.
    pub topic: String,
    /// `ok` or `failed`.
    pub status: String,
    /// Why it failed.
    pub failure: Option<String>,
    /// Other things worth knowing (topic not deleted, ...).
    pub notes: Vec<String>,
    /// The payload's measured compressibility.
    pub payload: Option<Compressibility>,
    /// Results (partial when failed; absent when the step never ran).
    pub measurement: Option<Measurement>,
    /// The HdrHistogram log file, relative to the output directory.
    pub histogram_log: Option<String>,
    /// *New (issue 8).* CPU and memory of a process on the path (the spawned bridge) over the
    /// measured phase.
    #[serde(default)]
    pub process: Option<crate::target::process::ProcessCost>,
}

impl StepResult {
    /// Whether the step succeeded.
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

/// Versions and host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// kafka-loadgen's version.
    pub tool_version: String,
    /// librdkafka's version.
    pub librdkafka_version: String,
    /// Host name.
    pub host: String,
    /// `linux-x86_64`.
    pub platform: String,
    /// Available CPUs.
    pub cpus: usize,
    /// The command line.
    pub command_line: Vec<String>,
}

impl Environment {
    /// The current process's environment.
    pub fn current() -> Environment {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Environment {
            tool_version: env!("CARGO_PKG_VERSION").into(),
            librdkafka_version: rdkafka::util::get_rdkafka_version().1,
            host,
            platform: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            command_line: std::env::args().collect(),
        }
    }
}

/// Told about the sweep's progress (the progress bar; tests use it to break a broker).
pub trait Observer: Sync {
    /// Before the first step; `planned` is the estimated total length.
    fn sweep_started(&self, _steps: &[StepConfig], _planned: Duration) {}
    /// A step starts.
    fn step_started(&self, _index: usize, _step: &StepConfig) {}
    /// Every 200 ms during a step.
    fn tick(&self, _index: usize, _elapsed: Duration, _rate: f64) {}
    /// A step ended.
    fn step_finished(&self, _index: usize, _result: &StepResult) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}

/// Where the sweep's files went.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The result JSON.
    pub json: PathBuf,
    /// The CSV table.
    pub csv: PathBuf,
    /// The Markdown summary.
    pub markdown: PathBuf,
    /// The HTML report.
    pub html: PathBuf,
}

/// Validates `scenario`, runs every step against `target` and writes all files to `out_dir`.
pub fn run(
    target: &dyn Target,
    scenario: &Scenario,
    out_dir: &Path,
    observer: &dyn Observer,
) -> Result<(SweepResult, Outputs)> {
    let mut steps = scenario.validate()?;
    let scenario = &prepare(target, scenario, &mut steps)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(format!("creating {}", out_dir.display()), e))?;
    let run_id = run_id();
    let started_at = now_rfc3339();
    let planned = steps.iter().map(|s| scenario.planned_step_length(s)).sum();
    observer.sweep_started(&steps, planned);

    let mut payloads = PayloadCache::new(scenario)?;
    let mut results = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        observer.step_started(i, step);
        let tick = |elapsed: Duration, rate: f64| observer.tick(i, elapsed, rate);
        let topic = format!("loadgen-{run_id}-{:03}", i + 1);
        let result = run_one(target, scenario, step, i + 1, &topic, payloads.get(step), out_dir, &tick);
        observer.step_finished(i, &result);
        results.push(result);
    }

    let result = SweepResult {
        format: FORMAT.into(),
        scenario: scenario.clone(),
        environment: Environment::current(),
        target: target.info(),
        started_at,
        finished_at: now_rfc3339(),
        steps: results,
    };
    let outputs = report::write_all(&result, out_dir)?;
    Ok((result, outputs))
}

/// Resolves what depends on the cluster: `auto` replication factors and min ISR, and the
/// broker's `message.max.bytes` (read from the cluster unless given). Returns the scenario
/// as run.
pub fn prepare(target: &dyn Target, scenario: &Scenario, steps: &mut [StepConfig]) -> Result<Scenario> {
    let info = target.info();
    let mut scenario = scenario.clone();
    if scenario.max_message_bytes.is_none() {
        scenario.max_message_bytes = info.message_max_bytes;
    }
    scenario.resolve(steps, info.brokers)?;
    for step in steps.iter() {
        if u64::from(step.message_size) > scenario.max_message_bytes() {
            return Err(Error::invalid(format!(
                "message_size {} is larger than the broker allows (message.max.bytes {})",
                step.message_size,
                scenario.max_message_bytes()
            )));
        }
    }
    Ok(scenario)
}

/// Payloads per message size, generated once.
pub struct PayloadCache {
    file: Option<Payloads>,
    generated: HashMap<u32, Payloads>,
    ratio: f64,
    seed: u64,
}

impl PayloadCache {
    /// Reads the payload file, if any, and checks it against `message.max.bytes`.
    pub fn new(scenario: &Scenario) -> Result<PayloadCache> {
        let file = scenario.payload.file.as_ref().map(|f| Payloads::from_file(Path::new(f))).transpose()?;
        if let Some(p) = &file
            && p.max_size() as u64 > scenario.max_message_bytes()
        {
            return Err(Error::invalid(format!(
                "payload file has a {}-byte message, larger than max_message_bytes {}",
                p.max_size(),
                scenario.max_message_bytes()
            )));
        }
        Ok(PayloadCache {
            file,
            generated: HashMap::new(),
            ratio: scenario.payload.compressibility,
            seed: scenario.seed,
        })
    }

    /// The payloads of `step`.
    pub fn get(&mut self, step: &StepConfig) -> &Payloads {
        match &self.file {
            Some(p) => p,
            None => self
                .generated
                .entry(step.message_size)
                .or_insert_with(|| Payloads::generate(step.message_size as usize, self.ratio, self.seed)),
        }
    }
}

/// A run id for topic names: seconds since the epoch and the process id.
pub fn run_id() -> String {
    format!(
        "{}-{}",
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        std::process::id()
    )
}

/// Runs one step on a fresh `topic` and writes its `.hlog` (`step-<index>.hlog`) into `out_dir`.
/// A failed step is data: the result says why.
#[allow(clippy::too_many_arguments)]
pub fn run_one(
    target: &dyn Target,
    scenario: &Scenario,
    step: &StepConfig,
    index: usize,
    topic: &str,
    payloads: &Payloads,
    out_dir: &Path,
    tick: &dyn driver::StepProgress,
) -> StepResult {
    let mut result = StepResult {
        index,
        config: *step,
        label: step.label(),
        properties: step.producer_properties(scenario),
        topic: topic.to_owned(),
        status: "ok".into(),
        failure: None,
        notes: Vec::new(),
        payload: Some(payloads.compressibility.clone()),
        measurement: None,
        histogram_log: None,
        process: None,
    };
    let spec = TopicSpec {
        partitions: step.partitions,
        replication_factor: step.replication_factor.or(1),
        min_insync_replicas: step.min_insync_replicas.or(1),
    };
    let meter = target.process(step).map(ProcessMeter::new);
    let both;
    let hooks: &dyn PhaseHooks = match (&meter, target.phase_hooks()) {
        (Some(m), Some(h)) => {
            both = Both(m, h);
            &both
        }
        (Some(m), None) => m,
        (None, Some(h)) => h,
        (None, None) => &NoHooks,
    };
    let outcome = target
        .create_topic(topic, &spec)
        .and_then(|notes| {
            result.notes.extend(notes);
            target.configure(scenario, step, topic)
        })
        .and_then(|notes| {
            result.notes.extend(notes);
            driver::run_step(target, scenario, step, topic, payloads, tick, hooks)
        });
    if let (Some(meter), Ok(outcome)) = (&meter, &outcome) {
        result.process = meter.finish(outcome.measurement.produced.bytes);
    }
    match outcome {
        Ok(outcome) => {
            let log = format!("step-{index:03}.hlog");
            let h = &outcome.histograms;
            let series: Vec<(&str, &[histogram::Latency])> =
                h.seconds.iter().map(|(tag, s)| (*tag, s.as_slice())).collect();
            let whole = Duration::from_secs_f64(outcome.measurement.window_seconds.max(0.001));
            match histogram::write_log(&out_dir.join(&log), h.started, &series, &[("failed", &h.failed, whole)]) {
                Ok(()) => result.histogram_log = Some(log),
                Err(e) => result.notes.push(format!("histogram log not written: {e}")),
            }
            result.notes.extend(outcome.notes);
            if let Some(failure) = outcome.failure {
                result.status = "failed".into();
                result.failure = Some(failure);
            }
            result.measurement = Some(outcome.measurement);
        }
        Err(e) => {
            result.status = "failed".into();
            result.failure = Some(e.to_string());
        }
    }
    if let Err(e) = target.delete_topic(topic) {
        result.notes.push(format!("topic not deleted: {e}"));
    }
    result
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
