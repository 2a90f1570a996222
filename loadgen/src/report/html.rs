//! The self-contained HTML report: the summary, one throughput-vs-p99 chart per swept
//! dimension, latency percentile spectra per step, the full table, and the result JSON
//! embedded as data (`<script type="application/json">`, not executed). No external assets.

use std::fmt::Write;

use super::markdown::HOW_TO_READ;
use super::svg::{self, Chart, Series, escape};
use super::{count, micros, pct};
use crate::analysis;
use crate::scenario::Scenario;
use crate::sweep::{StepResult, SweepResult};

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}\
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}\
td.l,th.l{text-align:left}.warn{background:#fff3cd;border:1px solid #e0c36a;padding:.8em}\
.failed{background:#fde2e2}.answer{font-size:1.2em;background:#e8f4ea;border:1px solid #8c8;padding:.8em}code{font-size:11px}svg{margin:.5em 0;border:1px solid #eee}";

/// The x axis of a percentile spectrum: "nines" (90% → 1, 99% → 2, ...), max drawn at 6.
fn nines(p: f64) -> f64 {
    if p >= 100.0 { 6.0 } else { (-(1.0 - p / 100.0).log10()).min(5.5) }
}

fn spectrum_chart(id: &str, title: &str, steps: &[&StepResult], pick: fn(&StepResult) -> Vec<(f64, u64)>) -> String {
    let series: Vec<Series> = steps
        .iter()
        .map(|s| {
            let points: Vec<(f64, f64)> = pick(s).into_iter().map(|(p, us)| (nines(p), us as f64 / 1000.0)).collect();
            let tips = pick(s).into_iter().map(|(p, us)| format!("step {} p{p}: {}", s.index, micros(us))).collect();
            Series { name: format!("step {}", s.index), points, tips }
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let ticks =
        [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"), (5.0, "99.999%"), (6.0, "max")]
            .into_iter()
            .map(|(v, l)| (v, l.to_owned()))
            .collect();
    svg::render(&Chart {
        id: id.into(),
        title: title.into(),
        x_label: "percentile".into(),
        y_label: "latency (ms, log)".into(),
        log_y: true,
        lines: true,
        x_ticks: Some(ticks),
        series: &series,
        marks: Vec::new(),
    })
}

fn supported(spectrum: &[(f64, u64)], count: u64) -> Vec<(f64, u64)> {
    spectrum.iter().copied().filter(|(p, _)| *p >= 100.0 || crate::histogram::supports(count, p / 100.0)).collect()
}

fn supported_spectrum_publish(m: &crate::driver::Measurement) -> Vec<(f64, u64)> {
    supported(&m.publish_spectrum, m.publish_latency.count)
}

fn supported_spectrum_e2e(m: &crate::driver::Measurement) -> Vec<(f64, u64)> {
    supported(&m.end_to_end_spectrum, m.end_to_end_latency.map_or(0, |e| e.count))
}

/// Renders the report.
pub fn render(result: &SweepResult) -> String {
    let analysis = analysis::analyse(result);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>kafka-loadgen: {}</title><style>{STYLE}</style></head><body>",
        escape(&result.scenario.name)
    );
    let _ = write!(h, "<h1>kafka-loadgen sweep <code>{}</code></h1>", escape(&result.scenario.name));
    if result.target.in_process {
        h.push_str(
            "<p class=\"warn\"><b>In-process broker.</b> This sweep ran against librdkafka's mock cluster inside this \
             process. It measures client-side costs only (batching, compression, CPU); there is no disk, replication or \
             network. Use <code>--brokers</code> to measure a real cluster.</p>",
        );
    }
    let _ = write!(h, "<p class=\"answer\" id=\"answer\">{}</p>", escape(&analysis.answer).replace('`', ""));
    h.push_str("<h2>Manifest</h2><ul>");
    let configs: Vec<_> = result.steps.iter().map(|s| s.config).collect();
    for line in super::manifest(&result.environment, &result.target, &result.scenario, &configs) {
        let _ = write!(h, "<li>{}</li>", escape(&line).replace('`', ""));
    }
    let _ = write!(h, "<li>ran {} → {}</li>", escape(&result.started_at), escape(&result.finished_at));
    if let Some(p) = result.steps.iter().find_map(|s| s.payload.as_ref()) {
        let _ = write!(
            h,
            "<li>payload: {} ({:.0} B), measured compressibility zstd {:.2}×, lz4 {:.2}×</li>",
            escape(&p.source),
            p.mean_size,
            p.zstd_ratio,
            p.lz4_ratio
        );
    }
    let _ = write!(
        h,
        "</ul><h2>Method and pass rule</h2><p>{}</p><h2>Best settings</h2><ul>",
        escape(&super::pass_rule_text(&result.scenario.pass)).replace("**", "")
    );
    for (what, step) in [("throughput", analysis.best_throughput), ("p99 latency", analysis.best_p99)] {
        if let Some(s) = step {
            let m = s.measurement.as_ref().expect("measured");
            let _ = write!(
                h,
                "<li><b>{what}</b>: step {} <code>{}</code>: {} msgs/s ({:.1} MB/s), publish p99 {}</li>",
                s.index,
                escape(&s.label),
                count(m.produced.msgs_per_sec),
                m.produced.mb_per_sec,
                pct(&m.publish_latency, 0.99)
            );
        }
    }
    h.push_str("</ul>");
    if let Some(section) = super::paths::html(result) {
        h.push_str(&section);
    }
    h.push_str("<h2>Capacity advice</h2><ul>");
    for a in &analysis.advice {
        let _ = write!(h, "<li>{}</li>", escape(a));
    }
    h.push_str("</ul><h2>Throughput vs p99 latency</h2>");

    let ok: Vec<&StepResult> = result.steps.iter().filter(|s| s.ok() && s.measurement.is_some()).collect();
    let configs: Vec<_> = result.steps.iter().map(|s| s.config).collect();
    let mut dims = Scenario::varied_dimensions(&configs);
    if dims.is_empty() {
        dims.push("rate");
    }
    for dim in dims {
        let mut values: Vec<String> = Vec::new();
        for s in &ok {
            let v = s.config.value(dim);
            if !values.contains(&v) {
                values.push(v);
            }
        }
        let series: Vec<Series> = values
            .iter()
            .map(|v| {
                let with: Vec<&&StepResult> = ok.iter().filter(|s| &s.config.value(dim) == v).collect();
                Series {
                    name: format!("{dim}={v}"),
                    points: with
                        .iter()
                        .map(|s| {
                            let m = s.measurement.as_ref().expect("measured");
                            (m.produced.msgs_per_sec, m.publish_latency.p99 as f64 / 1000.0)
                        })
                        .collect(),
                    tips: with.iter().map(|s| format!("step {}: {}", s.index, s.label)).collect(),
                }
            })
            .collect();
        h.push_str(&svg::render(&Chart {
            id: format!("tput-p99-{dim}"),
            title: format!("throughput vs publish p99, by {dim}"),
            x_label: "produced msgs/s".into(),
            y_label: "publish p99 (ms, log)".into(),
            log_y: true,
            lines: false,
            x_ticks: None,
            series: &series,
            marks: Vec::new(),
        }));
    }
    // Hockey sticks: configurations swept over two or more fixed rates.
    let mut groups: Vec<(String, Vec<&StepResult>)> = Vec::new();
    for st in result.steps.iter().filter(|s| matches!(s.config.rate, crate::scenario::Rate::PerSecond(_))) {
        let key = st.config.label_without_rate();
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(st),
            None => groups.push((key, vec![st])),
        }
    }
    groups.retain(|g| g.1.len() >= 2);
    if !groups.is_empty() {
        h.push_str("<h2>Hockey sticks</h2><p>Achieved rate and publish latency against the offered rate, per configuration; the dashed line marks the knee (the highest sustained rate).</p>");
    }
    for (n, (label, steps)) in groups.iter().enumerate().take(6) {
        let knee = steps
            .iter()
            .filter(|s| analysis::sustained(s))
            .filter_map(|s| s.measurement.as_ref()?.offered_msgs_per_sec)
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
        let _ = write!(h, "<h3>{}</h3>", escape(label));
        h.push_str(&super::capacity::hockey_sticks(
            &format!("hockey-{}", n + 1),
            &format!("configuration {}", n + 1),
            steps,
            knee,
            None,
        ));
    }
    let heat: Vec<(crate::scenario::StepConfig, Option<f64>)> = groups
        .iter()
        .map(|(_, steps)| {
            let best = steps
                .iter()
                .filter(|s| analysis::sustained(s))
                .filter_map(|s| Some(s.measurement.as_ref()?.produced.msgs_per_sec))
                .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
            (steps[0].config, best)
        })
        .collect();
    if let Some(map) = super::capacity::heat_map_of("heat-map", "highest sustained rate (msgs/s)", &heat, "/s") {
        h.push_str("<h2>Highest sustained rate over two dimensions</h2>");
        h.push_str(&map);
    }
    // Per second: the best step and the worst step that was not sustained.
    let mut which: Vec<(&str, &StepResult)> = Vec::new();
    if let Some(b) = analysis.best_throughput {
        which.push(("best", b));
    }
    if let Some(w) = ok
        .iter()
        .copied()
        .filter(|s| s.measurement.as_ref().and_then(|m| m.verdict.as_ref()).is_some_and(|v| !v.sustained))
        .min_by(|a, b| {
            let r = |s: &StepResult| {
                s.measurement.as_ref().and_then(|m| m.verdict.as_ref()).map_or(1.0, |v| v.achieved_ratio)
            };
            r(a).total_cmp(&r(b))
        })
    {
        which.push(("furthest behind", w));
    }
    if !which.is_empty() {
        h.push_str("<h2>Per second</h2><p>Acknowledged messages and publish p99 per second of the measured phase: stalls and rebalances show here.</p>");
        h.push_str(&super::capacity::timelines("timeline", &which));
    }
    // Spectra of the best few steps only: 18 lines on one chart cannot be read.
    let mut best: Vec<&StepResult> =
        ok.iter().copied().filter(|s| !analysis.best_is_sustained || analysis::sustained(s)).collect();
    best.sort_by(|a, b| {
        let t = |s: &StepResult| s.measurement.as_ref().map_or(0.0, |m| m.produced.msgs_per_sec);
        t(b).total_cmp(&t(a))
    });
    best.truncate(3);
    h.push_str("<h2>Latency percentile spectra of the three best steps</h2>");
    h.push_str(&spectrum_chart("spectrum-publish", "publish latency by percentile", &best, |s| {
        s.measurement.as_ref().map(supported_spectrum_publish).unwrap_or_default()
    }));
    h.push_str(&spectrum_chart("spectrum-e2e", "end-to-end latency by percentile", &best, |s| {
        s.measurement.as_ref().map(supported_spectrum_e2e).unwrap_or_default()
    }));

    h.push_str(
        "<h2>All steps</h2><table><tr><th>step</th><th class=l>status</th><th class=l>settings</th><th>achieved msgs/s</th><th>MB/s</th>\
         <th>publish p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>p99.99</th><th>max</th><th>e2e p50</th><th>e2e p99</th>\
         <th>e2e max</th><th>send delay p99</th><th>batch bytes</th><th>msgs/batch</th><th>queue</th><th>rtt</th><th class=l>errors</th></tr>",
    );
    for s in &result.steps {
        let class = if s.ok() { "" } else { " class=\"failed\"" };
        let _ = write!(
            h,
            "<tr{class}><td>{}</td><td class=l>{}</td><td class=l><code>{}</code></td>",
            s.index,
            super::markdown::status(s),
            escape(&s.label)
        );
        match &s.measurement {
            None => {
                let _ = write!(h, "<td colspan=17 class=l>{}</td></tr>", escape(s.failure.as_deref().unwrap_or("")));
            }
            Some(m) => {
                let p = &m.publish_latency;
                let e = m.end_to_end_latency.unwrap_or_default();
                let st = &m.librdkafka;
                let f = |v: Option<f64>, us: bool| match v {
                    Some(v) if us => micros(v as u64),
                    Some(v) => format!("{v:.0}"),
                    None => "–".into(),
                };
                let errors: Vec<String> = m.errors.iter().map(|(k, n)| format!("{k}×{n}")).collect();
                let _ = write!(
                    h,
                    "<td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=l>{}{}</td></tr>",
                    count(m.produced.msgs_per_sec),
                    m.produced.mb_per_sec,
                    pct(p, 0.5),
                    pct(p, 0.9),
                    pct(p, 0.99),
                    pct(p, 0.999),
                    pct(p, 0.9999),
                    micros(p.max),
                    pct(&e, 0.5),
                    pct(&e, 0.99),
                    micros(e.max),
                    m.send_delay.map(|d| pct(&d, 0.99)).unwrap_or_else(|| "–".into()),
                    f(st.avg_batch_bytes, false),
                    f(st.avg_batch_messages, false),
                    f(st.queue_latency_us, true),
                    f(st.broker_rtt_us, true),
                    escape(&errors.join(", ")),
                    s.failure.as_deref().map(|r| format!(" — {}", escape(r))).unwrap_or_default()
                );
            }
        }
    }
    h.push_str("</table><h2>How to read this</h2><ul>");
    for item in HOW_TO_READ.lines() {
        let _ = write!(h, "<li>{}</li>", escape(item.trim_start_matches("- ")).replace("**", ""));
    }
    h.push_str("</ul>");
    let data = serde_json::to_string(result).unwrap_or_default().replace("</", "<\\/");
    let _ = write!(h, "<script type=\"application/json\" id=\"loadgen-data\">{data}</script></body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_self_contained_and_carries_the_charts_data() {
        let result = crate::report::tests::sample(true);
        let html = render(&result);
        assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>"));
        assert!(!html.contains("src=") && !html.contains("href="), "no external assets");
        assert!(!html.contains("https://"), "no external assets");
        assert!(!html.contains("<script src"), "no external scripts");
        for dim in ["batch_size", "linger_ms", "compression"] {
            assert!(html.contains(&format!("id=\"tput-p99-{dim}\"")), "chart for {dim}");
        }
        assert!(html.contains("id=\"spectrum-publish\"") && html.contains("id=\"spectrum-e2e\""));
        // Step 18's point: throughput 60017 msgs/s, publish p99 (100 + 50 000) × 4 µs = 200.4 ms.
        assert!(html.contains("data-x=\"60017\" data-y=\"200.4\""), "chart data present");
        assert!(html.contains("client-side costs only"));
        let start = html.find("id=\"loadgen-data\">").unwrap() + "id=\"loadgen-data\">".len();
        let end = html[start..].find("</script>").unwrap() + start;
        let embedded: crate::sweep::SweepResult =
            serde_json::from_str(&html[start..end].replace("<\\/", "</")).unwrap();
        assert_eq!(embedded, result);
        assert!(html.contains("class=\"failed\""));
    }
}
