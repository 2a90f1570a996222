//! One producer thread: open-loop (fixed rate) or closed-loop (max throughput) load.
//!
//! Closed loop: send as fast as librdkafka accepts; when its queue holds `max_in_flight`
//! messages `produce` says `QueueFull` and the worker polls (serving delivery reports) until
//! there is room. Latency runs from the moment the message entered the queue; a closed loop
//! therefore slows down with the system and hides stalls (coordinated omission) — which is
//! exactly why the open loop exists.
//!
//! Open loop: message *k* is intended for `start + k / rate`. The worker sleeps (in `poll`,
//! so delivery reports keep flowing) until then; if it is late (queue full, stall, slow
//! machine) it sends at once to catch up. The stamp is the *intended* time, so waiting in
//! front of a full queue counts as latency, and `actual - intended` is recorded separately
//! as the send delay.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::keys::KeyChooser;
use super::recorder::{Recorded, Recorder, Stamp, StepShared, record_at};
use crate::histogram::{self, Latency};
use crate::payload::Payloads;
use crate::scenario::{Scenario, StepConfig};
use crate::target::{Sent, Target};

/// When the measured phase ends for a worker.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MeasureUntil {
    /// At this time since the epoch.
    Time(Duration),
    /// After this many measured messages.
    Count(u64),
}

/// One worker's share of the step.
pub(crate) struct Plan<'a> {
    pub(crate) index: usize,
    pub(crate) interval: Option<Duration>,
    pub(crate) warmup: Duration,
    pub(crate) until: MeasureUntil,
    pub(crate) cooldown: Duration,
    pub(crate) flush_timeout: Duration,
    pub(crate) stats_interval: Duration,
    pub(crate) payloads: &'a Payloads,
    /// Open loop: past this time (since the epoch) a worker still behind its schedule stops
    /// sending, and its unsent measured messages count as failed (`NotSent`).
    pub(crate) give_up: Option<Duration>,
    pub(crate) seed: u64,
}

/// What a worker hands back.
pub(crate) struct WorkerResult {
    pub(crate) recorded: Recorded,
    pub(crate) send_delay: Latency,
    pub(crate) send_delay_seconds: Vec<Latency>,
    /// When the first measured message was actually handed to librdkafka.
    pub(crate) first_send: Option<Duration>,
    /// Measured messages intended (open loop) or sent (closed loop), including unsent ones.
    pub(crate) intended: u64,
    pub(crate) problem: Option<String>,
    /// RPC targets: calls made and the entries they carried.
    pub(crate) calls: Option<(u64, u64)>,
}

const POLL_WHEN_FULL: Duration = Duration::from_millis(10);
const CLOSED_LOOP_POLL_EVERY: usize = 64;
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// Records every message intended from `from` (inclusive) to `end` (exclusive), one per
/// `interval`, as failed with `kind`; returns how many.
fn fail_unsent(recorder: &Recorder, from: Duration, end: Duration, interval: Duration, kind: &str) -> u64 {
    let (mut at, mut count) = (from, 0);
    while at < end {
        recorder.failed(Stamp::new(at, true), kind);
        count += 1;
        at += interval;
    }
    count
}

pub(crate) fn run(
    target: &dyn Target,
    scenario: &Scenario,
    step: &StepConfig,
    shared: &Arc<StepShared>,
    plan: Plan<'_>,
) -> WorkerResult {
    let recorder = Arc::new(Recorder::new(Arc::clone(shared)));
    let mut send_delay = histogram::new();
    let mut send_delay_seconds = Vec::new();
    let mut first_send = None;
    let mut keys = KeyChooser::new(step.keys, plan.seed.wrapping_add(plan.index as u64));
    let mut publisher =
        match target.publisher(scenario, step, &shared.topic, Arc::clone(&recorder), plan.stats_interval) {
            Ok(p) => p,
            Err(e) => {
                return WorkerResult {
                    recorded: recorder.take(),
                    send_delay,
                    send_delay_seconds,
                    first_send,
                    intended: 0,
                    problem: Some(e.to_string()),
                    calls: None,
                };
            }
        };
    let mut pool = plan.payloads.worker_copy();
    // Stagger open-loop workers so their sends interleave instead of bursting together.
    let mut next = plan.interval.map(|i| i.mul_f64(plan.index as f64 / step.producers as f64)).unwrap_or_default();
    let mut message = plan.index.wrapping_mul(7919);
    let (mut measured, mut measure_end, mut unreported) = (0u64, None::<Duration>, 0u64);
    loop {
        if shared.abort.load(Ordering::Relaxed) {
            // The cluster went away (every broker down, or a fatal error) and the step is
            // abandoned. In an open loop, what was intended for the rest of the measured phase
            // fails now: an outage shows in the error rate, it does not shorten the step.
            if let (Some(interval), MeasureUntil::Time(end), None) = (plan.interval, plan.until, measure_end) {
                measured += fail_unsent(&recorder, next.max(plan.warmup), end, interval, "NotSent(step abandoned)");
            }
            break;
        }
        let now = shared.now();
        if let (Some(give_up), Some(interval), MeasureUntil::Time(end)) = (plan.give_up, plan.interval, plan.until)
            && now > give_up
        {
            // Hopelessly behind: what was intended for the measured phase and never sent is
            // a failure at this moment, not a message that silently never existed.
            measured += fail_unsent(&recorder, next.max(plan.warmup), end, interval, "NotSent(behind schedule)");
            break;
        }
        let at = match plan.interval {
            Some(_) if now < next => {
                publisher.poll((next - now).min(MAX_SLEEP));
                continue;
            }
            Some(_) => next,
            None => now,
        };
        let in_measure = at >= plan.warmup
            && measure_end.is_none()
            && match plan.until {
                MeasureUntil::Time(end) => at < end,
                MeasureUntil::Count(n) => measured < n,
            };
        if !in_measure && at >= plan.warmup && measure_end.is_none() {
            measure_end = Some(at);
        }
        if measure_end.is_some_and(|end| at >= end + plan.cooldown) {
            break;
        }
        let stamp = Stamp::new(at, in_measure);
        let payload = &mut pool[message % plan.payloads.len()];
        payload[..16].copy_from_slice(&stamp.to_bytes());
        match publisher.send(payload, keys.key(message as u64), stamp) {
            Sent::Queued => {
                if in_measure && first_send.is_none() {
                    first_send = Some(shared.now());
                }
            }
            Sent::Full => {
                // Open loop: retry the same intended time; closed loop: re-stamp on retry.
                publisher.poll(POLL_WHEN_FULL);
                continue;
            }
            Sent::Failed(kind) => recorder.failed(stamp, &kind),
        }
        if in_measure {
            measured += 1;
            if plan.interval.is_some() {
                let now = shared.now();
                histogram::record(&mut send_delay, now.saturating_sub(at));
                record_at(&mut send_delay_seconds, shared.second(at), now.saturating_sub(at));
            }
        }
        message = message.wrapping_add(1);
        unreported += 1;
        if unreported == 256 {
            shared.sent.fetch_add(unreported, Ordering::Relaxed);
            unreported = 0;
        }
        match plan.interval {
            Some(interval) => {
                next += interval;
                publisher.poll(Duration::ZERO);
            }
            // Like rdkafka_performance, serve delivery reports in bursts: a poll per message
            // costs more than the send itself at full speed. A report waits at most
            // CLOSED_LOOP_POLL_EVERY sends (well under a millisecond at such rates).
            None if message % CLOSED_LOOP_POLL_EVERY == 0 => publisher.poll(Duration::ZERO),
            None => {}
        }
    }
    shared.sent.fetch_add(unreported, Ordering::Relaxed);
    let problem = if shared.abort.load(Ordering::Relaxed) {
        publisher.purge();
        None
    } else {
        // What the flush left unsent or unanswered is purged, so it counts as failed before
        // the recorder is read (not dropped with the publisher, neither delivered nor failed).
        publisher.flush(plan.flush_timeout).err().map(|e| {
            publisher.purge();
            format!("flush: {e}")
        })
    };
    let calls = publisher.calls();
    drop(publisher);
    WorkerResult {
        recorded: recorder.take(),
        send_delay,
        send_delay_seconds,
        first_send,
        intended: measured,
        problem,
        calls,
    }
}
