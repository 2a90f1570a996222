//! Sizing: from a target rate and what one configuration sustains at the SLO, how many
//! partitions, producer replicas and consumers to run, and what the brokers must carry.
//!
//! ```text
//!   design rate D     = target × (1 + growth)
//!   usable per unit   = 70 % of the measured sustainable rate (queues near saturation wait long)
//!   partitions        = max(D / usable per partition, D / consumer rate), rounded up to a
//!                       multiple of brokers and consumers
//!   producer replicas = D / usable per producer
//!   per broker:  in  = D × RF / brokers            (producers + replication)
//!                out = D × (RF − 1 + groups) / brokers  (replication + consumer groups)
//!                disk write = D × RF / brokers;  storage = D × retention × RF / brokers
//! ```
//!
//! The Universal Scalability Law (Gunther) models throughput at concurrency N as
//! `X(N) = λN / (1 + σ(N − 1) + κN(N − 1))`: σ is contention (serialisation), κ coherency
//! (crosstalk); throughput peaks at `N* = √((1 − σ)/κ)`. [`fit_usl`] fits it to a
//! concurrency sweep (producers or partitions).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Plan for at most this share of a measured sustainable rate.
pub const PLAN_SHARE: f64 = 0.7;

/// A rate in messages or bytes per second: `20000`, `20k msg/s`, `50MB/s`, `5MiB/s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RateSpec {
    /// Messages per second.
    Msgs(f64),
    /// Bytes per second.
    Bytes(f64),
}

impl RateSpec {
    /// Messages per second for messages of `size` bytes.
    pub fn msgs(self, size: f64) -> f64 {
        match self {
            RateSpec::Msgs(m) => m,
            RateSpec::Bytes(b) => b / size.max(1.0),
        }
    }
}

impl FromStr for RateSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().replace(' ', "");
        let bad =
            || Error::invalid(format!("rate `{s}` is not msgs/s (`20000`, `20k`) or bytes/s (`50MB/s`, `5MiB/s`)"));
        let body = t.strip_suffix("/s").unwrap_or(&t);
        let split = body.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(body.len());
        let (num, unit) = body.split_at(split);
        let n: f64 = num.replace('_', "").parse().map_err(|_| bad())?;
        let spec = match unit {
            "" | "msg" | "msgs" => RateSpec::Msgs(n),
            "k" => RateSpec::Msgs(n * 1e3),
            "M" => RateSpec::Msgs(n * 1e6),
            "B" => RateSpec::Bytes(n),
            "KB" | "kB" => RateSpec::Bytes(n * 1e3),
            "MB" => RateSpec::Bytes(n * 1e6),
            "GB" => RateSpec::Bytes(n * 1e9),
            "KiB" => RateSpec::Bytes(n * 1024.0),
            "MiB" => RateSpec::Bytes(n * 1024.0 * 1024.0),
            "GiB" => RateSpec::Bytes(n * 1024.0 * 1024.0 * 1024.0),
            _ => return Err(bad()),
        };
        if n <= 0.0 || !n.is_finite() {
            return Err(bad());
        }
        Ok(spec)
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateSpec::Msgs(m) => write!(f, "{m:.0} msgs/s"),
            RateSpec::Bytes(b) => write!(f, "{:.1} MB/s", b / 1e6),
        }
    }
}

/// `25%` or `0.25`.
pub fn parse_share(s: &str) -> Result<f64> {
    let t = s.trim();
    let percent = t.strip_suffix('%');
    let v = match percent {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| Error::invalid(format!("`{s}` is not a share (`25%` or `0.25`)")))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(Error::invalid(format!("`{s}` is out of range")));
    }
    // A bare number is a fraction: `25` would plan for 26 times the target. Far more likely a
    // percent without its sign; make the user say which.
    if percent.is_none() && v > 10.0 {
        return Err(Error::invalid(format!(
            "`{s}` is a fraction, so {:.0} %: write `{s}%` for {s} %, or the fraction itself (`{}`)",
            v * 100.0,
            v / 100.0
        )));
    }
    Ok(v)
}

/// What the user plans for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizingInput {
    /// The rate to carry today.
    pub target: RateSpec,
    /// Growth on top (0.25 = 25 %).
    pub growth: f64,
    /// How long the topic keeps data.
    #[serde(with = "crate::scenario::values::human_duration")]
    pub retention: Duration,
    /// Replication factor.
    pub replication_factor: u32,
    /// Consumer groups reading everything.
    pub consumer_groups: u32,
    /// Brokers.
    pub brokers: u32,
    /// Mean message size, bytes.
    pub message_size: f64,
}

/// What one configuration sustained at the SLO.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeasuredRates {
    /// Sustained msgs/s per partition (producer side): the configuration's sustained rate
    /// over the partitions it ran with.
    pub per_partition: f64,
    /// The partitions the configuration ran with (0 when not known: older files).
    #[serde(default)]
    pub partitions_tested: u32,
    /// Sustained msgs/s per producer.
    pub per_producer: f64,
    /// What one application consumer processes, msgs/s.
    pub per_consumer: f64,
}

/// The recommendation, with the arithmetic shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    /// The inputs.
    pub input: SizingInput,
    /// The measured rates used.
    pub measured: MeasuredRates,
    /// Design rate, msgs/s and MB/s.
    pub design_msgs_per_sec: f64,
    /// Design rate, MB/s.
    pub design_mb_per_sec: f64,
    /// Partitions the producer side needs.
    pub partitions_for_producers: u32,
    /// Partitions the consumer side needs (one per consumer).
    pub partitions_for_consumers: u32,
    /// Recommended partitions.
    pub partitions: u32,
    /// Consumers per group.
    pub consumers: u32,
    /// Application producer replicas.
    pub producer_replicas: u32,
    /// Network into each broker, MB/s.
    pub broker_in_mb_per_sec: f64,
    /// Network out of each broker, MB/s.
    pub broker_out_mb_per_sec: f64,
    /// Disk writes per broker, MB/s.
    pub broker_disk_write_mb_per_sec: f64,
    /// Storage per broker for the retention, GB.
    pub broker_storage_gb: f64,
    /// Which limit decides the partition count.
    pub binding: String,
    /// The formulas with the numbers filled in.
    pub formulas: Vec<String>,
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn round_up_to(n: u32, multiple: u32) -> u32 {
    let m = multiple.max(1);
    n.div_ceil(m) * m
}

/// Sizes a deployment.
pub fn size(input: &SizingInput, measured: &MeasuredRates) -> Sizing {
    let size = input.message_size.max(1.0);
    let target = input.target.msgs(size);
    let d = target * (1.0 + input.growth);
    let d_mb = d * size / 1e6;
    let usable_partition = PLAN_SHARE * measured.per_partition;
    let usable_producer = PLAN_SHARE * measured.per_producer;
    let p_prod = (d / usable_partition.max(1e-9)).ceil().max(1.0) as u32;
    let consumers = (d / measured.per_consumer.max(1e-9)).ceil().max(1.0) as u32;
    let p_cons = consumers;
    let needed = p_prod.max(p_cons);
    let brokers = input.brokers.max(1);
    let lcm = brokers / gcd(brokers, consumers) * consumers;
    let (partitions, rounding) = if round_up_to(needed, lcm) <= needed.saturating_mul(2).max(lcm) && lcm <= 4 * needed {
        (
            round_up_to(needed, lcm),
            format!("rounded up to a multiple of {brokers} broker(s) and {consumers} consumer(s) (lcm {lcm})"),
        )
    } else {
        (round_up_to(needed, brokers), format!("rounded up to a multiple of {brokers} broker(s)"))
    };
    let replicas = (d / usable_producer.max(1e-9)).ceil().max(1.0) as u32;
    let rf = input.replication_factor.max(1) as f64;
    let b = brokers as f64;
    let groups = input.consumer_groups as f64;
    let broker_in = d_mb * rf / b;
    let broker_out = d_mb * (rf - 1.0 + groups) / b;
    let disk = d_mb * rf / b;
    let storage_gb = d_mb * input.retention.as_secs_f64() * rf / b / 1e3;
    let binding = if p_prod >= p_cons {
        // Measured on one partition count: dividing by it assumes the rate grows with
        // partitions, which holds only while the partitions, not the producers, limit it.
        let tested = match measured.partitions_tested {
            0 => String::new(),
            n => format!(
                " ({:.0} msgs/s over the {n} partitions tested; this assumes throughput grows with partitions: \
                 sweep --partitions to check)",
                measured.per_partition * f64::from(n)
            ),
        };
        format!("producer side: {:.0} msgs/s per partition sustained at the SLO{tested}", measured.per_partition)
    } else {
        format!("consumer side: {:.0} msgs/s per consumer", measured.per_consumer)
    };
    let formulas = vec![
        format!(
            "D = target × (1 + growth) = {target:.0} × {:.2} = {d:.0} msgs/s ({d_mb:.1} MB/s at {size:.0} B)",
            1.0 + input.growth
        ),
        format!(
            "partitions (producers) = ⌈D / (70 % × {:.0} per partition)⌉ = ⌈{d:.0} / {usable_partition:.0}⌉ = {p_prod}",
            measured.per_partition
        ),
        format!("consumers = partitions (consumers) = ⌈D / {:.0} per consumer⌉ = {p_cons}", measured.per_consumer),
        format!("partitions = max({p_prod}, {p_cons}) = {needed}, {rounding} → {partitions}"),
        format!(
            "producer replicas = ⌈D / (70 % × {:.0} per producer)⌉ = ⌈{d:.0} / {usable_producer:.0}⌉ = {replicas}",
            measured.per_producer
        ),
        format!("network in per broker = D × RF / brokers = {d_mb:.1} × {rf} / {b} = {broker_in:.1} MB/s"),
        format!(
            "network out per broker = D × (RF − 1 + groups) / brokers = {d_mb:.1} × ({rf} − 1 + {groups}) / {b} = {broker_out:.1} MB/s"
        ),
        format!("disk write per broker = D × RF / brokers = {disk:.1} MB/s"),
        format!(
            "storage per broker = D × retention × RF / brokers = {d_mb:.1} MB/s × {} s × {rf} / {b} = {storage_gb:.0} GB",
            input.retention.as_secs()
        ),
        "broker bytes are the messages' own (uncompressed, without Kafka's batch and record overhead): \
         compression lowers them by its ratio, and small messages add tens of bytes each"
            .to_owned(),
    ];
    Sizing {
        input: input.clone(),
        measured: *measured,
        design_msgs_per_sec: d,
        design_mb_per_sec: d_mb,
        partitions_for_producers: p_prod,
        partitions_for_consumers: p_cons,
        partitions,
        consumers,
        producer_replicas: replicas,
        broker_in_mb_per_sec: broker_in,
        broker_out_mb_per_sec: broker_out,
        broker_disk_write_mb_per_sec: disk,
        broker_storage_gb: storage_gb,
        binding,
        formulas,
    }
}

/// A Universal Scalability Law fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UslFit {
    /// What N is (`producers` or `partitions`).
    pub dimension: String,
    /// The configuration apart from N.
    pub configuration: String,
    /// The points fitted, (N, msgs/s).
    pub points: Vec<(f64, f64)>,
    /// Throughput of one unit, msgs/s.
    pub lambda: f64,
    /// Contention.
    pub sigma: f64,
    /// Coherency.
    pub kappa: f64,
    /// Where throughput peaks (`None`: no coherency cost measured, no peak).
    pub peak_n: Option<f64>,
    /// Predicted throughput at the peak.
    pub peak_msgs_per_sec: Option<f64>,
    /// Root-mean-square relative error of the fit.
    pub rms_relative_error: f64,
}

/// Predicted throughput at `n`.
pub fn usl(lambda: f64, sigma: f64, kappa: f64, n: f64) -> f64 {
    lambda * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))
}

/// Fits the USL to `(N, X)` points (at least three distinct N). λ is the throughput per unit
/// at the smallest N measured (X(1) when N = 1 is among them); σ and κ come from linear
/// least squares on `Nλ/X − 1 = σ(N − 1) + κN(N − 1)`, each kept non-negative.
pub fn fit_usl(dimension: &str, configuration: &str, points: &[(f64, f64)]) -> Option<UslFit> {
    let mut pts: Vec<(f64, f64)> = points.iter().copied().filter(|&(n, x)| n >= 1.0 && x > 0.0).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts.dedup_by(|a, b| a.0 == b.0);
    if pts.len() < 3 {
        return None;
    }
    let (n0, x0) = pts[0];
    let lambda = x0 / n0;
    let rows: Vec<(f64, f64, f64)> = pts.iter().map(|&(n, x)| (n - 1.0, n * (n - 1.0), n * lambda / x - 1.0)).collect();
    let (mut saa, mut sab, mut sbb, mut say, mut sby) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(a, b, y) in &rows {
        saa += a * a;
        sab += a * b;
        sbb += b * b;
        say += a * y;
        sby += b * y;
    }
    let det = saa * sbb - sab * sab;
    let (mut sigma, mut kappa) =
        if det.abs() > 1e-12 { ((say * sbb - sby * sab) / det, (saa * sby - sab * say) / det) } else { (0.0, 0.0) };
    if sigma < 0.0 {
        sigma = 0.0;
        kappa = if sbb > 0.0 { (sby / sbb).max(0.0) } else { 0.0 };
    }
    if kappa < 0.0 {
        kappa = 0.0;
        sigma = if saa > 0.0 { (say / saa).max(0.0) } else { 0.0 };
    }
    let peak_n = (kappa > 1e-12 && sigma < 1.0).then(|| ((1.0 - sigma) / kappa).sqrt());
    let err = (pts.iter().map(|&(n, x)| ((usl(lambda, sigma, kappa, n) - x) / x).powi(2)).sum::<f64>()
        / pts.len() as f64)
        .sqrt();
    Some(UslFit {
        dimension: dimension.into(),
        configuration: configuration.into(),
        points: pts,
        lambda,
        sigma,
        kappa,
        peak_msgs_per_sec: peak_n.map(|n| usl(lambda, sigma, kappa, n)),
        peak_n,
        rms_relative_error: err,
    })
}

/// Mean and 95 % confidence half-width (Student's t) of `xs`.
pub fn mean_ci95(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, t95(n - 1) * (var / n as f64).sqrt())
}

/// Student's t for a two-sided 95 % interval with `df` degrees of freedom. Past 30 the
/// value of the bracket's lowest df is taken, so an interval is never narrower than it is.
fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        31..=40 => T[29],
        41..=60 => 2.021,
        61..=120 => 2.000,
        _ => 1.980,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> (SizingInput, MeasuredRates) {
        (
            SizingInput {
                target: "50MB/s".parse().unwrap(),
                growth: 0.2,
                retention: Duration::from_secs(7 * 86_400),
                replication_factor: 3,
                consumer_groups: 2,
                brokers: 3,
                message_size: 1000.0,
            },
            MeasuredRates {
                per_partition: 5_000.0,
                partitions_tested: 3,
                per_producer: 20_000.0,
                per_consumer: 4_000.0,
            },
        )
    }

    /// 50 MB/s of 1 kB messages + 20 % growth = 60 000 msgs/s; 70 % of 5 000 per partition
    /// → 18 partitions; 4 000 per consumer → 15 consumers; lcm(3, 15) = 15 → 30 partitions.
    #[test]
    fn fifty_mb_per_s_with_20_percent_growth_on_3_brokers_needs_30_partitions_and_5_producers() {
        let (input, measured) = example();
        let s = size(&input, &measured);
        assert!((s.design_msgs_per_sec - 60_000.0).abs() < 1e-6);
        assert!((s.design_mb_per_sec - 60.0).abs() < 1e-9);
        assert_eq!(s.partitions_for_producers, 18);
        assert_eq!(s.partitions_for_consumers, 15);
        assert_eq!(s.consumers, 15);
        assert_eq!(s.partitions, 30);
        assert_eq!(s.producer_replicas, 5);
        assert!(s.binding.starts_with("producer side"), "{}", s.binding);
        assert!(
            s.binding.contains("15000 msgs/s over the 3 partitions tested") && s.binding.contains("sweep --partitions"),
            "{}",
            s.binding
        );
    }

    /// RF 3 on 3 brokers with 2 consumer groups: each broker takes in D × 3 / 3 = 60 MB/s and
    /// sends out D × (2 + 2) / 3 = 80 MB/s; a week of retention is 36 288 GB per broker.
    #[test]
    fn sixty_mb_per_s_at_rf3_and_two_groups_is_60_in_80_out_per_broker_and_36_tb_a_week() {
        let (input, measured) = example();
        let s = size(&input, &measured);
        assert!((s.broker_in_mb_per_sec - 60.0).abs() < 1e-9);
        assert!((s.broker_out_mb_per_sec - 80.0).abs() < 1e-9);
        assert!((s.broker_disk_write_mb_per_sec - 60.0).abs() < 1e-9);
        assert!((s.broker_storage_gb - 36_288.0).abs() < 1e-6, "{}", s.broker_storage_gb);
        assert!(s.formulas.iter().any(|f| f.contains("(RF − 1 + groups)")));
    }

    /// Slow consumers (1 000 msgs/s each) bind: 60 consumers, so 60 partitions.
    #[test]
    fn consumers_at_1000_per_s_bind_at_60_partitions() {
        let (input, mut measured) = example();
        measured.per_consumer = 1_000.0;
        let s = size(&input, &measured);
        assert_eq!(s.partitions_for_consumers, 60);
        assert_eq!(s.partitions, 60);
        assert!(s.binding.starts_with("consumer side"), "{}", s.binding);
    }

    #[test]
    fn rates_and_shares_parse() {
        assert_eq!("50MB/s".parse::<RateSpec>().unwrap(), RateSpec::Bytes(50e6));
        assert_eq!("20000".parse::<RateSpec>().unwrap(), RateSpec::Msgs(20_000.0));
        assert_eq!("20k".parse::<RateSpec>().unwrap(), RateSpec::Msgs(20_000.0));
        assert_eq!("20000msgs/s".parse::<RateSpec>().unwrap(), RateSpec::Msgs(20_000.0));
        assert!("fast".parse::<RateSpec>().is_err());
        assert_eq!(parse_share("25%").unwrap(), 0.25);
        // `25` is not 2 500 % growth by accident: the error says how to write either.
        let error = parse_share("25").unwrap_err().to_string();
        assert!(error.contains("`25%`") && error.contains("2500 %"), "{error}");
        assert_eq!(parse_share("2").unwrap(), 2.0);
        assert_eq!(parse_share("0.5").unwrap(), 0.5);
    }

    /// λ = 1000, σ = 0.1, κ = 0.01: the fit recovers them and the peak at √(0.9/0.01) ≈ 9.49.
    #[test]
    fn usl_with_sigma_0_1_and_kappa_0_01_peaks_at_9_5() {
        let points: Vec<(f64, f64)> =
            [1.0, 2.0, 4.0, 8.0, 16.0].iter().map(|&n| (n, usl(1000.0, 0.1, 0.01, n))).collect();
        let fit = fit_usl("producers", "x", &points).unwrap();
        assert!((fit.lambda - 1000.0).abs() < 1e-6);
        assert!((fit.sigma - 0.1).abs() < 1e-6, "{fit:?}");
        assert!((fit.kappa - 0.01).abs() < 1e-6, "{fit:?}");
        assert!((fit.peak_n.unwrap() - 9.4868).abs() < 1e-3);
        assert!(fit.rms_relative_error < 1e-9);
        assert!(fit_usl("producers", "x", &points[..2]).is_none(), "two points fit anything");
    }

    #[test]
    fn linear_scaling_has_no_peak() {
        let points = [(1.0, 100.0), (2.0, 200.0), (4.0, 400.0)];
        let fit = fit_usl("partitions", "x", &points).unwrap();
        assert!(fit.sigma.abs() < 1e-9 && fit.kappa.abs() < 1e-9);
        assert!(fit.peak_n.is_none());
    }

    #[test]
    fn students_t_is_never_the_normal_value_for_a_small_sample() {
        assert_eq!(t95(2), 4.303);
        assert_eq!(t95(11), 2.201); // 12 repeats: not 1.96
        assert_eq!(t95(30), 2.042);
        assert!(t95(35) >= 2.03 && t95(1000) > 1.96);
    }

    /// Three repeats 9 900, 10 000, 10 100: mean 10 000, half-width t(2) × 100/√3 ≈ 248.
    #[test]
    fn three_repeats_of_9900_10000_10100_give_10000_plus_minus_248() {
        let (mean, half) = mean_ci95(&[9_900.0, 10_000.0, 10_100.0]);
        assert!((mean - 10_000.0).abs() < 1e-9);
        assert!((half - 248.4).abs() < 0.1, "{half}");
    }
}
