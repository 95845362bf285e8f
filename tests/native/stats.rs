//! Routing stats (`core::stats`) over decision rows: counts, failures, routing time, and what
//! routing saved against each route's most expensive model.

use serde_json::json;
use switchyard::core::config::Config;
use switchyard::core::providers::Usage;
use switchyard::core::stats::{stats, StatsRow};

const CONFIG: &str = r#"
[providers.p]
kind = "openai"
base_url = "http://localhost:11434/v1"

[models.small]
provider = "p"
context_window = 8192
price = { input = 1.0, output = 2.0 }

[models.big]
provider = "p"
context_window = 8192
price = { input = 10.0, output = 20.0 }

[models.frontier]
provider = "p"
context_window = 8192
price = { input = 100.0, output = 200.0 }

[[routes]]
name = "chat"
models = ["small", "big"]

[default]
route = "chat"
"#;

fn row(
    route: &str,
    model: &str,
    level: &str,
    status: u16,
    usage: Option<(u64, u64)>,
    cost: Option<f64>,
) -> StatsRow {
    StatsRow {
        route: route.into(),
        model: model.into(),
        level: level.into(),
        status,
        outcome: "complete".into(),
        attempts: Some(format!("{model}=ok")),
        cost_usd: cost,
        usage: usage.map(|(prompt_tokens, completion_tokens)| Usage { prompt_tokens, completion_tokens }),
        timing: [("route".to_string(), 2.0), ("upstream".to_string(), 400.0)].into(),
    }
}

#[test]
fn stats_count_failures_and_price_every_answer_both_ways() {
    let config = Config::parse("stats.toml", CONFIG).unwrap();
    // A million prompt tokens and a million completion tokens: cost = input + output price.
    let m = Some((1_000_000, 1_000_000));
    let mut fell_back = row("chat", "big", "default", 200, m, Some(30.0));
    fell_back.attempts = Some("small=http_503, big=ok".into());
    let mut slow = row("chat", "small", "rules", 200, m, Some(3.0));
    slow.timing.insert("tokenize".into(), 40.0);
    let rows = [
        row("chat", "small", "rules", 200, m, Some(3.0)),
        slow,
        fell_back,
        row("explicit", "big", "explicit", 200, m, Some(30.0)),
        row("chat", "frontier", "conversation", 200, m, Some(300.0)),
        row("chat", "small", "default", 502, None, None),
    ];
    let s = stats(&config, &rows, 1_000, 2_000);
    assert_eq!(s["decisions"], 6);
    assert_eq!(s["by_route"], json!({"chat": 5, "explicit": 1}));
    assert_eq!(s["by_model"], json!({"big": 2, "frontier": 1, "small": 3}));
    assert_eq!(s["by_level"]["rules"], 2);
    assert_eq!(
        (s["fallbacks"].as_u64(), s["escalations"].as_u64(), s["errors"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    // Every row's router time is 2 ms but one's 42: the upstream's 400 ms are not routing.
    assert_eq!(s["routing_ms"], json!({"p50": 2.0, "p95": 42.0}));
    // Paid 3 + 3 + 30 + 30 + 300; on the most expensive model: 30 + 30 + 30 (chat's big), 30
    // (the named model), 300 (the escalation's own).
    assert_eq!(
        s["cost"],
        json!({"priced_decisions": 5, "cost_usd": 366.0, "at_most_expensive_usd": 420.0, "saved_usd": 54.0})
    );
}

#[test]
fn a_fallback_is_an_answer_after_another_models_failure_not_a_retry_a_cascade_step_or_an_error() {
    let config = Config::parse("stats.toml", CONFIG).unwrap();
    let with_attempts = |model: &str, status: u16, attempts: &str| {
        let mut r = row("chat", model, "rules", status, None, None);
        r.attempts = Some(attempts.into());
        r
    };
    let rows = [
        with_attempts("small", 200, "small=http_503, small=ok"),
        with_attempts("small", 502, "small=unreachable, big=unreachable"),
        with_attempts("big", 200, "small=http_503, small=http_503, big=ok"),
        // A cascade that rated small's answer too low: big answered, but nothing failed.
        with_attempts("big", 200, "small=ok, big=ok"),
        // A cascade whose rated answer failed further down the chain: a fallback to big.
        with_attempts("big", 200, "small=ok, frontier=http_503, big=ok"),
    ];
    let s = stats(&config, &rows, 1_000, 2_000);
    assert_eq!((s["fallbacks"].as_u64(), s["errors"].as_u64()), (Some(2), Some(1)));
}

#[test]
fn stats_of_no_decisions_are_zero_not_an_error() {
    let config = Config::parse("stats.toml", CONFIG).unwrap();
    let s = stats(&config, &[], 0, 1);
    assert_eq!((s["decisions"].as_u64(), s["routing_ms"]["p50"].is_null()), (Some(0), true));
}

#[test]
fn a_row_is_read_as_d1_returns_it() {
    let d1 = json!({
        "route": "chat", "model": "small", "level": "rules", "status": 200, "outcome": "complete",
        "attempts": "small=ok", "cost_usd": 0.5,
        "usage": "{\"prompt_tokens\":10,\"completion_tokens\":5}",
        "timing": "{\"parse\":0.5,\"route\":1.25,\"upstream\":300}",
    });
    let row = StatsRow::from_d1(&d1).unwrap();
    assert_eq!(row.usage, Some(Usage { prompt_tokens: 10, completion_tokens: 5 }));
    assert_eq!(row.timing.get("route"), Some(&1.25));
    assert!(StatsRow::from_d1(&json!({"route": "chat"})).is_none());
}
