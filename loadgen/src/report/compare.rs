//! `compare`: two results side by side, steps matched by their settings.

use std::fmt::Write;

use super::{count, micros};
use crate::sweep::{StepResult, SweepResult};

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
         | settings | A msgs/s | B msgs/s | B/A | A publish p99 | B publish p99 | B/A | notes |\n|---|---|---|---|---|---|---|---|"
    );
    let mut labels: Vec<&str> = a.steps.iter().map(|s| s.label.as_str()).collect();
    for s in &b.steps {
        if !labels.contains(&s.label.as_str()) {
            labels.push(&s.label);
        }
    }
    for label in labels {
        let (ta, la, na) = cells(a.steps.iter().find(|s| s.label == label));
        let (tb, lb, nb) = cells(b.steps.iter().find(|s| s.label == label));
        let notes: Vec<String> = [("A", na), ("B", nb)]
            .into_iter()
            .filter(|(_, n)| !n.is_empty())
            .map(|(w, n)| format!("{w} {n}"))
            .collect();
        let show = |t: f64| if t > 0.0 { count(t) } else { "–".into() };
        let lat = |l: u64| if l > 0 { micros(l) } else { "–".into() };
        let _ = writeln!(
            md,
            "| `{label}` | {} | {} | {} | {} | {} | {} | {} |",
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
