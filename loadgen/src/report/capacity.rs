//! The capacity report, answer first: one sentence, the reproducibility manifest, the method
//! and pass rule, then the evidence (hockey-stick curves with the knee and the SLO line, a
//! heat map over two swept dimensions, per-second throughput and p99 of the deciding probes,
//! percentile spectra of the best few configurations), sizing and the USL fit.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::svg::{self, Chart, Mark, Series, escape};
use super::{count, manifest, megabytes, micros, pass_rule_text, pct, write};
use crate::capacity::{CapacityResult, ConfigCapacity};
use crate::error::{Error, Result};
use crate::scenario::{Scenario, StepConfig};
use crate::sizing::PLAN_SHARE;
use crate::sweep::StepResult;

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}\
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}\
td.l,th.l{text-align:left}.answer{font-size:1.25em;background:#e8f4ea;border:1px solid #8c8;padding:.8em}\
.warn{background:#fff3cd;border:1px solid #e0c36a;padding:.8em}.fail{background:#fde2e2}code{font-size:11px}\
svg{margin:.5em 0;border:1px solid #eee}";

/// Writes `capacity.json`, `capacity.md` and `capacity.html` into `dir`.
pub fn write_all(result: &CapacityResult, dir: &Path) -> Result<Vec<PathBuf>> {
    let json = dir.join("capacity.json");
    let md = dir.join("capacity.md");
    let html = dir.join("capacity.html");
    let text = serde_json::to_string_pretty(result)
        .map_err(|e| Error::io("serialising capacity", std::io::Error::other(e)))?;
    write(&json, &text)?;
    write(&md, &markdown(result))?;
    write(&html, &render_html(result))?;
    Ok(vec![json, md, html])
}

/// Reads a `capacity.json`.
pub fn load(path: &Path) -> Result<CapacityResult> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let r: CapacityResult = serde_json::from_str(&text)
        .map_err(|e| Error::BadResult { path: path.display().to_string(), reason: e.to_string() })?;
    if r.format != crate::capacity::FORMAT {
        return Err(Error::BadResult { path: path.display().to_string(), reason: format!("format `{}`", r.format) });
    }
    Ok(r)
}

/// The partitions the answer recommends: the sizing's, else the configuration's own.
fn partitions(result: &CapacityResult, best: &ConfigCapacity) -> u32 {
    result.sizing.as_ref().map(|s| s.partitions).unwrap_or(best.config.partitions)
}

/// The one-sentence answer.
pub fn answer(result: &CapacityResult) -> String {
    // The SLO as given (2.4 ms is not 2 ms, 400 µs is not 0 ms).
    let slo = micros(result.search.slo.publish_p99_us);
    let e2e = result.search.slo.e2e_p99_us.map(|e| format!(" and end-to-end p99 ≤ {}", micros(e))).unwrap_or_default();
    let where_ = if result.target.in_process { " (in-process mock cluster: client-side costs only)" } else { "" };
    match result.best() {
        Some(best) => {
            let mb = best.sustained_mb_per_sec.unwrap_or(0.0);
            let msgs = best.sustained_msgs_per_sec.unwrap_or(0.0);
            let interval = best
                .interval_msgs_per_sec
                .map(|(a, b)| format!(", repeats {}–{} msgs/s (95 %)", count(a), count(b)))
                .unwrap_or_default();
            let unconfirmed = if best.status == "budget" && best.repeats_passed.0 == 0 {
                " Not confirmed by repeats (the search budget ran out first): one passing probe; \
                 rerun with a larger --budget before relying on it."
            } else {
                ""
            };
            format!(
                "Sustains {} MB/s ({} msgs/s{interval}) at publish p99 ≤ {slo}{e2e} with settings `{}`; \
                 plan at {:.0} % of that: {} MB/s ({} msgs/s); {} partitions{where_}.{unconfirmed}",
                megabytes(mb),
                count(msgs),
                best.label,
                PLAN_SHARE * 100.0,
                megabytes(PLAN_SHARE * mb),
                count(PLAN_SHARE * msgs),
                partitions(result, best)
            )
        }
        None => format!(
            "No configuration sustained even the lowest rate tried at publish p99 ≤ {slo}{e2e}{where_}: \
             see the probes below for what failed."
        ),
    }
}

fn method(result: &CapacityResult) -> String {
    let s = &result.search;
    format!(
        "For each configuration (every swept setting except the rate): an open-loop ramp from {} msgs/s, doubling \
         until a probe fails (halving if the first fails); then bisection on a geometric scale until the lowest \
         failing rate is within {:.0} % of the highest passing one; then {} repeats of the highest passing rate for a \
         95 % confidence interval (Student's t). Every probe has a fresh topic and its own warm-up. A probe passes when \
         it is sustained and its publish p99 ≤ {}{}. Budget {}: {}.",
        s.start_rate,
        s.precision * 100.0,
        s.repeats,
        micros(s.slo.publish_p99_us),
        s.slo.e2e_p99_us.map(|e| format!(" and end-to-end p99 ≤ {}", micros(e))).unwrap_or_default(),
        humantime::format_duration(s.budget),
        result.plan.describe(s).lines().next().unwrap_or_default()
    )
}

fn configs_of(result: &CapacityResult) -> Vec<StepConfig> {
    result.configurations.iter().map(|c| c.config).collect()
}

/// Renders `capacity.md`.
pub fn markdown(result: &CapacityResult) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# kafka-loadgen capacity `{}`\n", result.scenario.name);
    let _ = writeln!(md, "**{}**\n", answer(result));
    if result.target.in_process {
        let _ = writeln!(
            md,
            "> **In-process broker.** librdkafka's mock cluster measures client-side costs only; use `--brokers`.\n"
        );
    }
    let _ = writeln!(md, "## Manifest\n");
    for line in manifest(&result.environment, &result.target, &result.scenario, &configs_of(result)) {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(md, "- ran {} → {}", result.started_at, result.finished_at);
    let _ = writeln!(md, "\n## Method\n\n{}\n\n{}\n", method(result), pass_rule_text(&result.scenario.pass));
    let _ = writeln!(md, "## Maximum sustainable rate per configuration\n");
    let _ = writeln!(
        md,
        "| configuration | status | sustained msgs/s | MB/s | 95 % interval (msgs/s) | repeats passed | lowest failing | publish p99 | consumer msgs/s |\n|---|---|---|---|---|---|---|---|---|"
    );
    for c in &result.configurations {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} | {}/{} | {} | {} | {} |",
            c.label,
            c.status,
            c.sustained_msgs_per_sec.map(count).unwrap_or_else(|| "–".into()),
            c.sustained_mb_per_sec.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into()),
            c.interval_msgs_per_sec.map(|(a, b)| format!("{}–{}", count(a), count(b))).unwrap_or_else(|| "–".into()),
            c.repeats_passed.0,
            c.repeats_passed.1,
            c.lowest_failing_rate.map(|r| count(r as f64)).unwrap_or_else(|| "–".into()),
            c.publish_p99_us.map(micros).unwrap_or_else(|| "–".into()),
            c.consumed_msgs_per_sec.map(count).unwrap_or_else(|| "–".into()),
        );
    }
    if let Some(section) = super::paths::capacity_markdown(result) {
        let _ = writeln!(md, "\n{section}");
    }
    if let Some(s) = &result.sizing {
        let _ = writeln!(md, "\n## Sizing\n");
        let _ = writeln!(
            md,
            "For {} with {:.0} % growth, RF {}, {} consumer group(s), {} retention, on {} broker(s), from the measured rates of `{}`:\n",
            s.input.target,
            s.input.growth * 100.0,
            s.input.replication_factor,
            s.input.consumer_groups,
            humantime::format_duration(s.input.retention),
            s.input.brokers,
            result.best().map_or("?", |b| b.label.as_str())
        );
        let _ = writeln!(
            md,
            "- **{} partitions**, {} consumers per group, **{} producer replicas**\n- per broker: {:.1} MB/s in, {:.1} MB/s out, {:.1} MB/s disk writes, {:.0} GB storage\n- binding limit: {}\n",
            s.partitions,
            s.consumers,
            s.producer_replicas,
            s.broker_in_mb_per_sec,
            s.broker_out_mb_per_sec,
            s.broker_disk_write_mb_per_sec,
            s.broker_storage_gb,
            s.binding
        );
        for f in &s.formulas {
            let _ = writeln!(md, "    {f}");
        }
    }
    for fit in &result.usl {
        let _ = writeln!(
            md,
            "\n## Universal Scalability Law over {}\n\n`{}`: λ = {:.0} msgs/s, σ = {:.4}, κ = {:.5}, peak N* = {}, fit error (RMS relative) {:.1} %; points {}",
            fit.dimension,
            fit.configuration,
            fit.lambda,
            fit.sigma,
            fit.kappa,
            fit.peak_n
                .map(|n| format!("{n:.1} ({} msgs/s)", count(fit.peak_msgs_per_sec.unwrap_or(0.0))))
                .unwrap_or_else(|| "none (no coherency cost measured)".into()),
            fit.rms_relative_error * 100.0,
            fit.points.iter().map(|(n, x)| format!("{n:.0}→{}", count(*x))).collect::<Vec<_>>().join(", ")
        );
    }
    let _ = writeln!(
        md,
        "\n## Probes\n\nAchieved is counted as the pass rule counts it: acknowledged messages over the time from \
         the first send to the last acknowledgement, less one message transit.\n"
    );
    let _ = writeln!(
        md,
        "| configuration | phase | offered | achieved | publish p50 / p99 / p99.9 | e2e p99 | error rate | result |\n|---|---|---|---|---|---|---|---|"
    );
    for c in &result.configurations {
        for p in &c.probes {
            let _ = writeln!(
                md,
                "| `{}` | {} | {} | {} | {} / {} / {} | {} | {:.4} % | {} |",
                c.label,
                p.phase,
                count(p.rate as f64),
                count(p.achieved_msgs_per_sec),
                pct(&p.publish, 0.5),
                pct(&p.publish, 0.99),
                pct(&p.publish, 0.999),
                p.end_to_end.as_ref().map(|e| pct(e, 0.99)).unwrap_or_else(|| "–".into()),
                p.error_rate * 100.0,
                if p.passed { "pass".to_owned() } else { format!("FAIL: {}", p.reasons.join("; ")) }
            );
        }
    }
    let notes: Vec<String> =
        result.steps.iter().flat_map(|s| s.notes.iter().map(move |n| format!("probe {}: {n}", s.index))).collect();
    if !notes.is_empty() {
        let mut notes = notes;
        notes.dedup_by(|a, b| a.split_once(": ").map(|x| x.1) == b.split_once(": ").map(|x| x.1));
        let _ = writeln!(md, "\n## Notes\n");
        for n in notes.iter().take(30) {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// Hockey sticks of one configuration's probes: achieved vs offered, and latency vs offered.
pub(crate) fn hockey_sticks(
    id: &str,
    title: &str,
    steps: &[&StepResult],
    knee: Option<f64>,
    slo_ms: Option<f64>,
) -> String {
    let mut pts: Vec<(f64, &StepResult)> =
        steps.iter().filter_map(|s| Some((s.measurement.as_ref()?.offered_msgs_per_sec?, *s))).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let tip = |s: &StepResult| {
        let m = s.measurement.as_ref().expect("filtered");
        let verdict =
            m.verdict
                .as_ref()
                .map(|v| {
                    if v.sustained {
                        "sustained".to_owned()
                    } else {
                        format!("not sustained: {}", v.reasons.join("; "))
                    }
                })
                .unwrap_or_default();
        format!(
            "step {}: offered {:.0}, achieved {:.0} msgs/s; {verdict}",
            s.index,
            m.offered_msgs_per_sec.unwrap_or(0.0),
            m.produced.msgs_per_sec
        )
    };
    let achieved = vec![
        Series {
            name: "achieved".into(),
            points: pts
                .iter()
                .map(|(o, s)| (*o, s.measurement.as_ref().map_or(0.0, |m| m.produced.msgs_per_sec)))
                .collect(),
            tips: pts.iter().map(|(_, s)| tip(s)).collect(),
        },
        Series {
            name: "offered (ideal)".into(),
            points: pts.iter().map(|(o, _)| (*o, *o)).collect(),
            tips: Vec::new(),
        },
    ];
    let mut marks = Vec::new();
    if let Some(k) = knee {
        marks.push(Mark { horizontal: false, value: k, label: format!("knee {}", count(k)) });
    }
    let mut out = svg::render(&Chart {
        id: format!("{id}-achieved"),
        title: format!("{title}: achieved vs offered"),
        x_label: "offered msgs/s".into(),
        y_label: "achieved msgs/s".into(),
        log_y: false,
        lines: true,
        x_ticks: None,
        series: &achieved,
        marks,
    });
    let latency: Vec<Series> = [("p50", 0.5), ("p99", 0.99), ("p99.9", 0.999)]
        .into_iter()
        .map(|(name, q)| {
            let with: Vec<&(f64, &StepResult)> = pts
                .iter()
                .filter(|(_, s)| {
                    s.measurement.as_ref().is_some_and(|m| crate::histogram::supports(m.publish_latency.count, q))
                })
                .collect();
            Series {
                name: format!("publish {name}"),
                points: with
                    .iter()
                    .map(|(o, s)| {
                        let p = s.measurement.as_ref().expect("filtered").publish_latency;
                        let v = match name {
                            "p50" => p.p50,
                            "p99" => p.p99,
                            _ => p.p999,
                        };
                        (*o, v as f64 / 1e3)
                    })
                    .collect(),
                tips: with.iter().map(|(_, s)| tip(s)).collect(),
            }
        })
        .collect();
    let mut marks = Vec::new();
    if let Some(k) = knee {
        marks.push(Mark { horizontal: false, value: k, label: "knee".into() });
    }
    if let Some(slo) = slo_ms {
        marks.push(Mark { horizontal: true, value: slo, label: format!("SLO p99 {slo:.0} ms") });
    }
    out.push_str(&svg::render(&Chart {
        id: format!("{id}-latency"),
        title: format!("{title}: publish latency vs offered"),
        x_label: "offered msgs/s".into(),
        y_label: "publish latency (ms, log)".into(),
        log_y: true,
        lines: true,
        x_ticks: None,
        series: &latency,
        marks,
    }));
    out
}

/// Per-second acknowledged rate and p99 of a few steps: stalls and rebalances show here.
pub(crate) fn timelines(id: &str, steps: &[(&str, &StepResult)]) -> String {
    let mut rate = Vec::new();
    let mut p99 = Vec::new();
    for (name, s) in steps {
        let Some(m) = &s.measurement else { continue };
        rate.push(Series {
            name: (*name).to_owned(),
            points: m.timeline.iter().map(|t| (t.second as f64, t.acked as f64)).collect(),
            tips: m
                .timeline
                .iter()
                .map(|t| {
                    format!(
                        "step {} second {}: {} acked, {} failed, {} read",
                        s.index, t.second, t.acked, t.failed, t.consumed
                    )
                })
                .collect(),
        });
        p99.push(Series {
            name: (*name).to_owned(),
            points: m.timeline.iter().filter_map(|t| Some((t.second as f64, t.publish_p99_us? as f64 / 1e3))).collect(),
            tips: Vec::new(),
        });
    }
    let mut out = svg::render(&Chart {
        id: format!("{id}-rate"),
        title: "acknowledged msgs per second of the measured phase".into(),
        x_label: "second".into(),
        y_label: "msgs/s".into(),
        log_y: false,
        lines: true,
        x_ticks: None,
        series: &rate,
        marks: Vec::new(),
    });
    out.push_str(&svg::render(&Chart {
        id: format!("{id}-p99"),
        title: "publish p99 per second".into(),
        x_label: "second".into(),
        y_label: "ms (log)".into(),
        log_y: true,
        lines: true,
        x_ticks: None,
        series: &p99,
        marks: Vec::new(),
    }));
    out
}

/// A heat map of `value` over the first two varied dimensions of `configs`.
pub(crate) fn heat_map_of(id: &str, title: &str, configs: &[(StepConfig, Option<f64>)], unit: &str) -> Option<String> {
    let steps: Vec<StepConfig> = configs.iter().map(|c| c.0).collect();
    let dims: Vec<&str> = Scenario::varied_dimensions(&steps).into_iter().filter(|d| *d != "rate").collect();
    let (rd, cd) = (*dims.first()?, *dims.get(1)?);
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    for s in &steps {
        let (r, c) = (s.value(rd), s.value(cd));
        if !rows.contains(&r) {
            rows.push(r);
        }
        if !cols.contains(&c) {
            cols.push(c);
        }
    }
    // Several configurations per cell (a third dimension): the cell shows the best.
    let cells: Vec<Vec<Option<f64>>> = rows
        .iter()
        .map(|r| {
            cols.iter()
                .map(|c| {
                    configs
                        .iter()
                        .filter(|(s, _)| &s.value(rd) == r && &s.value(cd) == c)
                        .filter_map(|(_, v)| *v)
                        .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
                })
                .collect()
        })
        .collect();
    Some(svg::heat_map(id, title, rd, cd, &rows, &cols, &cells, unit))
}

/// Spectra of a few steps only.
pub(crate) fn spectra(id: &str, steps: &[(&str, &StepResult)]) -> String {
    let nines = |p: f64| if p >= 100.0 { 6.0 } else { (-(1.0 - p / 100.0).log10()).min(5.5) };
    let series: Vec<Series> = steps
        .iter()
        .filter_map(|(name, s)| {
            let m = s.measurement.as_ref()?;
            // Only the percentiles the sample count supports.
            let pts: Vec<(f64, u64)> = m
                .publish_spectrum
                .iter()
                .copied()
                .filter(|(p, _)| *p >= 100.0 || crate::histogram::supports(m.publish_latency.count, p / 100.0))
                .collect();
            Some(Series {
                name: (*name).to_owned(),
                points: pts.iter().map(|(p, us)| (nines(*p), *us as f64 / 1e3)).collect(),
                tips: pts.iter().map(|(p, us)| format!("{name} p{p}: {}", micros(*us))).collect(),
            })
        })
        .collect();
    let ticks =
        [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"), (5.0, "99.999%"), (6.0, "max")]
            .into_iter()
            .map(|(v, l)| (v, l.to_owned()))
            .collect();
    svg::render(&Chart {
        id: id.into(),
        title: "publish latency by percentile (best configurations; unsupported percentiles left out)".into(),
        x_label: "percentile".into(),
        y_label: "ms (log)".into(),
        log_y: true,
        lines: true,
        x_ticks: Some(ticks),
        series: &series,
        marks: Vec::new(),
    })
}

/// Renders `capacity.html`.
pub fn render_html(result: &CapacityResult) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>kafka-loadgen capacity: {}</title><style>{STYLE}</style></head><body>",
        escape(&result.scenario.name)
    );
    let _ = write!(h, "<h1>kafka-loadgen capacity <code>{}</code></h1>", escape(&result.scenario.name));
    let _ = write!(h, "<p class=\"answer\" id=\"answer\">{}</p>", escape(&answer(result)).replace('`', ""));
    if result.target.in_process {
        h.push_str("<p class=\"warn\"><b>In-process broker.</b> librdkafka's mock cluster measures client-side costs only; use <code>--brokers</code> to measure a real cluster.</p>");
    }
    h.push_str("<h2>Manifest</h2><ul>");
    for line in manifest(&result.environment, &result.target, &result.scenario, &configs_of(result)) {
        let _ = write!(h, "<li>{}</li>", escape(&line).replace('`', ""));
    }
    let _ = write!(
        h,
        "</ul><h2>Method and pass rule</h2><p>{}</p><p>{}</p>",
        escape(&method(result)),
        escape(&pass_rule_text(&result.scenario.pass)).replace("**", "")
    );

    h.push_str("<h2>Maximum sustainable rate per configuration</h2><table><tr><th class=l>configuration</th><th class=l>status</th><th>sustained msgs/s</th><th>MB/s</th><th>95 % interval</th><th>repeats passed</th><th>lowest failing</th><th>publish p99</th></tr>");
    for c in &result.configurations {
        let _ = write!(
            h,
            "<tr><td class=l><code>{}</code></td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td></tr>",
            escape(&c.label),
            escape(&c.status),
            c.sustained_msgs_per_sec.map(count).unwrap_or_else(|| "–".into()),
            c.sustained_mb_per_sec.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into()),
            c.interval_msgs_per_sec.map(|(a, b)| format!("{}–{}", count(a), count(b))).unwrap_or_else(|| "–".into()),
            c.repeats_passed.0,
            c.repeats_passed.1,
            c.lowest_failing_rate.map(|r| count(r as f64)).unwrap_or_else(|| "–".into()),
            c.publish_p99_us.map(micros).unwrap_or_else(|| "–".into())
        );
    }
    h.push_str("</table>");

    let heat: Vec<(StepConfig, Option<f64>)> =
        result.configurations.iter().map(|c| (c.config, c.sustained_msgs_per_sec)).collect();
    if let Some(map) = heat_map_of("heat-map", "max rate at SLO (msgs/s)", &heat, "/s") {
        h.push_str("<h2>Max rate at the SLO over two dimensions</h2>");
        h.push_str(&map);
    }

    // Best few configurations first: their hockey sticks, timelines and spectra.
    let mut ranked: Vec<&ConfigCapacity> = result.configurations.iter().collect();
    ranked.sort_by(|a, b| result.rank_load(b).total_cmp(&result.rank_load(a)));
    let step_of = |i: usize| result.steps.iter().find(|s| s.index == i);
    h.push_str("<h2>Hockey sticks</h2><p>Each probe's achieved rate and publish latency against its offered rate; the dashed lines mark the knee (the highest passing rate) and the SLO.</p>");
    for (n, c) in ranked.iter().take(4).enumerate() {
        let steps: Vec<&StepResult> = c.probes.iter().filter_map(|p| step_of(p.step)).collect();
        let _ = write!(h, "<h3>{}</h3>", escape(&c.label));
        h.push_str(&hockey_sticks(
            &format!("hockey-{}", n + 1),
            &format!("configuration {}", n + 1),
            &steps,
            c.sustained_msgs_per_sec,
            Some(result.search.slo.publish_p99_us as f64 / 1e3),
        ));
    }
    if let Some(best) = ranked.first() {
        let pass = best.probes.iter().rev().find(|p| p.passed).and_then(|p| step_of(p.step));
        let fail = best
            .probes
            .iter()
            .filter(|p| !p.passed && Some(p.rate) == best.lowest_failing_rate)
            .find_map(|p| step_of(p.step));
        let mut which: Vec<(&str, &StepResult)> = Vec::new();
        if let Some(p) = pass {
            which.push(("highest passing", p));
        }
        if let Some(f) = fail {
            which.push(("lowest failing", f));
        }
        h.push_str("<h2>Per second: the deciding probes of the best configuration</h2>");
        h.push_str(&timelines("timeline", &which));
        let spectra_steps: Vec<(String, &StepResult)> = ranked
            .iter()
            .take(3)
            .filter_map(|c| {
                let p = c.probes.iter().rev().find(|p| p.passed)?;
                Some((
                    format!("{} msgs/s: {}", count(p.rate as f64), c.label.chars().take(40).collect::<String>()),
                    step_of(p.step)?,
                ))
            })
            .collect();
        let named: Vec<(&str, &StepResult)> = spectra_steps.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        h.push_str("<h2>Percentile spectra of the best configurations</h2>");
        h.push_str(&spectra("spectra", &named));
    }
    if let Some(s) = &result.sizing {
        let _ = write!(
            h,
            "<h2>Sizing</h2><p>From the measured rates of <code>{}</code>: <b>{} partitions</b>, {} consumers per group, <b>{} producer replicas</b>; per broker {:.1} MB/s in, {:.1} MB/s out, {:.1} MB/s disk writes, {:.0} GB storage. Binding limit: {}.</p><pre>{}</pre>",
            escape(result.best().map_or("?", |b| b.label.as_str())),
            s.partitions,
            s.consumers,
            s.producer_replicas,
            s.broker_in_mb_per_sec,
            s.broker_out_mb_per_sec,
            s.broker_disk_write_mb_per_sec,
            s.broker_storage_gb,
            escape(&s.binding),
            escape(&s.formulas.join("\n"))
        );
    }
    for fit in &result.usl {
        let _ = write!(
            h,
            "<h2>Universal Scalability Law over {}</h2><p><code>{}</code>: λ = {:.0} msgs/s, σ = {:.4}, κ = {:.5}, N* = {}, fit error {:.1} %.</p>",
            escape(&fit.dimension),
            escape(&fit.configuration),
            fit.lambda,
            fit.sigma,
            fit.kappa,
            fit.peak_n.map(|n| format!("{n:.1}")).unwrap_or_else(|| "none".into()),
            fit.rms_relative_error * 100.0
        );
        let measured = Series { name: "measured".into(), points: fit.points.clone(), tips: Vec::new() };
        let max_n = fit.points.iter().map(|p| p.0).fold(1.0, f64::max).max(fit.peak_n.unwrap_or(0.0).min(64.0));
        let model = Series {
            name: "USL".into(),
            points: (1..=(max_n.ceil() as u32 * 10))
                .map(|i| i as f64 / 10.0)
                .filter(|n| *n >= 1.0)
                .map(|n| (n, crate::sizing::usl(fit.lambda, fit.sigma, fit.kappa, n)))
                .collect(),
            tips: Vec::new(),
        };
        h.push_str(&svg::render(&Chart {
            id: format!("usl-{}", fit.dimension),
            title: format!("USL fit over {}", fit.dimension),
            x_label: fit.dimension.clone(),
            y_label: "msgs/s at the SLO".into(),
            log_y: false,
            lines: true,
            x_ticks: None,
            series: &[measured, model],
            marks: fit
                .peak_n
                .map(|n| vec![Mark { horizontal: false, value: n, label: "N*".into() }])
                .unwrap_or_default(),
        }));
    }
    h.push_str("<h2>Probes</h2><table><tr><th class=l>configuration</th><th class=l>phase</th><th>offered</th><th>achieved</th><th>publish p50</th><th>p99</th><th>p99.9</th><th>e2e p99</th><th>error rate</th><th class=l>result</th></tr>");
    for c in &result.configurations {
        for p in &c.probes {
            let _ = write!(
                h,
                "<tr{}><td class=l><code>{}</code></td><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4} %</td><td class=l>{}</td></tr>",
                if p.passed { "" } else { " class=\"fail\"" },
                escape(&c.label),
                escape(&p.phase),
                count(p.rate as f64),
                count(p.achieved_msgs_per_sec),
                pct(&p.publish, 0.5),
                pct(&p.publish, 0.99),
                pct(&p.publish, 0.999),
                p.end_to_end.as_ref().map(|e| pct(e, 0.99)).unwrap_or_else(|| "–".into()),
                p.error_rate * 100.0,
                if p.passed { "pass".to_owned() } else { escape(&p.reasons.join("; ")) }
            );
        }
    }
    h.push_str("</table>");
    let data = serde_json::to_string(&result.configurations).unwrap_or_default().replace("</", "<\\/");
    let _ = write!(h, "<script type=\"application/json\" id=\"capacity-data\">{data}</script></body></html>");
    h
}
