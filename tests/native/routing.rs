//! Level-1 routing decisions, on the built-in config as a user would meet it.

use switchyard::core::decision::Level;
use switchyard::core::request::ChatRequest;
use switchyard::core::router::Router;
use switchyard::BUILTIN_CONFIG;

fn router() -> Router {
    Router::from_toml("switchyard.toml", BUILTIN_CONFIG).unwrap()
}

fn route(model: &str, prompt: &str) -> switchyard::core::decision::Decision {
    let request = ChatRequest::from_value(serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
    }))
    .unwrap();
    router().decide(&request).unwrap()
}

#[test]
fn prompts_land_on_the_routes_a_person_would_expect() {
    let cases = [
        ("Write a SQL query that returns the ten most recent orders", "code"),
        ("Why does my Python script raise KeyError here?", "code"),
        ("Refactor this function so it does not allocate", "code"),
        ("```\nlet x = 1;\n```\nwhat does this do", "code"),
        ("Tell me a joke about Python", "short"),
        ("Write a haiku about SQL databases", "short"),
        ("How long do ball pythons live as pets?", "short"),
        ("What's the capital of Australia?", "short"),
        ("hi", "short"),
    ];
    for (prompt, expected) in cases {
        let decision = route("auto", prompt);
        assert_eq!(decision.route, expected, "{prompt:?}: {:?}", decision.reasons);
    }
}

#[test]
fn prompt_size_decides_between_short_default_and_long() {
    let medium = "Describe a relaxed weekend in the mountains for a family of four. ".repeat(20);
    let decision = route("auto", &medium);
    assert_eq!((decision.route.as_str(), decision.level), ("chat", Level::Default));

    let long = "Summarise the history of the printing press in Europe. ".repeat(12_000);
    let decision = route("auto", &long);
    assert_eq!((decision.route.as_str(), decision.level), ("long", Level::Rules));
    assert!(decision.signals.prompt_tokens >= 100_000);
}

#[test]
fn a_long_prompt_about_code_still_needs_the_long_context_route() {
    let long = format!("{} Now rewrite it in Python.", "def f(x): return x * 2\n".repeat(20_000));
    assert_eq!(route("auto", &long).route, "long");
}

#[test]
fn the_decision_explains_itself() {
    let decision = route("auto", "Tell me a joke about Python");
    let code = decision.signals.rules.iter().find(|r| r.route == "code").unwrap();
    assert_eq!(code.keyword.as_ref().unwrap().text, "Python");
    assert_eq!(code.excluded_by.as_ref().unwrap().text, "joke");
    assert_eq!(decision.scores["code"], 0.0);
    assert_eq!(decision.scores["short"], 1.0);
    assert!(decision.reasons.iter().any(|r| r.contains("excluded")), "{:?}", decision.reasons);
}

#[test]
fn explicit_models_and_routes_skip_routing() {
    let decision = route("big", "Write SQL");
    assert_eq!(
        (decision.route.as_str(), decision.model.as_str(), decision.level),
        ("explicit", "big", Level::Explicit)
    );
    assert_eq!(decision.candidates, ["big"]);

    let decision = route("code", "hello");
    assert_eq!(
        (decision.route.as_str(), decision.model.as_str(), decision.level),
        ("code", "coder", Level::Explicit)
    );
    assert_eq!(decision.candidates, ["coder", "big"]);
}

#[test]
fn unknown_models_are_404() {
    let request = ChatRequest::from_value(serde_json::json!({
        "model": "gpt-17", "messages": [{"role": "user", "content": "hi"}],
    }))
    .unwrap();
    let err = router().decide(&request).unwrap_err();
    assert_eq!(err.status(), 404);
    assert_eq!(err.to_openai_json()["error"]["code"], "model_not_found");
}

#[test]
fn keywords_look_at_the_latest_user_message_only() {
    let request = ChatRequest::from_value(serde_json::json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You can write Python and SQL."},
            {"role": "user", "content": "Write a SQL query for active users"},
            {"role": "assistant", "content": "SELECT * FROM users WHERE active;"},
            {"role": "user", "content": "Thanks! What's a good name for a cat?"},
        ],
    }))
    .unwrap();
    assert_ne!(router().decide(&request).unwrap().route, "code");
}
