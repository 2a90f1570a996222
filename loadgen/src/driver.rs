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
mod keys;
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
use crate::target::{PhaseHooks, Target};
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

pub use consumer::FETCH_WAIT_MAX_MS;

/// One second of the measured phase (counted from its start, by event time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the measured phase started.
    pub second: u32,
    /// Measured messages acknowledged in this second.
    pub acked: u64,
    /// Measured messages that failed in this second.
    pub failed: u64,
    /// Measured messages the tool's consumer read in this second.
    pub consumed: u64,
    /// Publish p99 of the messages acknowledged in this second, µs.
    pub publish_p99_us: Option<u64>,
    /// End-to-end p99 of the messages read in this second, µs.
    pub e2e_p99_us: Option<u64>,
}

/// One message transit, seconds: the lowest of the measured seconds' median publish latency
/// (the overall median without them). A step that keeps up has about the same median every
/// second, so this is its transit; in a step that falls behind, latency grows with the
/// backlog, and the overall median would include part of that queueing and hide part of the
/// shortfall the pass rule is there to catch.
fn transit(per_second: &[Latency], overall: &Latency) -> f64 {
    let lowest = per_second.iter().filter(|h| !h.is_empty()).map(|h| h.value_at_quantile(0.5)).min();
    lowest.unwrap_or_else(|| overall.value_at_quantile(0.5)) as f64 / 1e6
}

/// Everything measured in one step.
///
/// Files written before issue 7 lack the fields marked *new*; they read as empty, and their
/// `produced` rate is the old one (measured messages over the fixed measured window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Length of the measured phase as planned, seconds.
    pub measured_seconds: f64,
    /// Delivered (acknowledged) measured messages, per second of the wall time from the first
    /// measured send to the last measured acknowledgement ([`Measurement::window_seconds`]).
    pub produced: Throughput,
    /// Measured messages read back by the tool's consumer, per second of the consumer's own
    /// window (first to last measured message read).
    pub consumed: Option<Throughput>,
    /// *New.* First measured send → last measured acknowledgement, seconds.
    #[serde(default)]
    pub window_seconds: f64,
    /// *New.* The offered rate (open loop), msgs/s.
    #[serde(default)]
    pub offered_msgs_per_sec: Option<f64>,
    /// *New.* Measured messages intended (open loop: by schedule, sent or not).
    #[serde(default)]
    pub intended: u64,
    /// *New.* Measured messages that failed: delivery errors, timeouts, rejected or never sent.
    #[serde(default)]
    pub failed: u64,
    /// *New.* failed / (acknowledged + failed).
    #[serde(default)]
    pub error_rate: f64,
    /// *New.* Intended send → failure, µs, for the failed measured messages.
    #[serde(default)]
    pub failure_latency: Option<Percentiles>,
    /// *New.* The consumer's own window, seconds.
    #[serde(default)]
    pub consumer_seconds: Option<f64>,
    /// *New.* Per second of the measured phase: acknowledged, failed, read, p99s.
    #[serde(default)]
    pub timeline: Vec<Second>,
    /// *New.* The pass rule's verdict (open-loop steps only).
    #[serde(default)]
    pub verdict: Option<crate::verdict::Verdict>,
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

/// The step's merged histograms, for the `.hlog` files and `compare`.
pub struct Histograms {
    /// Publish latency.
    pub publish: Latency,
    /// End-to-end latency.
    pub end_to_end: Latency,
    /// Send delay.
    pub send_delay: Latency,
    /// Per second of the measured phase, by tag (`publish`, `end-to-end`, `send-delay`, `failed`).
    pub seconds: Vec<(&'static str, Vec<Latency>)>,
    /// Failed measured messages, intended send → failure (the whole phase).
    pub failed: Latency,
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

/// Runs `step` against `topic` (already created and configured); `hooks` are told when the
/// measured phase starts and ends.
pub fn run_step(
    target: &dyn Target,
    scenario: &Scenario,
    step: &StepConfig,
    topic: &str,
    payloads: &Payloads,
    progress: &dyn StepProgress,
    hooks: &dyn PhaseHooks,
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
    let shared = Arc::new(StepShared::new(topic, phases.warmup));
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
                    // Twice the measured phase (at least 2 s) of lateness past the cool-down.
                    give_up: (phases.messages.is_none() && interval.is_some())
                        .then(|| measure_end + phases.cooldown + phases.duration.max(Duration::from_secs(2))),
                    seed: scenario.seed,
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
                hooks.measured_phase_started();
                phase = 1;
            }
            if phase == 1 && phases.messages.is_none() && now >= measure_end {
                shared.measuring.store(false, Ordering::Relaxed);
                hooks.measured_phase_ended();
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
            hooks.measured_phase_ended();
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
    let mut failure_latency = histogram::new();
    let mut publish_seconds: Vec<Latency> = Vec::new();
    let mut send_delay_seconds: Vec<Latency> = Vec::new();
    let mut failed_seconds: Vec<u64> = Vec::new();
    let mut stats = StatsAccumulator::default();
    let mut errors = BTreeMap::new();
    let (mut delivered, mut bytes, mut failed, mut intended) = (0, 0, 0, 0);
    let mut problems = Vec::new();
    let mut first_send: Option<Duration> = None;
    let mut last_ack = Duration::ZERO;
    for worker in &workers {
        let r = &worker.recorded;
        histogram::merge(&mut publish, &r.publish);
        histogram::merge(&mut send_delay, &worker.send_delay);
        histogram::merge(&mut failure_latency, &r.failure_latency);
        merge_series(&mut publish_seconds, &r.publish_seconds);
        merge_series(&mut send_delay_seconds, &worker.send_delay_seconds);
        if failed_seconds.len() < r.failed_seconds.len() {
            failed_seconds.resize(r.failed_seconds.len(), 0);
        }
        for (i, n) in r.failed_seconds.iter().enumerate() {
            failed_seconds[i] += n;
        }
        stats.merge(&r.stats);
        for (kind, n) in &r.errors {
            *errors.entry(kind.clone()).or_insert(0) += n;
        }
        delivered += r.delivered;
        bytes += r.delivered_bytes;
        failed += r.failed;
        intended += worker.intended;
        problems.extend(worker.problem.clone());
        first_send = match (first_send, worker.first_send) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last_ack = last_ack.max(r.last_delivery);
    }
    let client = std::mem::take(&mut *shared.client.lock().unwrap_or_else(|e| e.into_inner()));
    for (kind, n) in client.counts {
        *errors.entry(kind).or_insert(0) += n;
    }
    // Throughput: acknowledged measured messages over the wall time from the first measured
    // send to the last measured acknowledgement, in both loops. A step that fell behind its
    // schedule takes longer than its measured phase, so its rate drops below the offered one.
    let window = match first_send {
        Some(first) if delivered > 0 && last_ack > first => (last_ack - first).as_secs_f64(),
        _ => phases.duration.as_secs_f64(),
    };
    let e2e = consumed.as_ref().map(|c| c.e2e.clone()).unwrap_or_else(histogram::new);
    let e2e_seconds = consumed.as_ref().map(|c| c.e2e_seconds.clone()).unwrap_or_default();
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
    let calls = workers.iter().filter_map(|w| w.calls).fold(None, |acc: Option<(u64, u64)>, (c, e)| {
        let (ac, ae) = acc.unwrap_or_default();
        Some((ac + c, ae + e))
    });
    if let Some((calls, entries)) = calls.filter(|(c, _)| *c > 0) {
        notes.push(format!(
            "{calls} calls carried {entries} messages ({:.1} per call, all phases)",
            entries as f64 / calls as f64
        ));
    }
    if let Some(c) = consumed.as_ref().filter(|c| c.messages < delivered) {
        notes.push(format!(
            "the end-to-end consumer read {} of {delivered} measured messages: it fell behind (at full speed the \
             consumer competes for the same CPUs) or the broker dropped old data; end-to-end percentiles cover what it read",
            c.messages
        ));
    }
    let seconds_len = publish_seconds.len().max(e2e_seconds.len()).max(failed_seconds.len());
    let timeline: Vec<Second> = (0..seconds_len)
        .map(|i| {
            let p = publish_seconds.get(i).filter(|h| !h.is_empty());
            let e = e2e_seconds.get(i).filter(|h| !h.is_empty());
            Second {
                second: i as u32,
                acked: p.map_or(0, |h| h.len()),
                failed: failed_seconds.get(i).copied().unwrap_or(0),
                consumed: e.map_or(0, |h| h.len()),
                publish_p99_us: p.map(|h| h.value_at_quantile(0.99)),
                e2e_p99_us: e.map(|h| h.value_at_quantile(0.99)),
            }
        })
        .collect();
    let consumer_seconds = consumed.as_ref().and_then(|c| c.first.map(|f| (c.last.saturating_sub(f)).as_secs_f64()));
    let offered = match step.rate {
        Rate::PerSecond(r) => Some(r as f64),
        Rate::Max => None,
    };
    let produced = Throughput::over(delivered, bytes, window);
    let verdict = offered.map(|offered| {
        let measured_seconds = (phases.duration.as_secs_f64().floor() as usize).max(1);
        crate::verdict::judge(
            &crate::verdict::Observed {
                offered,
                // The window ends one message transit after the last send; a step that keeps
                // up pays that transit once, not per second, so the rule takes one transit
                // off the window before comparing with the offered rate (see `transit`).
                achieved: if delivered > 0 && !publish.is_empty() {
                    let transit = transit(&publish_seconds, &publish);
                    delivered as f64 / (window - transit).max(window / 2.0).max(1e-9)
                } else {
                    0.0
                },
                failed,
                send_delay_p99_us: if send_delay.is_empty() { 0 } else { send_delay.value_at_quantile(0.99) },
                lag_growth: consumed.as_ref().map(|_| lag_growth(&timeline, measured_seconds)),
                read_of_acked: consumed.as_ref().map(|c| (c.messages, delivered)),
            },
            &scenario.pass,
        )
    });
    let measurement = Measurement {
        measured_seconds: phases.duration.as_secs_f64(),
        produced,
        consumed: consumed
            .as_ref()
            .map(|c| Throughput::over(c.messages, c.bytes, consumer_seconds.unwrap_or(0.0).max(1e-3))),
        window_seconds: window,
        offered_msgs_per_sec: offered,
        intended,
        failed,
        error_rate: if delivered + failed > 0 { failed as f64 / (delivered + failed) as f64 } else { 0.0 },
        failure_latency: (!failure_latency.is_empty()).then(|| Percentiles::of(&failure_latency)),
        // Filled from the merged histogram below, before it moves into `Histograms`.
        consumer_seconds,
        timeline,
        verdict,
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
        histograms: Histograms {
            publish,
            end_to_end: e2e,
            send_delay,
            seconds: vec![
                ("publish", publish_seconds),
                ("end-to-end", e2e_seconds),
                ("send-delay", send_delay_seconds),
            ],
            failed: failure_latency,
            started,
        },
        failure,
        notes,
    })
}

fn merge_series(into: &mut Vec<Latency>, from: &[Latency]) {
    while into.len() < from.len() {
        into.push(histogram::new());
    }
    for (a, b) in into.iter_mut().zip(from) {
        histogram::merge(a, b);
    }
}

/// How much the consumer's lag (acknowledged − read, cumulative) grew between the first and
/// the last second of the measured phase.
pub fn lag_growth(timeline: &[Second], measured_seconds: usize) -> f64 {
    let mut lag = Vec::new();
    let (mut acked, mut read) = (0i64, 0i64);
    for s in timeline.iter().take(measured_seconds) {
        acked += s.acked as i64;
        read += s.consumed as i64;
        lag.push((acked - read) as f64);
    }
    match (lag.first(), lag.last()) {
        (Some(first), Some(last)) if lag.len() > 1 => last - first,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(values_us: &[u64]) -> Latency {
        let mut h = histogram::new();
        for &v in values_us {
            h.record(v).unwrap();
        }
        h
    }

    /// A step falling behind: latency grows second after second with the backlog. The
    /// transit taken off the window is the first seconds' latency, not the overall median.
    #[test]
    fn the_transit_is_the_lowest_seconds_median_not_the_backlogged_one() {
        let seconds = vec![second(&[10_000; 5]), second(&[20_000; 5]), histogram::new(), second(&[40_000; 9])];
        let mut overall = histogram::new();
        for s in &seconds {
            overall.add(s).unwrap();
        }
        assert!(overall.value_at_quantile(0.5) >= 19_000, "the overall median includes the queueing");
        assert!((transit(&seconds, &overall) - 0.010).abs() < 1e-4, "{}", transit(&seconds, &overall));
        assert!((transit(&[], &second(&[5_000; 3])) - 0.005).abs() < 1e-4, "no seconds: the overall median");
    }
}
