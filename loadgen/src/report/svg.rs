//! Tiny SVG charts (scatter and lines, linear or log axes), so the HTML report needs no
//! plotting library and no network. Every point carries a `<title>` tooltip.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 380.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 50.0;

/// Colours that stay distinguishable in print.
pub(crate) const PALETTE: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// One named set of points; `tips` are per-point tooltips.
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) points: Vec<(f64, f64)>,
    pub(crate) tips: Vec<String>,
}

/// A chart.
pub(crate) struct Chart<'a> {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) x_label: String,
    pub(crate) y_label: String,
    pub(crate) log_y: bool,
    pub(crate) lines: bool,
    /// Fixed x ticks (value, label); otherwise linear ticks.
    pub(crate) x_ticks: Option<Vec<(f64, String)>>,
    pub(crate) series: &'a [Series],
    /// Reference lines: the knee, the SLO.
    pub(crate) marks: Vec<Mark>,
}

/// A dashed reference line across the plot, labelled.
pub(crate) struct Mark {
    /// Horizontal (a y value) or vertical (an x value).
    pub(crate) horizontal: bool,
    pub(crate) value: f64,
    pub(crate) label: String,
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(mag * 10.0);
    let mut t = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    while t <= hi + step * 1e-9 {
        ticks.push(t);
        t += step;
    }
    ticks
}

fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1.0 || a == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[allow(clippy::too_many_arguments)]
/// A heat map: `rows` × `cols` cells coloured by value (darker is higher), each labelled.
pub(crate) fn heat_map(
    id: &str,
    title: &str,
    row_label: &str,
    col_label: &str,
    rows: &[String],
    cols: &[String],
    cells: &[Vec<Option<f64>>],
    unit: &str,
) -> String {
    let (cw, ch, left, top) = (110.0, 34.0, 150.0, 60.0);
    let w = left + cw * cols.len() as f64 + 20.0;
    let h = top + ch * rows.len() as f64 + 40.0;
    let max = cells.iter().flatten().flatten().copied().fold(0.0f64, f64::max).max(1e-9);
    let mut svg = format!(
        r#"<svg id="{}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="11"><text x="10" y="18" font-size="14" font-weight="bold">{}</text><text x="{left}" y="44">{} →</text><text x="10" y="44">{} ↓</text>"#,
        escape(id),
        escape(title),
        escape(col_label),
        escape(row_label)
    );
    for (j, c) in cols.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            left + cw * (j as f64 + 0.5),
            top - 4.0,
            escape(c)
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + ch * i as f64;
        let _ = write!(svg, r#"<text x="10" y="{:.1}">{}</text>"#, y + ch / 2.0 + 4.0, escape(r));
        for (j, _) in cols.iter().enumerate() {
            let x = left + cw * j as f64;
            let v = cells.get(i).and_then(|row| row.get(j)).copied().flatten();
            let (fill, text) = match v {
                Some(v) => {
                    let t = v / max;
                    let shade = (235.0 - 180.0 * t) as u8;
                    (format!("rgb({shade},{},{})", (245.0 - 120.0 * t) as u8, 255), format!("{} {unit}", short(v)))
                }
                None => ("#eee".to_owned(), "–".to_owned()),
            };
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{cw}" height="{ch}" fill="{fill}" stroke="#fff"><title>{} / {}: {}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                escape(r),
                escape(&cols[j]),
                escape(&text),
                x + cw / 2.0,
                y + ch / 2.0 + 4.0,
                escape(&text)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Renders `chart` as an `<svg>` element.
pub(crate) fn render(chart: &Chart<'_>) -> String {
    let ty = |y: f64| if chart.log_y { y.max(1e-3).log10() } else { y };
    let mut all: Vec<(f64, f64)> =
        chart.series.iter().flat_map(|s| s.points.iter().map(|&(x, y)| (x, ty(y)))).collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="{}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11">"#,
        escape(&chart.id)
    );
    let _ =
        write!(svg, r#"<text x="{}" y="18" font-size="14" font-weight="bold">{}</text>"#, LEFT, escape(&chart.title));
    if all.is_empty() {
        let _ = write!(svg, r#"<text x="{LEFT}" y="{}">no data</text></svg>"#, H / 2.0);
        return svg;
    }
    if let Some(&(x, y)) = all.first() {
        for m in &chart.marks {
            all.push(if m.horizontal { (x, ty(m.value)) } else { (m.value, y) });
        }
    }
    let (mut x0, mut x1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if let Some(ticks) = &chart.x_ticks {
        x0 = x0.min(ticks.first().map(|t| t.0).unwrap_or(x0));
        x1 = x1.max(ticks.last().map(|t| t.0).unwrap_or(x1));
    } else {
        x0 = x0.min(0.0);
    }
    if chart.log_y {
        y0 = y0.floor();
        y1 = y1.ceil().max(y0 + 1.0);
    } else {
        y0 = y0.min(0.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;
    let _ = write!(svg, r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##);
    // Axes and grid.
    let x_ticks: Vec<(f64, String)> =
        chart.x_ticks.clone().unwrap_or_else(|| nice_ticks(x0, x1).into_iter().map(|t| (t, short(t))).collect());
    for (t, label) in &x_ticks {
        let x = px(*t);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + ph,
            TOP + ph + 15.0,
            escape(label)
        );
    }
    let y_ticks: Vec<(f64, String)> = if chart.log_y {
        (y0 as i32..=y1 as i32).map(|e| (e as f64, short(10f64.powi(e)))).collect()
    } else {
        nice_ticks(y0, y1).into_iter().map(|t| (t, short(t))).collect()
    };
    for (t, label) in &y_ticks {
        let y = py(*t);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + pw,
            LEFT - 5.0,
            y + 4.0,
            escape(label)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + pw / 2.0,
        H - 12.0,
        escape(&chart.x_label)
    );
    let _ = write!(
        svg,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + ph / 2.0,
        escape(&chart.y_label)
    );
    for m in &chart.marks {
        let (x1l, y1l, x2l, y2l, tx, ty_) = if m.horizontal {
            let y = py(ty(m.value));
            (LEFT, y, LEFT + pw, y, LEFT + 4.0, y - 4.0)
        } else {
            let x = px(m.value);
            (x, TOP, x, TOP + ph, x + 4.0, TOP + 12.0)
        };
        let _ = write!(
            svg,
            r##"<line class="mark" x1="{x1l:.1}" y1="{y1l:.1}" x2="{x2l:.1}" y2="{y2l:.1}" stroke="#c00" stroke-dasharray="5,4"/><text x="{tx:.1}" y="{ty_:.1}" fill="#c00">{}</text>"##,
            escape(&m.label)
        );
    }
    // Data and legend.
    for (i, s) in chart.series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        if chart.lines && s.points.len() > 1 {
            let path: Vec<String> = s.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(ty(y)))).collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                path.join(" ")
            );
        }
        for (j, &(x, y)) in s.points.iter().enumerate() {
            let tip = s.tips.get(j).cloned().unwrap_or_else(|| s.name.clone());
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="{}" fill="{colour}" data-x="{x}" data-y="{y}"><title>{}</title></circle>"#,
                px(x),
                py(ty(y)),
                if chart.lines { 2.5 } else { 5.0 },
                escape(&tip)
            );
        }
        let ly = TOP + 8.0 + i as f64 * 16.0;
        if ly < H - 10.0 {
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
                LEFT + pw + 12.0,
                ly - 8.0,
                LEFT + pw + 26.0,
                ly + 1.0,
                escape(&s.name)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_point_with_its_tooltip_and_a_legend() {
        let series = vec![
            Series {
                name: "lz4".into(),
                points: vec![(1000.0, 2.0), (2000.0, 5.0)],
                tips: vec!["a<b".into(), "c".into()],
            },
            Series { name: "zstd".into(), points: vec![(1500.0, 300.0)], tips: vec![] },
        ];
        let svg = render(&Chart {
            id: "c1".into(),
            title: "throughput vs p99".into(),
            x_label: "msgs/s".into(),
            y_label: "ms".into(),
            log_y: true,
            lines: false,
            x_ticks: None,
            series: &series,
            marks: Vec::new(),
        });
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("<title>a&lt;b</title>"));
        assert!(svg.contains(">zstd</text>"));
        assert!(svg.contains(r#"data-x="1500" data-y="300""#));
        assert!(svg.contains(">100</text>"), "log ticks: {svg}");
    }

    #[test]
    fn empty_charts_say_so() {
        let svg = render(&Chart {
            id: "e".into(),
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_y: false,
            lines: true,
            x_ticks: None,
            series: &[],
            marks: Vec::new(),
        });
        assert!(svg.contains("no data"));
    }
}
