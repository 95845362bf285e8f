//! The evaluation as one page people can look at: `switchyard eval --report FILE.html`.
//!
//! Tables say how good routing is; pictures say where it goes wrong and what moving a threshold
//! would do. The page is one self-contained file (inline CSS and SVG, no script, nothing fetched),
//! so it can be attached to an issue or kept as a CI artifact and still open years later.
//! Rendering is pure: the CLI gathers the numbers from the same decisions `eval` scores, and this
//! module only draws them. Every text from the data is escaped.

use crate::core::evaluation::EvalReport;
use std::fmt::Write;

/// One route's semantic scores over the rows, split by label, and what its threshold does.
#[derive(Debug, Clone, Default)]
pub struct RouteScores {
    pub route: String,
    /// The route's threshold in the config.
    pub threshold: f32,
    /// Scores of the rows labelled with this route.
    pub own_rows: Vec<f32>,
    /// Scores of every other row.
    pub other_rows: Vec<f32>,
    /// Overall accuracy with this route's threshold set to each value, the others unchanged.
    pub accuracy_by_threshold: Vec<(f32, f64)>,
}

/// A row routed somewhere other than its label.
#[derive(Debug, Clone)]
pub struct WrongRow {
    pub text: String,
    pub label: String,
    pub predicted: String,
    /// The level that decided it (`rules`, `semantic`, `default`, …).
    pub level: String,
}

/// Everything the page shows.
pub struct EvaluationPage<'a> {
    /// What was evaluated: the data file's name.
    pub source: &'a str,
    pub report: &'a EvalReport,
    /// Routes with exemplars; empty when the config routes without meaning.
    pub routes: &'a [RouteScores],
    pub wrong_rows: &'a [WrongRow],
}

/// Rows listed in "what went wrong"; the rest are counted.
pub const MAX_WRONG_ROWS: usize = 500;
/// A wrong row's text is cut to this many characters.
const MAX_TEXT_CHARS: usize = 300;

/// The whole HTML page.
pub fn render(page: &EvaluationPage) -> String {
    let mut html = String::new();
    let title = format!("Routing evaluation: {}", page.source);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    summary(&mut html, page.report);
    confusion(&mut html, page.report);
    scores(&mut html, page.routes);
    wrong_rows(&mut html, page.wrong_rows);
    html.push_str("</main>\n</body>\n</html>\n");
    html
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff}
main{max-width:1100px;margin:0 auto;padding:1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}
th,td{padding:.25rem .55rem;border:1px solid #ccc;text-align:right}
th{background:#f3f3f3}td.text,th.text{text-align:left;max-width:40rem}
.figures{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;flex:1 1 460px;max-width:540px}
figcaption{font-size:.9rem;color:#333}
svg{width:100%;height:auto;display:block}
.own{fill:#1f5fbf}.other{fill:#c2540a}.threshold{stroke:#b00020;stroke-width:2;stroke-dasharray:5 3}
.curve{fill:none;stroke:#1f5fbf;stroke-width:2}.axis{stroke:#555}.grid{stroke:#e2e2e2}
svg text{font:11px system-ui,sans-serif;fill:#333}
.key{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:baseline}
.key.own{background:#1f5fbf}.key.other{background:#c2540a}
";

fn summary(html: &mut String, report: &EvalReport) {
    let _ = write!(
        html,
        "<p>{} rows · accuracy <strong>{:.3}</strong> · macro-F1 <strong>{:.3}</strong>",
        report.rows, report.accuracy, report.macro_f1
    );
    if let Some(oos) = report.oos_recall {
        let _ = write!(html, " · out-of-scope recall <strong>{oos:.3}</strong>");
    }
    html.push_str("</p>\n");
    if !report.per_level.is_empty() {
        let rows = report.per_level.iter().map(|(level, m)| {
            (level, vec![m.decisions.to_string(), format!("{:.3}", m.share), format!("{:.3}", m.accuracy)])
        });
        metrics_table(html, "Levels", &["level", "decisions", "share", "accuracy"], rows);
    }
    let rows = report.per_route.iter().map(|(route, m)| {
        let scores = [m.precision, m.recall, m.f1].map(|x| format!("{x:.3}"));
        (route, [scores.to_vec(), vec![m.support.to_string()]].concat())
    });
    metrics_table(html, "Routes", &["route", "precision", "recall", "F1", "rows labelled"], rows);
}

/// A headed table of figures: `columns` (the first names the rows), then each row's name and
/// its figures.
fn metrics_table<'a>(
    html: &mut String,
    heading: &str,
    columns: &[&str],
    rows: impl Iterator<Item = (&'a String, Vec<String>)>,
) {
    let _ = write!(html, "<h2>{heading}</h2>\n<table><thead><tr>");
    for (i, column) in columns.iter().enumerate() {
        let class = if i == 0 { " class=\"text\"" } else { "" };
        let _ = write!(html, "<th{class} scope=\"col\">{}</th>", escape(column));
    }
    html.push_str("</tr></thead><tbody>\n");
    for (name, figures) in rows {
        let _ = write!(html, "<tr><th class=\"text\" scope=\"row\">{}</th>", escape(name));
        for figure in figures {
            let _ = write!(html, "<td>{figure}</td>");
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table>\n");
}

/// The confusion table as a heat map: each cell shaded by its share of the label's rows, so a
/// dark cell off the diagonal is where a label's rows go instead.
fn confusion(html: &mut String, report: &EvalReport) {
    let predicted: std::collections::BTreeSet<&String> =
        report.confusion.values().flat_map(|row| row.keys()).chain(report.confusion.keys()).collect();
    html.push_str(
        "<h2>Where each label's rows went</h2>\n<p>Rows: the label. Columns: the route chosen. \
         A cell is darker the larger its share of the label's rows; the diagonal is right.</p>\n\
         <table class=\"confusion\"><thead><tr><th class=\"text\" scope=\"col\">label, routed to →</th>",
    );
    for p in &predicted {
        let _ = write!(html, "<th scope=\"col\">{}</th>", escape(p));
    }
    html.push_str("<th scope=\"col\">rows</th></tr></thead><tbody>\n");
    for (label, row) in &report.confusion {
        let total: usize = row.values().sum();
        let _ = write!(html, "<tr><th class=\"text\" scope=\"row\">{}</th>", escape(label));
        for p in &predicted {
            let count = row.get(*p).copied().unwrap_or(0);
            let share = if total == 0 { 0.0 } else { count as f64 / total as f64 };
            // Lightness 97% (none) to 30% (all); text turns white where the cell is dark.
            let lightness = 97.0 - 67.0 * share;
            let ink = if lightness < 60.0 { "#fff" } else { "#1a1a1a" };
            let outline = if label == *p { ";outline:2px solid #1a1a1a;outline-offset:-3px" } else { "" };
            let _ = write!(
                html,
                "<td style=\"background:hsl(215 70% {lightness:.0}%);color:{ink}{outline}\" \
                 title=\"{} of {} rows labelled {} went to {}\">{count}</td>",
                count,
                total,
                escape(label),
                escape(p)
            );
        }
        let _ = writeln!(html, "<td>{total}</td></tr>");
    }
    html.push_str("</tbody></table>\n");
}

fn scores(html: &mut String, routes: &[RouteScores]) {
    html.push_str("<h2>Scores and thresholds</h2>\n");
    if routes.is_empty() {
        html.push_str("<p>No route has exemplars, so there are no semantic scores to draw.</p>\n");
        return;
    }
    html.push_str(
        "<p>Left: each row's semantic score for the route, <span class=\"key own\"></span>rows \
         labelled with the route above the axis, <span class=\"key other\"></span>other rows below; \
         the dashed line is the route's threshold. Rows right of it can reach the route (when no \
         earlier level took them and no other route scores higher). Right: the accuracy over all \
         rows if only this route's threshold moved.</p>\n",
    );
    let (low, high) = score_range(routes);
    for (i, route) in routes.iter().enumerate() {
        let _ = writeln!(html, "<h3>{}</h3>\n<div class=\"figures\">", escape(&route.route));
        if route.own_rows.is_empty() && route.other_rows.is_empty() {
            html.push_str("<p>No scores: the encoder was not loaded.</p>\n</div>\n");
            continue;
        }
        let _ = writeln!(
            html,
            "<figure>{}<figcaption>{} rows labelled {}, {} others; threshold {:.3}.</figcaption></figure>",
            histogram(route, i, low, high),
            route.own_rows.len(),
            escape(&route.route),
            route.other_rows.len(),
            route.threshold
        );
        let now = accuracy_at(&route.accuracy_by_threshold, route.threshold);
        let best =
            route.accuracy_by_threshold.iter().copied().fold(
                None,
                |best: Option<(f32, f64)>, p| match best {
                    Some(b) if b.1 >= p.1 => Some(b),
                    _ => Some(p),
                },
            );
        let caption = match (now, best) {
            (Some(now), Some((at, top))) => format!(
                "Accuracy {now:.3} at the threshold now; the best on these rows is {top:.3} at {at:.2} \
                 (tune on rows you hold out, not on the rows you report)."
            ),
            _ => "No accuracy curve.".to_string(),
        };
        let _ = writeln!(
            html,
            "<figure>{}<figcaption>{}</figcaption></figure>\n</div>",
            curve(route, i, low, high),
            escape(&caption)
        );
    }
}

fn wrong_rows(html: &mut String, rows: &[WrongRow]) {
    let _ = writeln!(html, "<h2>Rows that went wrong ({})</h2>", rows.len());
    if rows.is_empty() {
        html.push_str("<p>None: every row went to its label.</p>\n");
        return;
    }
    html.push_str(
        "<table><thead><tr><th class=\"text\" scope=\"col\">label</th>\
         <th class=\"text\" scope=\"col\">routed to</th><th class=\"text\" scope=\"col\">by level</th>\
         <th class=\"text\" scope=\"col\">text</th></tr></thead><tbody>\n",
    );
    for row in rows.iter().take(MAX_WRONG_ROWS) {
        let _ = writeln!(
            html,
            "<tr><td class=\"text\">{}</td><td class=\"text\">{}</td><td class=\"text\">{}</td>\
             <td class=\"text\">{}</td></tr>",
            escape(&row.label),
            escape(&row.predicted),
            escape(&row.level),
            escape(&clip(&row.text))
        );
    }
    html.push_str("</tbody></table>\n");
    if rows.len() > MAX_WRONG_ROWS {
        let _ = writeln!(html, "<p>…and {} more.</p>", rows.len() - MAX_WRONG_ROWS);
    }
}

/// The x range every chart shares: all scores and thresholds, at least 0 to 1.
fn score_range(routes: &[RouteScores]) -> (f32, f32) {
    let values = routes.iter().flat_map(|r| {
        r.own_rows.iter().chain(&r.other_rows).copied().chain([r.threshold]).filter(|v| v.is_finite())
    });
    let (low, high) = values.fold((0.0f32, 1.0f32), |(lo, hi), v| (lo.min(v), hi.max(v)));
    ((low * 10.0).floor() / 10.0, (high * 10.0).ceil() / 10.0)
}

// Chart geometry, in SVG units.
const WIDTH: f32 = 480.0;
const HEIGHT: f32 = 220.0;
const LEFT: f32 = 40.0;
const RIGHT: f32 = 10.0;
const TOP: f32 = 14.0;
const BOTTOM: f32 = 30.0;
const BINS: usize = 40;

fn x_of(value: f32, low: f32, high: f32) -> f32 {
    LEFT + (value - low) / (high - low) * (WIDTH - LEFT - RIGHT)
}

/// Rows labelled with the route above the middle axis, the others below, binned by score.
fn histogram(route: &RouteScores, index: usize, low: f32, high: f32) -> String {
    let bin = |scores: &[f32]| {
        let mut counts = [0usize; BINS];
        for &s in scores.iter().filter(|s| s.is_finite()) {
            let i = ((s - low) / (high - low) * BINS as f32).floor() as isize;
            counts[i.clamp(0, BINS as isize - 1) as usize] += 1;
        }
        counts
    };
    let (own, other) = (bin(&route.own_rows), bin(&route.other_rows));
    let tallest = own.iter().chain(&other).copied().max().unwrap_or(0).max(1) as f32;
    let middle = TOP + (HEIGHT - TOP - BOTTOM) / 2.0;
    let half = (HEIGHT - TOP - BOTTOM) / 2.0;
    let bar_width = (WIDTH - LEFT - RIGHT) / BINS as f32;
    let id = format!("scores-{index}");
    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"{id}\">\
         <title id=\"{id}\">Scores for {}: rows labelled with it above the axis, other rows below, \
         threshold {:.3}</title>",
        escape(&route.route),
        route.threshold
    );
    x_axis(&mut svg, low, high, HEIGHT - BOTTOM);
    for (i, (&up, &down)) in own.iter().zip(&other).enumerate() {
        let x = LEFT + i as f32 * bar_width;
        if up > 0 {
            let h = up as f32 / tallest * half;
            let _ = write!(
                svg,
                "<rect class=\"own\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{up} labelled rows</title></rect>",
                middle - h,
                bar_width - 1.0
            );
        }
        if down > 0 {
            let h = down as f32 / tallest * half;
            let _ = write!(
                svg,
                "<rect class=\"other\" x=\"{x:.1}\" y=\"{middle:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{down} other rows</title></rect>",
                bar_width - 1.0
            );
        }
    }
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{middle:.1}\" y2=\"{middle:.1}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        WIDTH - RIGHT,
        LEFT - 4.0,
        TOP + 8.0,
        tallest as usize,
        LEFT - 4.0,
        HEIGHT - BOTTOM,
        tallest as usize
    );
    threshold_line(&mut svg, route.threshold, low, high);
    svg.push_str("</svg>");
    svg
}

/// Accuracy (0 to 1) against this route's threshold.
fn curve(route: &RouteScores, index: usize, low: f32, high: f32) -> String {
    let y_of = |accuracy: f64| TOP + (1.0 - accuracy as f32) * (HEIGHT - TOP - BOTTOM);
    let id = format!("accuracy-{index}");
    let mut svg = format!(
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"{id}\">\
         <title id=\"{id}\">Accuracy against the threshold of {}</title>",
        escape(&route.route)
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = y_of(tick);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{tick:.2}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0
        );
    }
    x_axis(&mut svg, low, high, HEIGHT - BOTTOM);
    let points: Vec<String> = route
        .accuracy_by_threshold
        .iter()
        .filter(|(t, a)| t.is_finite() && a.is_finite())
        .map(|&(t, a)| format!("{:.1},{:.1}", x_of(t, low, high), y_of(a)))
        .collect();
    let _ = write!(svg, "<polyline class=\"curve\" points=\"{}\"/>", points.join(" "));
    threshold_line(&mut svg, route.threshold, low, high);
    svg.push_str("</svg>");
    svg
}

fn x_axis(svg: &mut String, low: f32, high: f32, y: f32) {
    let _ =
        write!(svg, "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y}\" y2=\"{y}\"/>", WIDTH - RIGHT);
    // A tick at each multiple of 0.2 inside the range.
    let first = (low * 5.0).ceil() as i32;
    let last = (high * 5.0).floor() as i32;
    for step in first..=last {
        let value = step as f32 / 5.0;
        let x = x_of(value, low, high);
        let _ = write!(
            svg,
            "<line class=\"axis\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y}\" y2=\"{:.1}\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{value:.1}</text>",
            y + 4.0,
            y + 16.0
        );
    }
}

fn threshold_line(svg: &mut String, threshold: f32, low: f32, high: f32) {
    let x = x_of(threshold, low, high);
    // The label goes left of the line when the line is near the right edge.
    let (label_x, anchor) = if x > WIDTH * 0.75 { (x - 4.0, "end") } else { (x + 4.0, "start") };
    let _ = write!(
        svg,
        "<line class=\"threshold\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{:.1}\"/>\
         <text x=\"{label_x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">threshold {threshold:.3}</text>",
        HEIGHT - BOTTOM,
        TOP - 2.0
    );
}

/// The accuracy at the sampled threshold nearest `threshold`.
fn accuracy_at(curve: &[(f32, f64)], threshold: f32) -> Option<f64> {
    curve.iter().min_by(|a, b| (a.0 - threshold).abs().total_cmp(&(b.0 - threshold).abs())).map(|p| p.1)
}

fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Text safe inside HTML elements and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
