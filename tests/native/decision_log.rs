//! The decision log's rows: ids, what is kept of the routing text, and values in column order.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use switchyard::core::admin_api::{self, DecisionQuery};
use switchyard::core::config::{Config, StoreText};
use switchyard::core::decision::{ClassifierSignal, Decision, Level, Signals};
use switchyard::core::decision_log::{
    decision_id, expiry_cutoff_ms, insert_sql, is_decision_id, Answer, DecisionRow, COLUMNS,
    MAX_STORED_TEXT_CHARS,
};
use switchyard::core::feedback::{Feedback, Rating};
use switchyard::core::providers::Usage;
use switchyard::core::timing::Phase;

const SHA256_OF_TEXT: &str = "c5e95f25e47fc8d63d184ec56269140af1a1604f6e16eeeddc1144baec964187";

fn decision(level: Level) -> Decision {
    Decision {
        route: "creative".into(),
        model: "mini".into(),
        candidates: vec!["mini".into()],
        level,
        scores: BTreeMap::from([("creative".to_string(), 0.61), ("code".to_string(), 0.2)]),
        signals: Signals {
            prompt_tokens: 12,
            classifier: ClassifierSignal::Predicted { route: "creative".into(), confidence: 0.83 },
            ..Signals::default()
        },
        reasons: vec!["semantic score 0.610 for route \"creative\"".into()],
    }
}

fn answer() -> Answer {
    Answer {
        model: "mini".into(),
        status: 200,
        outcome: "complete",
        usage: Some(Usage { prompt_tokens: 20, completion_tokens: 7 }),
        cost_usd: Some(0.0001),
        attempts: Some("mini=ok".into()),
        skipped: None,
        cascade: None,
        conversation: None,
        stream: true,
    }
}

fn row(level: Level, text: &str, store: StoreText) -> DecisionRow {
    let phases = [Phase { name: "parse", ms: 0.123 }, Phase { name: "upstream", ms: 412.0 }];
    DecisionRow::new("id-1".into(), 1_764_000_000_000, &decision(level), &phases, text, store, answer())
}

#[test]
fn ids_are_random_uuids_and_only_that_form_is_looked_up() {
    let id = decision_id([0xab; 16]);
    assert_eq!(id, "abababab-abab-4bab-abab-abababababab");
    assert!(is_decision_id(&id));
    assert_ne!(decision_id([1; 16]), decision_id([2; 16]));
    for bad in [
        "",
        "abababab-abab-4bab-abab-ababababab'; DROP TABLE decisions",
        "ABABABAB-ABAB-4BAB-ABAB-ABABABABABAB",
    ] {
        assert!(!is_decision_id(bad), "{bad}");
    }
}

#[test]
fn the_text_is_kept_only_as_the_config_allows() {
    let text = "Write a poem for my aunt Philomena";
    let none = row(Level::Semantic, text, StoreText::None);
    assert_eq!((none.text.as_deref(), none.text_sha256.as_deref()), (None, None));
    assert!(!format!("{:?}", none.values()).contains("Philomena"));
    let hash = row(Level::Semantic, text, StoreText::Hash);
    assert_eq!(hash.text, None);
    // `printf %s "$text" | sha256sum`
    assert_eq!(hash.text_sha256.as_deref(), Some(SHA256_OF_TEXT));
    assert_eq!(hash.text_sha256.as_ref().map(String::len), Some(64));
    let full = row(Level::Semantic, text, StoreText::Full);
    assert_eq!((full.text.as_deref(), &full.text_sha256), (Some(text), &hash.text_sha256));
    let long = "é".repeat(MAX_STORED_TEXT_CHARS + 10);
    assert_eq!(
        row(Level::Semantic, &long, StoreText::Full).text.unwrap().chars().count(),
        MAX_STORED_TEXT_CHARS
    );
}

#[test]
fn a_row_holds_the_decision_its_timing_and_the_answer_in_column_order() {
    let values = row(Level::Semantic, "t", StoreText::None).values();
    assert_eq!(values.len(), COLUMNS.len());
    assert_eq!(insert_sql().matches('?').count(), COLUMNS.len());
    let by_column: BTreeMap<&str, &Value> = COLUMNS.iter().copied().zip(values.iter()).collect();
    assert_eq!(by_column["level"], "semantic");
    assert_eq!(by_column["confidence"].as_f64().map(|c| (c * 100.0).round()), Some(61.0));
    let json_of = |column: &str| serde_json::from_str::<Value>(by_column[column].as_str().unwrap()).unwrap();
    assert_eq!(json_of("timing"), json!({"parse": 0.12, "upstream": 412.0}));
    assert_eq!(json_of("usage"), json!({"prompt_tokens": 20, "completion_tokens": 7}));
    assert_eq!(
        (by_column["stream"], by_column["status"], by_column["outcome"]),
        (&json!(1), &json!(200), &json!("complete"))
    );
    // The classifier's confidence when it decided; none for levels without one.
    let classified = row(Level::Classifier, "t", StoreText::None);
    assert_eq!(classified.confidence, Some(0.83));
    assert_eq!(row(Level::Llm, "t", StoreText::None).confidence, None);
}

#[test]
fn the_log_section_is_checked() {
    let base = switchyard::BUILTIN_CONFIG;
    let config = Config::parse("t.toml", base).unwrap();
    assert_eq!((config.log.store_text, config.log.retention_days), (StoreText::None, 30));
    let with = |section: &str| Config::parse("t.toml", &format!("{base}\n[log]\n{section}\n"));
    assert_eq!(with("store_text = \"hash\"").unwrap().log.store_text, StoreText::Hash);
    let err = with("store_text = \"some\"").unwrap_err().to_string();
    assert!(err.contains("unknown variant, expected one of") && !err.contains("`some`"), "{err}");
    assert!(with("retention_days = 0")
        .unwrap_err()
        .to_string()
        .contains("log.retention_days must be between 1 and 3650"));
}

#[test]
fn rows_expire_after_retention_days() {
    let day = 86_400_000;
    assert_eq!(expiry_cutoff_ms(100 * day, 30), 70 * day);
    assert_eq!(expiry_cutoff_ms(5, 30), 0);
}

#[test]
fn feedback_is_checked_before_it_is_stored() {
    let config = Config::parse("t.toml", switchyard::BUILTIN_CONFIG).unwrap();
    let id = decision_id([7; 16]);
    let parse = |body: Value| Feedback::parse(body.to_string().as_bytes(), &config);
    let good = parse(json!({"decision_id": id, "rating": "bad", "route": "code"})).unwrap();
    assert_eq!((good.rating, good.route.as_deref()), (Rating::Bad, Some("code")));
    assert_eq!(good.values(42), vec![json!("bad"), json!("code"), json!(42), json!(id)]);
    assert_eq!(parse(json!({"decision_id": id, "rating": "good"})).unwrap().route, None);
    for (body, param) in [
        (json!({"decision_id": id, "rating": "meh"}), "rating"),
        (json!({"decision_id": "1 OR 1=1", "rating": "good"}), "decision_id"),
        (json!({"decision_id": id, "rating": "good", "route": "legal"}), "route"),
        (json!({"decision_id": id, "rating": "good", "extra": 1}), "extra"),
        (json!({"rating": "good"}), ""),
    ] {
        let error = parse(body.clone()).unwrap_err();
        assert_eq!(
            (error.status(), error.param.as_deref().unwrap_or("")),
            (400, param),
            "{body}: {}",
            error.message
        );
    }
    assert_eq!(Feedback::parse(b"not json", &config).unwrap_err().status(), 400);
}

#[test]
fn admin_queries_are_checked_and_paged_oldest_first() {
    let q = DecisionQuery::parse("since=1700000000000&level=llm&route=code&limit=2").unwrap();
    let (sql, values) = q.sql();
    assert_eq!(
        sql,
        "SELECT * FROM decisions WHERE created_at >= ?1 AND level = ?2 AND route = ?3 ORDER BY created_at, id LIMIT ?4"
    );
    assert_eq!(values, vec![json!(1_700_000_000_000u64), json!("llm"), json!("code"), json!(3)]);
    for (query, param) in [
        ("level=loud", "level"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("since=yesterday", "since"),
        ("cursor=x", "cursor"),
        ("drop=1", "drop"),
    ] {
        let error = DecisionQuery::parse(query).unwrap_err();
        assert_eq!((error.status(), error.param.as_deref()), (400, Some(param)), "{query}");
    }
    // Three rows for a limit of two: a page of two and the cursor of the second.
    let row = |at: u64, id: &str| {
        json!({"id": id, "created_at": at as f64, "stream": 1, "reasons": "[\"r\"]", "usage": null, "text": null})
            .as_object()
            .unwrap()
            .clone()
    };
    let (a, b, c) = (decision_id([1; 16]), decision_id([2; 16]), decision_id([3; 16]));
    let (body, next) = admin_api::page(vec![row(5, &a), row(6, &b), row(6, &c)], 2);
    let lines: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((&lines[0]["reasons"], &lines[0]["stream"]), (&json!(["r"]), &json!(true)));
    let next = next.unwrap();
    assert_eq!(next, format!("6_{b}"));
    let (sql, values) = DecisionQuery::parse(&format!("cursor={next}")).unwrap().sql();
    assert!(sql.contains("(created_at > ?1 OR (created_at = ?1 AND id > ?2))"), "{sql}");
    assert_eq!(values[..2], [json!(6), json!(b)]);
    assert_eq!(admin_api::page(vec![row(5, &a)], 2).1, None);
}

#[test]
fn training_rows_come_from_corrections_first_then_llm_choices_with_stored_text() {
    let line = |v: Value| v.as_object().unwrap().clone();
    assert_eq!(
        admin_api::training_row(&line(
            json!({"text": "t", "route": "chat", "level": "llm", "feedback_route": null})
        )),
        Some(json!({"text": "t", "label": "chat", "source": "llm"}))
    );
    assert_eq!(
        admin_api::training_row(&line(
            json!({"text": "t", "route": "chat", "level": "semantic", "feedback_route": "code"})
        )),
        Some(json!({"text": "t", "label": "code", "source": "feedback"}))
    );
    assert_eq!(
        admin_api::training_row(&line(json!({"text": "t", "route": "chat", "level": "semantic"}))),
        None
    );
    assert_eq!(admin_api::training_row(&line(json!({"text": null, "route": "chat", "level": "llm"}))), None);
    // What `export` writes, `train` and `eval` read.
    let exported =
        admin_api::training_row(&line(json!({"text": "t", "route": "chat", "level": "llm"}))).unwrap();
    let rows = switchyard::core::evaluation::parse_rows("export.jsonl", &exported.to_string()).unwrap();
    assert_eq!((rows[0].text.as_str(), rows[0].label.as_str()), ("t", "chat"));
}

#[test]
fn the_logged_line_is_the_rows_decision_and_outcome_never_the_text() {
    let mut streamed = row(Level::Semantic, "Write a poem for my aunt Philomena", StoreText::Full);
    streamed.answer.outcome = "error";
    let mut failed = row(Level::Llm, "t", StoreText::None);
    failed.signals = json!({"prompt_tokens": 12, "llm": {"asked": true, "declined": "model \"flash\" failed: timeout", "cost_usd": null}});
    failed.answer =
        Answer { status: 503, outcome: "error", usage: None, cost_usd: None, stream: false, ..answer() };
    let lines = json!([
        serde_json::to_value(streamed.log_line(Some("the upstream sent nothing for 1500 ms mid-answer")))
            .unwrap(),
        serde_json::to_value(failed.log_line(None)).unwrap(),
    ]);
    crate::providers::golden("log/decision_lines.json", &crate::providers::pretty(&lines));
    assert!(!lines.to_string().contains("Philomena"));
}
