//! Latency histograms: HdrHistogram in microseconds, one per worker, merged per step.
//!
//! HdrHistogram keeps 3 significant digits over 1 µs … 1 hour in a few tens of KiB, and two
//! histograms merge by adding counts, so per-worker recording needs no locks on the hot path
//! and the merged percentiles are exact to the histogram's resolution (averaging per-worker
//! percentiles would be wrong). Each step's histograms are also written in the standard
//! interval log format (`.hlog`, V2 compressed) for HdrHistogram's own tools.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The largest latency recorded exactly (one hour); larger values saturate.
pub const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
pub type Latency = Histogram<u64>;

/// An empty latency histogram.
pub fn new() -> Latency {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static bounds are valid")
}

/// Records `d`, rounding down to whole microseconds (at least 1 µs).
pub fn record(h: &mut Latency, d: Duration) {
    h.saturating_record((d.as_micros() as u64).clamp(1, MAX_MICROS));
}

/// Adds `from` into `into`.
pub fn merge(into: &mut Latency, from: &Latency) {
    into.add(from).expect("histograms share bounds");
}

/// The percentiles every report shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Percentiles {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl Percentiles {
    /// Summarises `h`; all zero when empty.
    pub fn of(h: &Latency) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

/// The percentile spectrum plotted per step: `(percentile, µs)` pairs.
pub fn spectrum(h: &Latency) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    [0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0]
        .into_iter()
        .map(|p| (p, if p >= 100.0 { h.max() } else { h.value_at_quantile(p / 100.0) }))
        .collect()
}

/// Writes tagged histograms of one measured phase as an HdrHistogram interval log.
pub fn write_log(path: &Path, start: SystemTime, duration: Duration, tagged: &[(&str, &Latency)]) -> Result<()> {
    let mut buffer = Vec::new();
    {
        let mut serializer = V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("kafka-loadgen step histograms, values in microseconds")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1.0)
            .begin_log_with(&mut buffer, &mut serializer)
            .map_err(|e| Error::io("writing histogram log", e))?;
        for (tag, h) in tagged {
            let tag = Tag::new(tag).ok_or_else(|| Error::invalid(format!("bad histogram tag {tag}")))?;
            writer
                .write_histogram(*h, Duration::ZERO, duration, Some(tag))
                .map_err(|e| Error::io("writing histogram log", std::io::Error::other(e.to_string())))?;
        }
    }
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    file.write_all(&buffer).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = new();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 10_000);
        assert_eq!(p.min, 1);
        let close = |got: u64, want: u64| got.abs_diff(want) <= want / 500 + 1;
        assert!(close(p.p50, 5_000), "{p:?}");
        assert!(close(p.p90, 9_000), "{p:?}");
        assert!(close(p.p99, 9_900), "{p:?}");
        assert!(close(p.p999, 9_990), "{p:?}");
        assert!(close(p.max, 10_000), "{p:?}");
        assert!((p.mean - 5_000.5).abs() < 10.0, "{p:?}");
        assert_eq!(Percentiles::of(&new()), Percentiles::default());
    }

    #[test]
    fn merged_worker_histograms_equal_one_histogram_of_everything() {
        let (mut a, mut b, mut all) = (new(), new(), new());
        for us in 0..1000u64 {
            let fast = 100 + us;
            let slow = 50_000 + us * 10;
            a.record(fast).unwrap();
            b.record(slow).unwrap();
            all.record(fast).unwrap();
            all.record(slow).unwrap();
        }
        let mut merged = new();
        merge(&mut merged, &a);
        merge(&mut merged, &b);
        assert_eq!(Percentiles::of(&merged), Percentiles::of(&all));
        // Averaging per-worker p50s would say ~25 ms; the merged median is at the boundary.
        assert!(Percentiles::of(&merged).p50 <= 1_100);
        assert!(Percentiles::of(&merged).p90 >= 50_000);
    }

    #[test]
    fn saturates_instead_of_failing_and_rounds_up_to_one_microsecond() {
        let mut h = new();
        record(&mut h, Duration::from_nanos(10));
        record(&mut h, Duration::from_secs(7200));
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_MICROS - MAX_MICROS / 1000);
    }

    #[test]
    fn interval_log_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step.hlog");
        let mut publish = new();
        let mut e2e = new();
        for us in [10, 20, 30, 4000] {
            publish.record(us).unwrap();
            e2e.record(us * 2).unwrap();
        }
        write_log(&path, SystemTime::now(), Duration::from_secs(2), &[("publish", &publish), ("e2e", &e2e)]).unwrap();
        let text = std::fs::read(&path).unwrap();
        let mut tags = Vec::new();
        for entry in IntervalLogIterator::new(&text) {
            if let LogEntry::Interval(interval) = entry.unwrap() {
                let bytes = base64_decode(interval.encoded_histogram());
                let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                tags.push((interval.tag().unwrap().as_str().to_owned(), h.len(), h.max()));
            }
        }
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].0, "publish");
        assert_eq!(tags[0].1, 4);
        assert!(tags[1].2 >= 7990);
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in s.bytes().filter(|&c| c != b'=') {
            acc = (acc << 6) | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
