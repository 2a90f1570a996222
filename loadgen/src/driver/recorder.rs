//! What a worker's callbacks record: one [`Recorder`] per producer, shared state per step.
//!
//! Every message carries a [`Stamp`]: nanoseconds since the step's epoch and a *measured*
//! bit. In an open loop the stamp is the message's **intended** send time, so a stall that
//! delays sending shows up in its latency (no coordinated omission); in a closed loop it is
//! the actual send time. Only stamped-measured messages enter the histograms, so warm-up and
//! cool-down traffic never leaks into the results whichever callback sees it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::histogram::{self, Latency};
use crate::stats::StatsAccumulator;

/// A message's send time (ns since the step epoch) and whether it is measured, packed into
/// the integer librdkafka hands back with the delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(pub u64);

impl Stamp {
    /// Packs `at` (since the epoch) and the measured flag.
    pub fn new(at: Duration, measured: bool) -> Stamp {
        Stamp(((at.as_nanos() as u64) << 1) | u64::from(measured))
    }

    /// The send time since the epoch.
    pub fn at(self) -> Duration {
        Duration::from_nanos(self.0 >> 1)
    }

    /// Whether the message is in the measured phase.
    pub fn measured(self) -> bool {
        self.0 & 1 == 1
    }

    /// The 16 bytes written at the start of the payload.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.0.to_le_bytes());
        // `loadgen\0`, or in worker mode this worker's own marker (crate::worker::marker).
        bytes[8..].copy_from_slice(&crate::worker::marker());
        bytes
    }

    /// Reads a stamp back from a consumed payload.
    pub fn from_payload(payload: &[u8]) -> Option<Stamp> {
        if payload.len() < 16 || payload[8..16] != crate::worker::marker() {
            return None;
        }
        Some(Stamp(u64::from_le_bytes(payload[..8].try_into().ok()?)))
    }
}

/// State shared by every thread of one step.
pub struct StepShared {
    /// The step's time origin.
    pub epoch: Instant,
    /// The topic (statistics are read for it).
    pub topic: String,
    /// Statistics are accumulated while set.
    pub measuring: AtomicBool,
    /// Set when the step must stop early (the broker went away).
    pub abort: AtomicBool,
    /// Messages sent so far (all phases), for the live rate.
    pub sent: AtomicU64,
    /// Client-level errors (`error` callback) by kind, and the reason that aborted the step.
    pub client: Mutex<ClientErrors>,
    /// When the measured phase starts (since the epoch): per-second series count from here.
    pub measured_from: Duration,
}

/// Client-level errors of a step.
#[derive(Debug, Default)]
pub struct ClientErrors {
    /// Counts by kind.
    pub counts: BTreeMap<String, u64>,
    /// Why the step was abandoned.
    pub fatal: Option<String>,
}

impl StepShared {
    /// A step starting now whose measured phase starts `measured_from` later.
    pub fn new(topic: &str, measured_from: Duration) -> StepShared {
        StepShared {
            measured_from,
            epoch: Instant::now(),
            topic: topic.to_owned(),
            measuring: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            client: Mutex::new(ClientErrors::default()),
        }
    }

    /// Time since the epoch.
    pub fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// The second of the measured phase `at` falls in (0 before it; capped at an hour).
    pub fn second(&self, at: Duration) -> usize {
        (at.saturating_sub(self.measured_from).as_secs() as usize).min(MAX_SECONDS - 1)
    }

    /// Records a client error; losing every broker abandons the step.
    pub fn client_error(&self, kind: &str, reason: &str) {
        let mut client = self.client.lock().unwrap_or_else(|e| e.into_inner());
        *client.counts.entry(format!("client:{kind}")).or_default() += 1;
        if kind == "AllBrokersDown" || kind.contains("Fatal") {
            client.fatal.get_or_insert_with(|| format!("broker went away: {kind}: {reason}"));
            self.abort.store(true, Ordering::Relaxed);
        }
    }
}

/// Per-second series stop here (an hour).
pub const MAX_SECONDS: usize = 3600;

/// Records into the histogram of second `second`, growing the series as needed.
pub fn record_at(series: &mut Vec<Latency>, second: usize, latency: Duration) {
    while series.len() <= second {
        series.push(histogram::new());
    }
    histogram::record(&mut series[second], latency);
}

/// One producer's results.
pub struct Recorded {
    /// Send → delivery report, measured messages.
    pub publish: Latency,
    /// The same, one histogram per second of the measured phase (by acknowledgement time).
    pub publish_seconds: Vec<Latency>,
    /// Measured messages that failed (delivery error, timeout, rejected send, never sent).
    pub failed: u64,
    /// Their latency, intended send → failure.
    pub failure_latency: Latency,
    /// Failures per second of the measured phase.
    pub failed_seconds: Vec<u64>,
    /// Measured messages delivered.
    pub delivered: u64,
    /// Their payload bytes.
    pub delivered_bytes: u64,
    /// When the last measured message was delivered (since the epoch).
    pub last_delivery: Duration,
    /// Failed deliveries and sends by kind (all phases).
    pub errors: BTreeMap<String, u64>,
    /// librdkafka statistics during the measured phase.
    pub stats: StatsAccumulator,
}

/// The sink of one producer's callbacks.
pub struct Recorder {
    shared: std::sync::Arc<StepShared>,
    inner: Mutex<Recorded>,
}

impl Recorded {
    /// Nothing recorded yet.
    fn empty() -> Recorded {
        Recorded {
            publish: histogram::new(),
            publish_seconds: Vec::new(),
            failed: 0,
            failure_latency: histogram::new(),
            failed_seconds: Vec::new(),
            delivered: 0,
            delivered_bytes: 0,
            last_delivery: Duration::ZERO,
            errors: BTreeMap::new(),
            stats: StatsAccumulator::default(),
        }
    }
}

impl Recorder {
    /// A recorder for one producer of the step.
    pub fn new(shared: std::sync::Arc<StepShared>) -> Recorder {
        Recorder { shared, inner: Mutex::new(Recorded::empty()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // Callbacks run on the worker's own thread during poll, so this is uncontended.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A delivery report for a message of `bytes`.
    pub fn delivered(&self, stamp: Stamp, bytes: usize) {
        if !stamp.measured() {
            return;
        }
        let now = self.shared.now();
        let latency = now.saturating_sub(stamp.at());
        let second = self.shared.second(now);
        let mut inner = self.lock();
        inner.last_delivery = now;
        histogram::record(&mut inner.publish, latency);
        record_at(&mut inner.publish_seconds, second, latency);
        inner.delivered += 1;
        inner.delivered_bytes += bytes as u64;
    }

    /// A failed delivery or send: counted by kind; a measured one also enters the failure
    /// histogram at the time it failed, so the worst latencies are never silently dropped.
    pub fn failed(&self, stamp: Stamp, kind: &str) {
        self.failed_many(stamp, kind, 1);
    }

    /// `n` failures of one kind with the same stamp (messages given up before being sent).
    pub fn failed_many(&self, stamp: Stamp, kind: &str, n: u64) {
        let now = self.shared.now();
        let second = self.shared.second(now);
        let mut inner = self.lock();
        *inner.errors.entry(kind.to_owned()).or_default() += n;
        if stamp.measured() && n > 0 {
            inner.failed += n;
            let us = (now.saturating_sub(stamp.at()).as_micros() as u64).clamp(1, histogram::MAX_MICROS);
            inner.failure_latency.saturating_record_n(us, n);
            if inner.failed_seconds.len() <= second {
                inner.failed_seconds.resize(second + 1, 0);
            }
            inner.failed_seconds[second] += n;
        }
    }

    /// A statistics emission.
    pub fn statistics(&self, json: &[u8]) {
        if self.shared.measuring.load(Ordering::Relaxed) {
            let topic = self.shared.topic.clone();
            self.lock().stats.add(json, &topic);
        }
    }

    /// A client-level error.
    pub fn client_error(&self, kind: &str, reason: &str) {
        self.shared.client_error(kind, reason);
    }

    /// Takes the results out.
    pub fn take(&self) -> Recorded {
        let mut inner = self.lock();
        std::mem::replace(&mut *inner, Recorded::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_through_opaque_and_payload() {
        let stamp = Stamp::new(Duration::from_nanos(123_456_789_012), true);
        assert_eq!(stamp.at(), Duration::from_nanos(123_456_789_012));
        assert!(stamp.measured());
        assert!(!Stamp::new(Duration::from_secs(1), false).measured());
        let mut payload = vec![7u8; 64];
        payload[..16].copy_from_slice(&stamp.to_bytes());
        assert_eq!(Stamp::from_payload(&payload), Some(stamp));
        assert_eq!(Stamp::from_payload(&[7u8; 64]), None);
    }

    #[test]
    fn only_measured_messages_enter_the_histogram() {
        let shared = std::sync::Arc::new(StepShared::new("t", Duration::ZERO));
        let recorder = Recorder::new(shared.clone());
        recorder.delivered(Stamp::new(Duration::ZERO, false), 100);
        recorder.delivered(Stamp::new(Duration::ZERO, true), 100);
        recorder.failed(Stamp::new(Duration::ZERO, true), "MessageTimedOut");
        recorder.failed(Stamp::new(Duration::ZERO, false), "MessageTimedOut");
        let recorded = recorder.take();
        assert_eq!(recorded.delivered, 1);
        assert_eq!(recorded.delivered_bytes, 100);
        assert_eq!(recorded.publish.len(), 1);
        assert_eq!(recorded.publish_seconds.iter().map(|h| h.len()).sum::<u64>(), 1);
        assert_eq!(recorded.errors["MessageTimedOut"], 2);
        // Only the measured failure counts against the step, in a histogram of its own.
        assert_eq!(recorded.failed, 1);
        assert_eq!(recorded.failure_latency.len(), 1);
        assert_eq!(recorded.failed_seconds, vec![1]);
    }

    #[test]
    fn losing_every_broker_aborts_the_step_with_the_reason() {
        let shared = StepShared::new("t", Duration::ZERO);
        shared.client_error("BrokerTransportFailure", "disconnected");
        assert!(!shared.abort.load(Ordering::Relaxed));
        shared.client_error("AllBrokersDown", "3/3 brokers are down");
        assert!(shared.abort.load(Ordering::Relaxed));
        let client = shared.client.lock().unwrap();
        assert!(client.fatal.as_deref().unwrap().contains("3/3 brokers are down"));
        assert_eq!(client.counts["client:AllBrokersDown"], 1);
    }
}
