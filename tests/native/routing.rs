//! Routing decisions on the built-in config as a user would meet it: level 1 alone (no encoder)
//! and with level 2 (the real encoder and the committed exemplar index).

use crate::embedding::encoder;
use std::rc::Rc;
use switchyard::core::config::Config;
use switchyard::core::decision::{Decision, Level, SemanticSignal};
use switchyard::core::error::RouterError;
use switchyard::core::evaluation::{parse_rows, EvalReport};
use switchyard::core::pipeline::{self, run_ready, NoLlm, Platform};
use switchyard::core::request::ChatRequest;
use switchyard::core::semantic::{routing_text, ExemplarIndex, IndexError, SemanticModel, ENCODER_ID};
use switchyard::core::timing::Stopwatch;
use switchyard::embed::Encoder;
use switchyard::BUILTIN_CONFIG;

pub fn builtin() -> Config {
    Config::parse("switchyard.toml", BUILTIN_CONFIG).unwrap()
}

pub fn index() -> ExemplarIndex {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/model/index.json")).unwrap();
    ExemplarIndex::from_json(&text).unwrap()
}

fn user(model: &str, prompt: &str) -> ChatRequest {
    ChatRequest::from_value(serde_json::json!({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
    }))
    .unwrap()
}

/// Level 2 as the pipeline gets it: the real encoder with `index`, or the reason it is missing.
pub type Level2 = Result<Rc<SemanticModel<&'static Encoder>>, String>;

pub fn with_encoder(index: ExemplarIndex) -> Level2 {
    Ok(Rc::new(SemanticModel { encoder: encoder(), index, classifier: None, frustration: Vec::new() }))
}

pub fn without_encoder() -> Level2 {
    Err("no encoder in this test".to_string())
}

/// The routing pipeline, as the Worker and the CLI run it.
pub fn decide(config: &Config, level2: &Level2, request: &ChatRequest) -> Result<Decision, RouterError> {
    let now = || 0.0;
    let mut watch = Stopwatch::since(0.0, &now);
    let platform = Platform { embedder: level2, llm: &NoLlm("no LLM in this test") };
    run_ready(pipeline::route(config, request, &platform, &mut watch)).expect("a loaded model never waits")
}

/// Level 1 only, as when the encoder is unavailable.
fn route_by_rules(model: &str, prompt: &str) -> Decision {
    decide(&builtin(), &without_encoder(), &user(model, prompt)).unwrap()
}

/// Levels 1 and 2 with `config`.
fn route_with(config: &Config, level2: &Level2, request: &ChatRequest) -> Decision {
    decide(config, level2, request).unwrap()
}

fn route(prompt: &str) -> Decision {
    route_with(&builtin(), &with_encoder(index()), &user("auto", prompt))
}

#[test]
fn the_committed_index_matches_the_builtin_config() {
    index().check(&builtin(), ENCODER_ID).expect("model/index.json is stale: run `switchyard build-index`");
}

#[test]
fn an_index_built_for_other_exemplars_is_refused() {
    let changed =
        BUILTIN_CONFIG.replace("Write a short poem about the sea", "Write a long poem about the sea");
    let config = Config::parse("changed.toml", &changed).unwrap();
    assert!(matches!(index().check(&config, ENCODER_ID), Err(IndexError::Stale { .. })));
    // So is one made by another encoder, whose vectors cannot be compared with MiniLM's.
    assert!(matches!(index().check(&builtin(), "static/128/0000"), Err(IndexError::Stale { .. })));
    // Thresholds are not part of the hash: fitting them keeps the index valid.
    let refitted = BUILTIN_CONFIG.replace("[semantic]\n", "[semantic]\n# refitted\n");
    index().check(&Config::parse("t.toml", &refitted).unwrap(), ENCODER_ID).unwrap();
}

#[test]
fn prompts_land_on_the_routes_a_person_would_expect() {
    let cases = [
        ("Write a SQL query that returns the ten most recent orders", "code", Level::Rules),
        ("Why does my Python script raise KeyError here?", "code", Level::Rules),
        ("Prove that the product of two odd numbers is odd", "reasoning", Level::Semantic),
        ("Write a poem about my cat", "creative", Level::Semantic),
        ("Tell me a joke about Python", "creative", Level::Semantic),
        ("What's the capital of Australia?", "chat", Level::Default),
        ("hi", "chat", Level::Default),
    ];
    for (prompt, expected, level) in cases {
        let decision = route(prompt);
        assert_eq!(
            (decision.route.as_str(), decision.level),
            (expected, level),
            "{prompt:?}: {:?}",
            decision.reasons
        );
    }
}

#[test]
fn semantic_confirmation_not_an_exclusion_list_keeps_jokes_off_the_code_route() {
    // Without any `unless`, the keyword "Python" matches, but by meaning the request is closer to
    // `creative` than to `code`, so the keyword match is not confirmed.
    let no_exclusions = BUILTIN_CONFIG.replace(
        "unless = [\n  '(?i)\\b(jokes?|funny|poems?|haiku|limerick|story|stories|song|lyrics)\\b',\n]\n",
        "",
    );
    assert_ne!(no_exclusions, BUILTIN_CONFIG, "the unless list was not removed");
    let config = Config::parse("no-unless.toml", &no_exclusions).unwrap();
    let level2 = with_encoder(index());
    for prompt in ["Tell me a joke about Python", "Write a funny poem about SQL databases"] {
        let decision = route_with(&config, &level2, &user("auto", prompt));
        assert_ne!(decision.route, "code", "{prompt:?}: {:?}", decision.reasons);
        assert!(decision.reasons.iter().any(|r| r.contains("by meaning")), "{:?}", decision.reasons);
    }
    let decision =
        route_with(&config, &level2, &user("auto", "Fix this Python function that crashes on empty input"));
    assert_eq!(decision.route, "code");
}

#[test]
fn every_route_is_scored_in_the_decision() {
    let decision = route("Prove that the product of two odd numbers is odd");
    for r in ["code", "reasoning", "creative"] {
        assert!(decision.scores.contains_key(r), "{:?}", decision.scores);
    }
    assert!(decision.scores["reasoning"] > decision.scores["creative"]);
    assert!(matches!(decision.signals.semantic, SemanticSignal::Scored(_)));
}

#[test]
fn the_labelled_set_is_routed_well() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/routing_eval.jsonl"))
        .unwrap();
    let rows = parse_rows("routing_eval.jsonl", &text).unwrap();
    let (config, level2) = (builtin(), with_encoder(index()));
    let pairs: Vec<_> = rows
        .iter()
        .map(|r| (r.label.clone(), route_with(&config, &level2, &user("auto", &r.text)).route))
        .collect();
    let report = EvalReport::compute(&config.default_route, &pairs);
    eprintln!("held-out routing accuracy {:.3}, macro-F1 {:.3}", report.accuracy, report.macro_f1);
    // BENCHMARKS.md reports the measured value; this guards against regressions.
    assert!(report.accuracy >= 0.75, "accuracy {}", report.accuracy);
}

#[test]
fn a_short_follow_up_is_embedded_with_the_previous_question() {
    let request = ChatRequest::from_value(serde_json::json!({
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a limerick about a cat"},
            {"role": "assistant", "content": "There once was a cat..."},
            {"role": "user", "content": "another one?"},
        ],
    }))
    .unwrap();
    let config = builtin();
    assert_eq!(
        routing_text(&request, config.semantic.follow_up_words),
        "Write a limerick about a cat\nanother one?"
    );
    assert_eq!(route_with(&config, &with_encoder(index()), &request).route, "creative");
}

#[test]
fn without_the_encoder_rules_still_route() {
    let decision = route_by_rules("auto", "Write a SQL query that returns the ten most recent orders");
    assert_eq!((decision.route.as_str(), decision.level), ("code", Level::Rules));
    // The exclusion list is the level-1 fallback for jokes.
    let decision = route_by_rules("auto", "Tell me a joke about Python");
    assert_eq!((decision.route.as_str(), decision.level), ("chat", Level::Default));
    assert_eq!(decision.signals.semantic, SemanticSignal::Unavailable("no encoder in this test".into()));
    assert!(decision.reasons.iter().any(|r| r.contains("semantic routing was unavailable")));
}

#[test]
fn prompt_size_sends_long_prompts_to_the_long_context_route() {
    let long = "Summarise the history of the printing press in Europe. ".repeat(12_000);
    let decision = route_by_rules("auto", &long);
    assert_eq!((decision.route.as_str(), decision.level), ("long", Level::Rules));
    assert!(decision.signals.prompt_tokens >= 100_000);
    let code = format!("{} Now rewrite it in Python.", "def f(x): return x * 2\n".repeat(20_000));
    assert_eq!(route_by_rules("auto", &code).route, "long");
}

#[test]
fn the_decision_explains_a_rule_exclusion() {
    let decision = route_by_rules("auto", "Tell me a joke about Python");
    let code = decision.signals.rules.iter().find(|r| r.route == "code").unwrap();
    assert_eq!(code.keyword.as_ref().unwrap().text, "Python");
    assert_eq!(code.excluded_by.as_ref().unwrap().text, "joke");
    assert!(decision.reasons.iter().any(|r| r.contains("excluded")), "{:?}", decision.reasons);
}

#[test]
fn explicit_models_and_routes_skip_routing() {
    let decision = route_by_rules("big", "Write SQL");
    assert_eq!(
        (decision.route.as_str(), decision.model.as_str(), decision.level),
        ("explicit", "big", Level::Explicit)
    );
    assert_eq!(decision.candidates, ["big"]);
    let decision = route_by_rules("code", "hello");
    assert_eq!(
        (decision.route.as_str(), decision.model.as_str(), decision.level),
        ("code", "coder", Level::Explicit)
    );
    assert_eq!(decision.candidates, ["coder", "big"]);
}

#[test]
fn unknown_models_are_404() {
    let err = decide(&builtin(), &without_encoder(), &user("gpt-17", "hi")).unwrap_err();
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
    assert_ne!(decide(&builtin(), &without_encoder(), &request).unwrap().route, "code");
}

#[test]
fn a_huge_prompt_is_routed_on_its_opening_and_closing_lines() {
    use switchyard::core::request::ROUTING_WINDOW_CHARS;
    let filler = "The quarterly numbers looked fine to everyone in the room. ".repeat(20_000);
    let asked_last = format!("{filler}\nNow write a SQL query that totals them by region.");
    let code =
        |d: &Decision| d.signals.rules.iter().find(|r| r.route == "code").and_then(|r| r.keyword.clone());
    assert_eq!(code(&route_by_rules("auto", &asked_last)).unwrap().text, "SQL");
    let asked_first = format!("Write a SQL query over this:\n{filler}");
    assert!(code(&route_by_rules("auto", &asked_first)).is_some());
    // What lies between the two halves is not read.
    let (head, tail) = filler.split_at(filler.len() / 2);
    let buried = format!("{head} SQL {tail}");
    assert!(buried.chars().count() > 2 * ROUTING_WINDOW_CHARS);
    assert!(code(&route_by_rules("auto", &buried)).is_none());
    let text = routing_text(&user("auto", &buried), 0);
    assert_eq!(text.chars().count(), ROUTING_WINDOW_CHARS + 1);
}
