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

/// Writes an HdrHistogram interval log: one interval per second of the measured phase for
/// each tagged series (`series[i]` covers second `i`), plus whole-phase `totals`. Values are
/// microseconds, as the log's header comment states (`max` columns are in µs too: divisor 1).
pub fn write_log(
    path: &Path,
    start: SystemTime,
    series: &[(&str, &[Latency])],
    totals: &[(&str, &Latency, Duration)],
) -> Result<()> {
    let mut buffer = Vec::new();
    {
        let mut serializer = V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("kafka-loadgen step histograms")
            .add_comment("unit: microseconds (values and max); one interval per second of the measured phase")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1.0)
            .begin_log_with(&mut buffer, &mut serializer)
            .map_err(|e| Error::io("writing histogram log", e))?;
        let bad_tag = |tag: &str| Error::invalid(format!("bad histogram tag {tag}"));
        let io = |e: hdrhistogram::serialization::interval_log::IntervalLogWriterError<_>| {
            Error::io("writing histogram log", std::io::Error::other(format!("{e:?}")))
        };
        for (tag, seconds) in series {
            let t = Tag::new(tag).ok_or_else(|| bad_tag(tag))?;
            for (i, h) in seconds.iter().enumerate() {
                writer
                    .write_histogram(h, Duration::from_secs(i as u64), Duration::from_secs(1), Some(t))
                    .map_err(io)?;
            }
        }
        for (tag, h, length) in totals {
            let t = Tag::new(tag).ok_or_else(|| bad_tag(tag))?;
            writer.write_histogram(*h, Duration::ZERO, *length, Some(t)).map_err(io)?;
        }
    }
    let mut file = std::fs::File::create(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    file.write_all(&buffer).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Reads an interval log back: the merged histogram of every interval with `tag`.
pub fn read_log(path: &Path, tag: &str) -> Result<Latency> {
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let text = std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let mut merged = new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&text) {
        let Ok(LogEntry::Interval(interval)) = entry else { continue };
        if interval.tag().map(|t| t.as_str()) != Some(tag) {
            continue;
        }
        let bytes = base64_decode(interval.encoded_histogram());
        let h: Histogram<u64> = deserializer
            .deserialize(&mut &bytes[..])
            .map_err(|e| Error::io(format!("reading {}", path.display()), std::io::Error::other(format!("{e:?}"))))?;
        merged.add(&h).map_err(|e| Error::io("merging", std::io::Error::other(format!("{e:?}"))))?;
    }
    Ok(merged)
}

/// Whether `count` samples support quantile `q`: at least ten samples beyond it, so that
/// p99.99 needs 100 000 samples and is not simply the maximum of 2 000.
pub fn supports(count: u64, q: f64) -> bool {
    count as f64 * (1.0 - q) >= 10.0 - 1e-9
}

pub(crate) fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()) {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else { continue };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
    fn interval_log_has_one_interval_per_second_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("step.hlog");
        let mut seconds = vec![new(), new(), new()];
        for (i, us) in [10u64, 20, 30, 4000].into_iter().enumerate() {
            seconds[i % 3].record(us).unwrap();
        }
        let mut failed = new();
        failed.record(9_000).unwrap();
        write_log(&path, SystemTime::now(), &[("publish", &seconds)], &[("failed", &failed, Duration::from_secs(3))])
            .unwrap();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).to_string();
        assert!(text.contains("unit: microseconds"), "{text}");
        let intervals = text.lines().filter(|l| l.starts_with("Tag=publish")).count();
        assert_eq!(intervals, 3, "{text}");
        let back = read_log(&path, "publish").unwrap();
        assert_eq!(back.len(), 4);
        assert!(back.max() >= 3990);
        assert_eq!(read_log(&path, "failed").unwrap().len(), 1);
    }

    #[test]
    fn p99_99_needs_100000_samples_and_p99_needs_1000() {
        assert!(!supports(2_000, 0.9999));
        assert!(supports(100_000, 0.9999));
        assert!(supports(1_000, 0.99));
        assert!(!supports(999, 0.99));
        assert!(supports(20, 0.5));
    }
}
