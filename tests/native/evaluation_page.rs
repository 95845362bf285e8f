//! `switchyard eval --report`: the evaluation as one page, drawn from the report and the rows.

use switchyard::core::evaluation::EvalReport;
use switchyard::native::evaluation_page::{render, EvaluationPage, RouteScores, WrongRow, MAX_WRONG_ROWS};

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn wrong(text: &str, label: &str, predicted: &str) -> WrongRow {
    WrongRow { text: text.into(), label: label.into(), predicted: predicted.into(), level: "semantic".into() }
}

#[test]
fn the_page_is_self_contained_and_escapes_what_the_rows_say() {
    let report = EvalReport::compute("chat", &pairs(&[("code", "code"), ("code", "chat"), ("chat", "chat")]));
    let routes = [RouteScores {
        route: "code".into(),
        threshold: 0.55,
        own_rows: vec![0.8, 0.4],
        other_rows: vec![0.2],
        accuracy_by_threshold: (0..=100)
            .map(|s| (s as f32 / 100.0, if s < 50 { 0.6 } else { 0.66 }))
            .collect(),
    }];
    let hostile = "<script>alert('x')</script> & \"quotes\"";
    let wrong_rows = [wrong(hostile, "code", "chat")];
    let page =
        EvaluationPage { source: "rows<1>.jsonl", report: &report, routes: &routes, wrong_rows: &wrong_rows };
    let html = render(&page);

    assert!(html.starts_with("<!doctype html>"), "{html}");
    // Nothing is fetched or run: no scripts, links, images or external references.
    for outside in ["<script", "<link", "<img", "src=", "href=", "url("] {
        assert!(!html.to_lowercase().contains(outside), "{outside} in the page");
    }
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    assert!(html.contains("Routing evaluation: rows&lt;1&gt;.jsonl"));
    // The confusion heat map: code's two rows split one and one, shaded half way.
    assert!(html.contains("title=\"1 of 2 rows labelled code went to chat\">1</td>"), "{html}");
    // One histogram and one accuracy curve for the route, each with an accessible name and
    // the threshold drawn.
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains("aria-labelledby=\"scores-0\"") && html.contains("aria-labelledby=\"accuracy-0\""));
    assert_eq!(html.matches(">threshold 0.550</text>").count(), 2);
    // The curve's caption names the accuracy now and the best threshold on these rows.
    assert!(
        html.contains("Accuracy 0.660 at the threshold now; the best on these rows is 0.660 at 0.50"),
        "{html}"
    );
    assert!(html.contains("Rows that went wrong (1)"));
}

#[test]
fn a_long_list_of_wrong_rows_is_cut_and_counted() {
    let report = EvalReport::compute("chat", &pairs(&[("code", "chat")]));
    let wrong_rows: Vec<WrongRow> = (0..MAX_WRONG_ROWS + 7)
        .map(|i| wrong(&format!("row {i} {}", "x".repeat(400)), "code", "chat"))
        .collect();
    let html = render(&EvaluationPage { source: "r", report: &report, routes: &[], wrong_rows: &wrong_rows });
    assert!(html.contains(&format!("Rows that went wrong ({})", MAX_WRONG_ROWS + 7)));
    assert!(html.contains("…and 7 more."));
    assert!(!html.contains(&"x".repeat(301)), "texts are cut to 300 characters");
    assert!(html.contains("No route has exemplars"));
}
