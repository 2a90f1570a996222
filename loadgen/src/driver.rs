//! Runs one step: a consumer, `producers` worker threads, and the phase clock.
//!
//! ```text
//!   0 ────── warm-up ──────┬──────── measured ────────┬── cool-down ──┬─ flush, drain
//!   (load, not measured)   │ stamps carry measured=1  │ (load, not    │ consumer reads until
//!                          │ stats accumulate         │  measured)    │ every measured message
//! ```
//!
//! Every thread is scoped to the step and joined before it returns; the main thread only
//! watches the clock, flips the statistics window and reports progress.

mod consumer;
pub mod recorder;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use recorder::{Recorder, Stamp, StepShared};

use crate::error::Error;
use crate::histogram::{self, Latency, Percentiles};
use crate::payload::Payloads;
use crate::scenario::{Rate, Scenario, StepConfig};
use crate::stats::{ClientStats, StatsAccumulator};
use crate::target::Target;
use worker::{MeasureUntil, Plan};

/// Messages and bytes over the measured phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Throughput {
    /// Measured messages.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Messages per second.
    pub msgs_per_sec: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_sec: f64,
}

impl Throughput {
    fn over(messages: u64, bytes: u64, seconds: f64) -> Throughput {
        let seconds = seconds.max(1e-9);
        Throughput {
            messages,
            bytes,
            msgs_per_sec: messages as f64 / seconds,
            mb_per_sec: bytes as f64 / 1e6 / seconds,
        }
    }
}

/// Everything measured in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Length of the measured phase, seconds.
    pub measured_seconds: f64,
    /// Delivered (acknowledged) measured messages.
    pub produced: Throughput,
    /// Measured messages read back by the tool's consumer.
    pub consumed: Option<Throughput>,
    /// Send → delivery report (µs), from the intended send time in an open loop.
    pub publish_latency: Percentiles,
    /// Send → consumed (µs).
    pub end_to_end_latency: Option<Percentiles>,
    /// Actual minus intended send time (µs), open loop only.
    pub send_delay: Option<Percentiles>,
    /// Percentile spectrum of the publish latency, `(percentile, µs)`.
    pub publish_spectrum: Vec<(f64, u64)>,
    /// Percentile spectrum of the end-to-end latency.
    pub end_to_end_spectrum: Vec<(f64, u64)>,
    /// Errors by kind (all phases).
    pub errors: BTreeMap<String, u64>,
    /// librdkafka's statistics over the measured phase.
    pub librdkafka: ClientStats,
}

/// The step's merged histograms, for the `.hlog` files.
pub struct Histograms {
    /// Publish latency.
    pub publish: Latency,
    /// End-to-end latency.
    pub end_to_end: Latency,
    /// Send delay.
    pub send_delay: Latency,
    /// When the measured phase began (wall clock).
    pub started: SystemTime,
}

/// How a step ended.
pub struct StepOutcome {
    /// The measurement (partial when the step failed).
    pub measurement: Measurement,
    /// The histograms.
    pub histograms: Histograms,
    /// Why the step failed, if it did.
    pub failure: Option<String>,
    /// Caveats about the measurement.
    pub notes: Vec<String>,
}

/// What the progress display is told, every 200 ms.
pub trait StepProgress {
    /// `elapsed` into the step, current send rate (msgs/s).
    fn tick(&self, elapsed: Duration, rate: f64);
}

impl<F: Fn(Duration, f64)> StepProgress for F {
    fn tick(&self, elapsed: Duration, rate: f64) {
        self(elapsed, rate)
    }
}

/// Runs `step` against `topic` (already created).
pub fn run_step(
    target: &dyn Target,
    scenario: &Scenario,
    step: &StepConfig,
    topic: &str,
    payloads: &Payloads,
    progress: &dyn StepProgress,
) -> Result<StepOutcome, Error> {
    let phases = &scenario.phases;
    let consumer = if scenario.end_to_end {
        Some(consumer::StepConsumer::assign(
            &target.consumer_bootstrap(),
            topic,
            step.partitions,
            &target.consumer_properties(),
        )?)
    } else {
        None
    };
    let shared = Arc::new(StepShared::new(topic));
    let interval = match step.rate {
        Rate::Max => None,
        Rate::PerSecond(rate) => Some(Duration::from_secs_f64(step.producers as f64 / rate as f64)),
    };
    let producers = step.producers as u64;
    let measure_end = phases.warmup + phases.duration;
    let stats_interval = (phases.duration / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let flush_timeout = scenario.message_timeout + Duration::from_secs(5);
    let expected = AtomicU64::new(u64::MAX);
    let drain_until = AtomicU64::new(u64::MAX);
    let started = SystemTime::now() + phases.warmup;

    let (workers, consumed) = std::thread::scope(|scope| {
        let consumer = consumer.map(|c| {
            let (shared, expected, drain_until) = (&shared, &expected, &drain_until);
            std::thread::Builder::new()
                .name("loadgen-consumer".into())
                .spawn_scoped(scope, move || c.run(shared, expected, drain_until))
                .expect("spawning the consumer thread")
        });
        let handles: Vec<_> = (0..step.producers as usize)
            .map(|index| {
                let until = match phases.messages {
                    None => MeasureUntil::Time(measure_end),
                    Some(n) => MeasureUntil::Count(n / producers + u64::from((index as u64) < n % producers)),
                };
                let plan = Plan {
                    index,
                    interval,
                    warmup: phases.warmup,
                    until,
                    cooldown: phases.cooldown,
                    flush_timeout,
                    stats_interval,
                    payloads,
                };
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("loadgen-producer-{index}"))
                    .spawn_scoped(scope, move || worker::run(target, scenario, step, shared, plan))
                    .expect("spawning a producer thread")
            })
            .collect();

        let (mut last_sent, mut last_at, mut phase) = (0u64, shared.now(), 0);
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            let now = shared.now();
            if phase == 0 && now >= phases.warmup {
                shared.measuring.store(true, Ordering::Relaxed);
                target.measured_phase_started();
                phase = 1;
            }
            if phase == 1 && phases.messages.is_none() && now >= measure_end {
                shared.measuring.store(false, Ordering::Relaxed);
                target.measured_phase_ended();
                phase = 2;
            }
            if now - last_at >= Duration::from_millis(200) {
                let sent = shared.sent.load(Ordering::Relaxed);
                progress.tick(now, (sent - last_sent) as f64 / (now - last_at).as_secs_f64());
                (last_sent, last_at) = (sent, now);
            }
        }
        if phase != 2 {
            shared.measuring.store(false, Ordering::Relaxed);
            target.measured_phase_ended();
        }
        let workers: Vec<_> = handles.into_iter().map(|h| h.join().expect("producer thread panicked")).collect();
        let delivered: u64 = workers.iter().map(|w| w.recorded.delivered).sum();
        let drain = shared.now() + Duration::from_secs(10).max(phases.duration);
        drain_until.store(drain.as_nanos() as u64, Ordering::Release);
        expected.store(delivered, Ordering::Release);
        let consumed = consumer.map(|c| c.join().expect("consumer thread panicked"));
        (workers, consumed)
    });

    let mut publish = histogram::new();
    let mut send_delay = histogram::new();
    let mut stats = StatsAccumulator::default();
    let mut errors = BTreeMap::new();
    let (mut delivered, mut bytes) = (0, 0);
    let mut problems = Vec::new();
    let mut measured_until = Duration::ZERO;
    for worker in &workers {
        histogram::merge(&mut publish, &worker.recorded.publish);
        histogram::merge(&mut send_delay, &worker.send_delay);
        stats.merge(&worker.recorded.stats);
        for (kind, n) in &worker.recorded.errors {
            *errors.entry(kind.clone()).or_insert(0) += n;
        }
        delivered += worker.recorded.delivered;
        bytes += worker.recorded.delivered_bytes;
        problems.extend(worker.problem.clone());
        // A message count is done when its last message is delivered (as rdkafka_performance
        // counts); a fixed duration is the window itself, with the cool-down keeping load on.
        measured_until = measured_until.max(worker.measure_end.unwrap_or_default()).max(worker.recorded.last_delivery);
    }
    let client = std::mem::take(&mut *shared.client.lock().unwrap_or_else(|e| e.into_inner()));
    for (kind, n) in client.counts {
        *errors.entry(kind).or_insert(0) += n;
    }
    let seconds = match phases.messages {
        None => phases.duration.as_secs_f64(),
        Some(_) => measured_until.saturating_sub(phases.warmup).as_secs_f64(),
    };
    let e2e = consumed.as_ref().map(|c| c.e2e.clone()).unwrap_or_else(histogram::new);
    if let Some(c) = &consumed {
        for (kind, n) in &c.errors {
            *errors.entry(kind.clone()).or_insert(0) += n;
        }
    }
    let failure = client.fatal.or_else(|| problems.first().cloned()).or_else(|| {
        (delivered == 0).then(|| {
            let kinds: Vec<String> = errors.iter().map(|(k, n)| format!("{k}×{n}")).collect();
            format!(
                "no measured message was delivered (errors: {})",
                if kinds.is_empty() { "none".into() } else { kinds.join(", ") }
            )
        })
    });
    let mut notes = Vec::new();
    if let Some(c) = consumed.as_ref().filter(|c| c.messages < delivered) {
        notes.push(format!(
            "the end-to-end consumer read {} of {delivered} measured messages: it fell behind (at full speed the \
             consumer competes for the same CPUs) or the broker dropped old data; end-to-end percentiles cover what it read",
            c.messages
        ));
    }
    let measurement = Measurement {
        measured_seconds: seconds,
        produced: Throughput::over(delivered, bytes, seconds),
        consumed: consumed.as_ref().map(|c| Throughput::over(c.messages, c.bytes, seconds)),
        publish_latency: Percentiles::of(&publish),
        end_to_end_latency: consumed.as_ref().filter(|c| c.messages > 0).map(|c| Percentiles::of(&c.e2e)),
        send_delay: interval.map(|_| Percentiles::of(&send_delay)),
        publish_spectrum: histogram::spectrum(&publish),
        end_to_end_spectrum: histogram::spectrum(&e2e),
        errors,
        librdkafka: stats.finish(),
    };
    Ok(StepOutcome {
        measurement,
        histograms: Histograms { publish, end_to_end: e2e, send_delay, started },
        failure,
        notes,
    })
}
