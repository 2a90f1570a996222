//! `compare`: two results side by side, steps matched by their settings, with a test of
//! whether a latency difference is real.
//!
//! Each step's raw publish histogram is read back from its `.hlog` file next to the result
//! JSON, and the two are compared with the Mann–Whitney U test (rank-sum, ties shared,
//! normal approximation): it asks whether a message of B tends to take longer than one of
//! A, using every recorded latency rather than one percentile. A p-value under 0.01 is
//! reported as significant; the effect size is P(B > A), 0.5 meaning no difference.
//! Results written before issue 7 have one interval per step in their `.hlog` files; they
//! are read the same way.

use std::fmt::Write;

use std::path::Path;

use super::{count, micros};
use crate::histogram::{self, Latency};
use crate::sweep::{StepResult, SweepResult};

/// The Mann–Whitney U test of two latency histograms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// P(a value of B > a value of A) (+ half the ties).
    pub b_greater: f64,
    /// Standard score of U.
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Runs the test on two histograms (`None` when either is empty).
pub fn mann_whitney(a: &Latency, b: &Latency) -> Option<MannWhitney> {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    if na == 0.0 || nb == 0.0 {
        return None;
    }
    let mut values: std::collections::BTreeMap<u64, (f64, f64)> = std::collections::BTreeMap::new();
    for v in a.iter_recorded() {
        values.entry(v.value_iterated_to()).or_default().0 += v.count_at_value() as f64;
    }
    for v in b.iter_recorded() {
        values.entry(v.value_iterated_to()).or_default().1 += v.count_at_value() as f64;
    }
    let (mut rank, mut rb, mut ties) = (0.0f64, 0.0f64, 0.0f64);
    for (_, (ca, cb)) in values {
        let t = ca + cb;
        rb += cb * (rank + (t + 1.0) / 2.0);
        ties += t * t * t - t;
        rank += t;
    }
    let n = na + nb;
    let ub = rb - nb * (nb + 1.0) / 2.0;
    let mean = na * nb / 2.0;
    let var = na * nb / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    let z = if var > 0.0 { (ub - mean) / var.sqrt() } else { 0.0 };
    Some(MannWhitney { b_greater: ub / (na * nb), z, p: 2.0 * (1.0 - normal_cdf(z.abs())) })
}

/// Φ(x), Abramowitz & Stegun 7.1.26 (error below 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.3275911 * x.abs() / std::f64::consts::SQRT_2);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-(x * x) / 2.0).exp();
    if x >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

fn publish_histogram(dir: Option<&Path>, s: Option<&StepResult>) -> Option<Latency> {
    let log = s?.histogram_log.as_ref()?;
    let h = histogram::read_log(&dir?.join(log), "publish").ok()?;
    (!h.is_empty()).then_some(h)
}

fn significance(a: Option<Latency>, b: Option<Latency>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => match mann_whitney(&a, &b) {
            Some(t) if t.p < 0.01 => format!(
                "**significant** (p={:.1e}): B {} (P(B>A)={:.2})",
                t.p,
                if t.b_greater > 0.5 { "slower" } else { "faster" },
                t.b_greater
            ),
            Some(t) => format!("not significant (p={:.2}, P(B>A)={:.2})", t.p, t.b_greater),
            None => "–".into(),
        },
        _ => "no histograms".into(),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 { format!("{:.2}×", b / a) } else { "–".into() }
}

fn cells(s: Option<&StepResult>) -> (f64, u64, String) {
    match s {
        Some(s) if s.ok() => {
            let m = s.measurement.as_ref().expect("ok steps are measured");
            (m.produced.msgs_per_sec, m.publish_latency.p99, String::new())
        }
        Some(s) => (0.0, 0, format!("failed: {}", s.failure.as_deref().unwrap_or("?"))),
        None => (0.0, 0, "not in this run".into()),
    }
}

/// Renders a Markdown comparison of `a` (baseline) and `b`.
pub fn render(a: &SweepResult, a_name: &str, b: &SweepResult, b_name: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# kafka-loadgen comparison\n");
    let _ = writeln!(md, "- A: `{a_name}`: {} ({}), {}", a.scenario.name, a.target.description, a.started_at);
    let _ = writeln!(md, "- B: `{b_name}`: {} ({}), {}", b.scenario.name, b.target.description, b.started_at);
    if a.target.in_process || b.target.in_process {
        let _ = writeln!(md, "\n> An in-process broker measures client-side costs only; compare like with like.");
    }
    let _ = writeln!(
        md,
        "\nRatios are B/A: above 1× means B has more throughput, or higher (worse) latency.\n\n\
         The latency test is Mann–Whitney U on the raw publish histograms (`.hlog`), significant below p = 0.01.\n\n\
         | settings | A msgs/s | B msgs/s | B/A | A publish p99 | B publish p99 | B/A | publish latency A vs B | notes |\n|---|---|---|---|---|---|---|---|---|"
    );
    let mut labels: Vec<&str> = a.steps.iter().map(|s| s.label.as_str()).collect();
    for s in &b.steps {
        if !labels.contains(&s.label.as_str()) {
            labels.push(&s.label);
        }
    }
    let (dir_a, dir_b) = (Path::new(a_name).parent(), Path::new(b_name).parent());
    for label in labels {
        let (sa, sb) = (a.steps.iter().find(|s| s.label == label), b.steps.iter().find(|s| s.label == label));
        let test = significance(publish_histogram(dir_a, sa), publish_histogram(dir_b, sb));
        let (ta, la, na) = cells(sa);
        let (tb, lb, nb) = cells(sb);
        let notes: Vec<String> = [("A", na), ("B", nb)]
            .into_iter()
            .filter(|(_, n)| !n.is_empty())
            .map(|(w, n)| format!("{w} {n}"))
            .collect();
        let show = |t: f64| if t > 0.0 { count(t) } else { "–".into() };
        let lat = |l: u64| if l > 0 { micros(l) } else { "–".into() };
        let _ = writeln!(
            md,
            "| `{label}` | {} | {} | {} | {} | {} | {} | {test} | {} |",
            show(ta),
            show(tb),
            ratio(ta, tb),
            lat(la),
            lat(lb),
            ratio(la as f64, lb as f64),
            notes.join("; ")
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two identical distributions are not different; shifting B up by 20 % is.
    #[test]
    fn mann_whitney_finds_a_20_percent_shift_and_not_a_copy() {
        let (mut a, mut b, mut c) = (histogram::new(), histogram::new(), histogram::new());
        for i in 0..2000u64 {
            let v = 1000 + (i * 7919) % 1000;
            a.record(v).unwrap();
            b.record(v).unwrap();
            c.record(v * 12 / 10).unwrap();
        }
        let same = mann_whitney(&a, &b).unwrap();
        assert!(same.p > 0.5 && (same.b_greater - 0.5).abs() < 1e-9, "{same:?}");
        let shifted = mann_whitney(&a, &c).unwrap();
        assert!(shifted.p < 1e-6 && shifted.b_greater > 0.6, "{shifted:?}");
        assert!(mann_whitney(&a, &histogram::new()).is_none());
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
    }

    #[test]
    fn matches_steps_by_settings_and_shows_ratios() {
        let a = crate::report::tests::sample(true);
        let mut b = crate::report::tests::sample(false);
        b.steps.truncate(17);
        for s in &mut b.steps {
            if let Some(m) = &mut s.measurement {
                m.produced.msgs_per_sec *= 2.0;
            }
        }
        let md = render(&a, "a.json", &b, "b.json");
        assert!(md.contains("client-side costs only"));
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| `batch=")).collect();
        assert_eq!(rows.len(), 18);
        assert!(rows[0].contains("| 2.00× |"), "{}", rows[0]);
        assert!(rows[5].contains("A failed: broker went away"), "{}", rows[5]);
        assert!(rows[17].contains("B not in this run"), "{}", rows[17]);
    }
}
