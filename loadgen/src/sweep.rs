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
use crate::target::{Target, TargetInfo};

/// The format tag of result files.
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
    let steps = scenario.validate()?;
    let payload_file = scenario.payload.file.as_ref().map(|f| Payloads::from_file(Path::new(f))).transpose()?;
    if let Some(p) = &payload_file
        && p.max_size() as u64 > scenario.max_message_bytes
    {
        return Err(Error::invalid(format!(
            "payload file has a {}-byte message, larger than max_message_bytes {}",
            p.max_size(),
            scenario.max_message_bytes
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(format!("creating {}", out_dir.display()), e))?;
    let run_id = format!(
        "{}-{}",
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        std::process::id()
    );
    let started_at = now_rfc3339();
    let planned = steps.iter().map(|s| scenario.planned_step_length(s)).sum();
    observer.sweep_started(&steps, planned);

    let mut generated: HashMap<u32, Payloads> = HashMap::new();
    let mut results = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        observer.step_started(i, step);
        let payloads = match &payload_file {
            Some(p) => p,
            None => generated.entry(step.message_size).or_insert_with(|| {
                Payloads::generate(step.message_size as usize, scenario.payload.compressibility, 42)
            }),
        };
        let topic = format!("loadgen-{run_id}-{:03}", i + 1);
        let mut result = StepResult {
            index: i + 1,
            config: *step,
            label: step.label(),
            properties: step.producer_properties(scenario),
            topic: topic.clone(),
            status: "ok".into(),
            failure: None,
            notes: Vec::new(),
            payload: Some(payloads.compressibility.clone()),
            measurement: None,
            histogram_log: None,
        };
        let tick = |elapsed: Duration, rate: f64| observer.tick(i, elapsed, rate);
        let outcome = target
            .create_topic(&topic, step.partitions)
            .and_then(|()| driver::run_step(target, scenario, step, &topic, payloads, &tick));
        match outcome {
            Ok(outcome) => {
                let log = format!("step-{:03}.hlog", i + 1);
                let h = &outcome.histograms;
                let duration = Duration::from_secs_f64(outcome.measurement.measured_seconds.max(0.0));
                match histogram::write_log(
                    &out_dir.join(&log),
                    h.started,
                    duration,
                    &[("publish", &h.publish), ("end-to-end", &h.end_to_end), ("send-delay", &h.send_delay)],
                ) {
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
        if let Err(e) = target.delete_topic(&topic) {
            result.notes.push(format!("topic not deleted: {e}"));
        }
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

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
