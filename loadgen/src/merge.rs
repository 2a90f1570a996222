//! `merge`: the result directories of distributed workers ([`crate::worker`]) → one sweep
//! result and report, as if one process had offered the whole load.
//!
//! ```text
//!  worker-0/ results.json step-001.hlog …  ┐  steps matched by index (same setting but the
//!  worker-1/ results.json step-001.hlog …  ├─ rate share); per tag and per second of the
//!  worker-2/ results.json step-001.hlog …  ┘  measured phase the histograms are ADDED
//!                    │
//!                    ▼
//!  merged/ results.json (percentiles of the added histograms) step-001.hlog (the added
//!          intervals) summary.md report.html results.csv
//! ```
//!
//! Percentiles never average: the p99 of three workers is the p99 of the union of their
//! samples, which only the histograms know (HdrHistograms add exactly, bucket by bucket).
//! Counts and rates add; a step is sustained only if every worker sustained its share.
//! Per-second series align by their index: the workers' measured phases started together
//! (`--start-at`), and the report says how far apart they really started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args as ClapArgs;

use crate::driver::{Measurement, Second, Throughput};
use crate::error::{Error, Result};
use crate::histogram::{self, Latency, Percentiles};
use crate::report;
use crate::scenario::{Rate, StepConfig};
use crate::sweep::{self, StepResult, SweepResult};
use crate::verdict::Verdict;

/// `merge` flags.
#[derive(Debug, Clone, ClapArgs)]
pub struct MergeArgs {
    /// The workers' output directories (each with `results.json` and its `.hlog` files).
    #[arg(required = true, num_args = 1..)]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged report (default: `merged` next to the first directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The per-second tags of a step's `.hlog`, and the whole-phase one.
const SERIES: [&str; 3] = ["publish", "end-to-end", "send-delay"];
const FAILED: &str = "failed";

/// Runs `merge`: writes the merged report and prints where.
pub fn command(args: &MergeArgs) -> Result<SweepResult> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.dirs[0].parent().map(Path::to_path_buf).unwrap_or_default().join("merged"));
    let result = merge(&args.dirs, &out)?;
    println!("{}", report::markdown::render(&result));
    println!("merged {} workers: {}", args.dirs.len(), out.display());
    Ok(result)
}

/// One step's histograms read back from a worker's `.hlog`.
#[derive(Default)]
struct StepLog {
    /// Per tag: one histogram per second of the measured phase.
    seconds: BTreeMap<String, Vec<Latency>>,
    /// Per tag: whole-phase intervals (`failed`), added.
    whole: BTreeMap<String, Latency>,
    /// When the measured phase began.
    start: Option<SystemTime>,
}

/// Reads an interval log written by [`histogram::write_log`]: one-second intervals by index,
/// longer ones (whole-phase totals) apart.
fn read_step_log(path: &Path) -> Result<StepLog> {
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let text = std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut log = StepLog::default();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&text) {
        let entry = entry.map_err(|e| Error::invalid(format!("{}: not an interval log ({e:?})", path.display())))?;
        let interval = match entry {
            LogEntry::StartTime(t) => {
                log.start = Some(UNIX_EPOCH + t);
                continue;
            }
            LogEntry::BaseTime(_) => continue,
            LogEntry::Interval(i) => i,
        };
        let tag = interval.tag().map(|t| t.as_str().to_owned()).unwrap_or_default();
        let bytes = histogram::base64_decode(interval.encoded_histogram());
        let h: Latency = deserializer
            .deserialize(&mut &bytes[..])
            .map_err(|e| Error::invalid(format!("{}: bad histogram ({e:?})", path.display())))?;
        if tag == FAILED || interval.duration() > Duration::from_millis(1500) {
            histogram::merge(log.whole.entry(tag).or_insert_with(histogram::new), &h);
        } else {
            let second = interval.start_timestamp().as_secs_f64().round() as usize;
            let series = log.seconds.entry(tag).or_default();
            while series.len() <= second {
                series.push(histogram::new());
            }
            histogram::merge(&mut series[second], &h);
        }
    }
    Ok(log)
}

impl StepLog {
    fn add(&mut self, other: StepLog) {
        for (tag, seconds) in other.seconds {
            let mine = self.seconds.entry(tag).or_default();
            while mine.len() < seconds.len() {
                mine.push(histogram::new());
            }
            for (a, b) in mine.iter_mut().zip(&seconds) {
                histogram::merge(a, b);
            }
        }
        for (tag, h) in other.whole {
            histogram::merge(self.whole.entry(tag).or_insert_with(histogram::new), &h);
        }
        self.start = match (self.start, other.start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// The whole measured phase of a per-second tag.
    fn total(&self, tag: &str) -> Latency {
        let mut h = histogram::new();
        for s in self.seconds.get(tag).into_iter().flatten() {
            histogram::merge(&mut h, s);
        }
        h
    }

    fn second(&self, tag: &str, i: usize) -> Option<&Latency> {
        self.seconds.get(tag).and_then(|s| s.get(i)).filter(|h| !h.is_empty())
    }
}

/// Merges the workers' directories into `out` and writes every report there.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<SweepResult> {
    let mut workers = Vec::with_capacity(dirs.len());
    for dir in dirs {
        workers.push((dir.clone(), report::load(&dir.join("results.json"))?));
    }
    let first = &workers[0].1;
    for (dir, w) in &workers[1..] {
        if w.steps.len() != first.steps.len() {
            return Err(Error::invalid(format!(
                "{} has {} steps, {} has {}: merge the workers of one run",
                dir.display(),
                w.steps.len(),
                workers[0].0.display(),
                first.steps.len()
            )));
        }
        for (a, b) in first.steps.iter().zip(&w.steps) {
            if without_rate(&a.config) != without_rate(&b.config) {
                return Err(Error::invalid(format!(
                    "step {} differs between {} ({}) and {} ({}): merge the workers of one run",
                    a.index,
                    workers[0].0.display(),
                    a.label,
                    dir.display(),
                    b.label
                )));
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(format!("creating {}", out.display()), e))?;
    let steps = (0..first.steps.len())
        .map(|i| {
            let parts: Vec<(&Path, &StepResult)> = workers.iter().map(|(d, w)| (d.as_path(), &w.steps[i])).collect();
            merge_step(&parts, out)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut scenario = first.scenario.clone();
    if let Some(cut) = scenario.name.find(" (worker ") {
        scenario.name.truncate(cut);
    }
    scenario.name = format!("{} ({} workers, merged)", scenario.name, workers.len());
    if let Some(n) = scenario.phases.messages {
        scenario.phases.messages = Some(n.max(workers.iter().filter_map(|(_, w)| w.scenario.phases.messages).sum()));
    }
    let result = SweepResult {
        format: sweep::FORMAT.into(),
        scenario,
        environment: sweep::Environment::current(),
        target: first.target.clone(),
        started_at: workers.iter().map(|(_, w)| w.started_at.clone()).min().unwrap_or_default(),
        finished_at: workers.iter().map(|(_, w)| w.finished_at.clone()).max().unwrap_or_default(),
        steps,
    };
    report::write_all(&result, out)?;
    Ok(result)
}

fn without_rate(c: &StepConfig) -> StepConfig {
    let mut c = *c;
    c.rate = Rate::Max;
    c
}

fn merge_step(parts: &[(&Path, &StepResult)], out: &Path) -> Result<StepResult> {
    let (_, first) = parts[0];
    let mut config = first.config;
    config.rate = match parts.iter().map(|(_, s)| s.config.rate).try_fold(0u64, |sum, r| match r {
        Rate::PerSecond(r) => Some(sum + r),
        Rate::Max => None,
    }) {
        Some(sum) => Rate::PerSecond(sum),
        None => Rate::Max,
    };
    let mut notes = vec![format!(
        "merged from {} workers ({}): counts and rates added, percentiles from the added histograms",
        parts.len(),
        parts.iter().map(|(d, s)| format!("{} {}", d.display(), s.config.rate)).collect::<Vec<_>>().join(", ")
    )];
    let mut failures = Vec::new();
    let mut log = StepLog::default();
    let mut starts = Vec::new();
    for (k, (dir, step)) in parts.iter().enumerate() {
        if let Some(f) = &step.failure {
            failures.push(format!("worker {k}: {f}"));
        }
        for n in &step.notes {
            notes.push(format!("worker {k}: {n}"));
        }
        if step.measurement.is_some() {
            let name = step.histogram_log.as_deref().ok_or_else(|| {
                Error::invalid(format!(
                    "{}: step {} has no .hlog: its histograms cannot be added",
                    dir.display(),
                    step.index
                ))
            })?;
            let one = read_step_log(&dir.join(name))?;
            starts.extend(one.start);
            log.add(one);
        }
    }
    if let (Some(a), Some(b)) = (starts.iter().min(), starts.iter().max()) {
        notes.push(format!(
            "the workers' measured phases started within {} ms of each other",
            b.duration_since(*a).unwrap_or_default().as_millis()
        ));
    }
    let measurements: Vec<&Measurement> = parts.iter().filter_map(|(_, s)| s.measurement.as_ref()).collect();
    let measurement = (!measurements.is_empty()).then(|| merge_measurement(&measurements, &log));
    let histogram_log = if measurement.is_some() {
        let name = format!("step-{:03}.hlog", first.index);
        let series: Vec<(&str, &[Latency])> =
            SERIES.iter().map(|t| (*t, log.seconds.get(*t).map_or(&[][..], |s| s.as_slice()))).collect();
        let failed = log.whole.get(FAILED).cloned().unwrap_or_else(histogram::new);
        let whole = Duration::from_secs_f64(measurement.as_ref().map_or(1.0, |m| m.window_seconds).max(0.001));
        histogram::write_log(
            &out.join(&name),
            log.start.unwrap_or_else(SystemTime::now),
            &series,
            &[(FAILED, &failed, whole)],
        )?;
        Some(name)
    } else {
        None
    };
    Ok(StepResult {
        index: first.index,
        config,
        label: config.label(),
        properties: first.properties.clone(),
        topic: first.topic.clone(),
        status: if failures.is_empty() { "ok".into() } else { "failed".into() },
        failure: (!failures.is_empty()).then(|| failures.join("; ")),
        notes,
        payload: first.payload.clone(),
        measurement,
        histogram_log,
        process: None,
    })
}

fn add(a: Throughput, b: Throughput) -> Throughput {
    Throughput {
        messages: a.messages + b.messages,
        bytes: a.bytes + b.bytes,
        msgs_per_sec: a.msgs_per_sec + b.msgs_per_sec,
        mb_per_sec: a.mb_per_sec + b.mb_per_sec,
    }
}

fn merge_measurement(ms: &[&Measurement], log: &StepLog) -> Measurement {
    let publish = log.total("publish");
    let e2e = log.total("end-to-end");
    let send_delay = log.total("send-delay");
    let failed_h = log.whole.get(FAILED).cloned().unwrap_or_else(histogram::new);
    let produced = ms.iter().fold(Throughput::default(), |acc, m| add(acc, m.produced));
    let consumed = ms.iter().try_fold(Throughput::default(), |acc, m| m.consumed.map(|c| add(acc, c)));
    let delivered = produced.messages;
    let failed: u64 = ms.iter().map(|m| m.failed).sum();
    let offered = ms.iter().try_fold(0.0, |acc, m| m.offered_msgs_per_sec.map(|o| acc + o));
    let mut errors = BTreeMap::new();
    for m in ms {
        for (k, n) in &m.errors {
            *errors.entry(k.clone()).or_insert(0) += n;
        }
    }
    let seconds = ["publish", "end-to-end"].iter().map(|t| log.seconds.get(*t).map_or(0, Vec::len)).max().unwrap_or(0);
    let seconds = seconds.max(ms.iter().map(|m| m.timeline.len()).max().unwrap_or(0));
    let timeline = (0..seconds)
        .map(|i| {
            let p = log.second("publish", i);
            let e = log.second("end-to-end", i);
            Second {
                second: i as u32,
                acked: p.map_or(0, |h| h.len()),
                failed: ms.iter().filter_map(|m| m.timeline.get(i)).map(|s| s.failed).sum(),
                consumed: e.map_or(0, |h| h.len()),
                publish_p99_us: p.map(|h| h.value_at_quantile(0.99)),
                e2e_p99_us: e.map(|h| h.value_at_quantile(0.99)),
            }
        })
        .collect();
    // Sustained only if every worker sustained its share: the pass rule's conditions
    // (achieved ratio, failures, the generator's schedule, the consumer) are per worker.
    let verdict = offered.map(|offered| {
        let verdicts: Vec<Option<&Verdict>> = ms.iter().map(|m| m.verdict.as_ref()).collect();
        let achieved: f64 = ms
            .iter()
            .map(|m| m.verdict.as_ref().map_or(0.0, |v| v.achieved_ratio) * m.offered_msgs_per_sec.unwrap_or(0.0))
            .sum();
        let mut reasons = Vec::new();
        for (k, v) in verdicts.iter().enumerate() {
            match v {
                Some(v) => reasons.extend(v.reasons.iter().map(|r| format!("worker {k}: {r}"))),
                None => reasons.push(format!("worker {k}: no verdict")),
            }
        }
        Verdict {
            sustained: reasons.is_empty(),
            achieved_ratio: if offered > 0.0 { achieved / offered } else { 0.0 },
            reasons,
        }
    });
    let consumer_seconds = ms.iter().filter_map(|m| m.consumer_seconds).reduce(f64::max);
    Measurement {
        measured_seconds: ms.iter().map(|m| m.measured_seconds).fold(0.0, f64::max),
        produced,
        consumed,
        window_seconds: ms.iter().map(|m| m.window_seconds).fold(0.0, f64::max),
        offered_msgs_per_sec: offered,
        intended: ms.iter().map(|m| m.intended).sum(),
        failed,
        error_rate: if delivered + failed > 0 { failed as f64 / (delivered + failed) as f64 } else { 0.0 },
        failure_latency: (!failed_h.is_empty()).then(|| Percentiles::of(&failed_h)),
        consumer_seconds,
        timeline,
        verdict,
        publish_latency: Percentiles::of(&publish),
        end_to_end_latency: (!e2e.is_empty()).then(|| Percentiles::of(&e2e)),
        send_delay: ms.iter().any(|m| m.send_delay.is_some()).then(|| Percentiles::of(&send_delay)),
        publish_spectrum: histogram::spectrum(&publish),
        end_to_end_spectrum: histogram::spectrum(&e2e),
        errors,
        // librdkafka's statistics are per-client averages: they do not add. Worker 0's stand
        // for all (each worker runs the same settings).
        librdkafka: ms[0].librdkafka.clone(),
    }
}
