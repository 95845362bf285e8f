//! Level 4, one turn: a route's cascade. Its config is checked where it is written; the attempt
//! machine rates the chain's answers and replaces weak ones; the raters' requests are constrained
//! per API and their answers read strictly; a kept answer is replayed as the stream asked for.

use serde_json::{json, Value};
use switchyard::core::attempts::{Action, Attempts, CallResult, Rated};
use switchyard::core::cascade::{
    self, answer_text, cascade_header, grading_request, logprob_score, rated_request, read_grade, Rating,
    JUDGE_PROMPT, SELF_PROMPT,
};
use switchyard::core::config::{Config, ProviderKind, ScoreMethod};
use switchyard::core::error::{ErrorKind, RouterError};
use switchyard::core::relay::replay_completion;
use switchyard::core::request::ChatRequest;

const CONFIG: &str = r#"
[providers.local]
kind = "openai"
base_url = "http://localhost:11434/v1"

[providers.claude]
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"

[models.small]
provider = "local"
context_window = 8192

[models.mid]
provider = "local"
context_window = 8192

[models.big]
provider = "claude"
context_window = 200000

[[routes]]
name = "chat"
models = ["big", "mid"]
cascade = { chain = ["small", "mid"], score = "self", min_score = 0.6 }

[[routes]]
name = "three"
models = ["small"]
cascade = { chain = ["small", "mid", "big"], score = "judge:big" }

[[routes]]
name = "plain"
models = ["small", "big"]

[default]
route = "chat"
"#;

fn config() -> Config {
    Config::parse("cascade.toml", CONFIG).unwrap()
}

fn request(route: &str) -> ChatRequest {
    ChatRequest::from_value(
        json!({"model": route, "messages": [{"role": "user", "content": "What is 2+2?"}]}),
    )
    .unwrap()
}

fn machine(route: &str) -> Attempts {
    let config = config();
    let request = request(route);
    let decision = crate::routing::decide(&config, &crate::routing::without_encoder(), &request).unwrap();
    Attempts::new(&config, &decision, &request, |_| true, vec![])
}

/// What the platform did, given each call's result and each rating's score in turn.
struct Run {
    /// Each call: the model, and whether its answer was to be rated.
    calls: Vec<(String, bool)>,
    rated: Vec<String>,
    end: Action,
    header: Option<String>,
}

fn drive(mut machine: Attempts, calls: Vec<CallResult>, scores: Vec<Result<f64, String>>) -> Run {
    let (mut calls, mut scores) = (calls.into_iter(), scores.into_iter());
    let (mut called, mut rated) = (Vec::new(), Vec::new());
    let mut action = machine.start(0);
    let end = loop {
        action = match action {
            Action::Call { model, rated, .. } => {
                called.push((model, rated));
                machine.called(calls.next().expect("the calls ran out"), 10, 0.5)
            }
            Action::Rate { model, .. } => {
                rated.push(model);
                let score = scores.next().expect("the scores ran out");
                machine.rated(Rated { score, cost_usd: Some(0.001) }, 20)
            }
            Action::Wait { .. } => machine.waited(30),
            end => break end,
        };
    };
    Run { calls: called, rated, end, header: cascade_header(machine.cascade_steps()) }
}

fn delivered(model: &str) -> Action {
    Action::Deliver { model: model.into() }
}

#[test]
fn the_chain_comes_first_then_the_routes_other_models_as_fallbacks() {
    let config = config();
    assert_eq!(config.route("chat").unwrap().candidates(), ["small", "mid", "big"]);
    assert_eq!(config.route("three").unwrap().candidates(), ["small", "mid", "big"]);
    assert_eq!(config.route("plain").unwrap().candidates(), ["small", "big"]);
    let cascade = config.route("three").unwrap().cascade.clone().unwrap();
    assert_eq!((cascade.score, cascade.min_score), (ScoreMethod::Judge("big".into()), 0.7));
}

#[test]
fn a_high_score_delivers_the_cheap_answer() {
    let run = drive(machine("chat"), vec![CallResult::Answered], vec![Ok(0.9)]);
    assert_eq!(run.calls, [("small".to_string(), true)]);
    assert_eq!(run.end, delivered("small"));
    assert_eq!(run.header.as_deref(), Some("small;score=0.90;verdict=accepted;cost_usd=0.001"));
}

#[test]
fn a_low_score_throws_the_answer_away_for_the_next_models() {
    let run = drive(machine("chat"), vec![CallResult::Answered, CallResult::Answered], vec![Ok(0.3)]);
    // The chain's last model is not rated: nothing stronger is left to ask.
    assert_eq!(run.calls, [("small".to_string(), true), ("mid".to_string(), false)]);
    assert_eq!(run.rated, ["small"]);
    assert_eq!(run.end, delivered("mid"));
    assert_eq!(
        run.header.as_deref(),
        Some("small;score=0.30;verdict=rejected;cost_usd=0.001, mid;verdict=final")
    );
}

#[test]
fn a_score_at_the_minimum_is_kept_and_a_failed_rating_is_not() {
    let run = drive(machine("chat"), vec![CallResult::Answered], vec![Ok(0.6)]);
    assert_eq!(run.end, delivered("small"));
    let run = drive(
        machine("chat"),
        vec![CallResult::Answered, CallResult::Answered],
        vec![Err("the rating call failed: timeout".into())],
    );
    assert_eq!(run.end, delivered("mid"));
    assert!(run.header.unwrap().starts_with("small;score=error;verdict=rejected"));
}

#[test]
fn every_chain_model_but_the_last_is_rated_in_turn() {
    let run = drive(
        machine("three"),
        vec![CallResult::Answered, CallResult::Answered, CallResult::Answered],
        vec![Ok(0.2), Ok(0.5)],
    );
    assert_eq!(run.rated, ["small", "mid"]);
    assert_eq!(run.end, delivered("big"));
}

#[test]
fn when_the_stronger_models_fail_the_best_rejected_answer_is_sent_rather_than_an_error() {
    let down = || CallResult::Failed(RouterError::new(ErrorKind::UpstreamUnreachable, "down"));
    let run = drive(
        machine("three"),
        vec![CallResult::Answered, CallResult::Answered, down(), down(), down()],
        vec![Ok(0.4), Ok(0.2)],
    );
    assert_eq!(run.end, delivered("small"));
    assert_eq!(
        run.header.as_deref(),
        Some("small;score=0.40;verdict=kept;cost_usd=0.001, mid;score=0.20;verdict=rejected;cost_usd=0.001")
    );
}

#[test]
fn a_rated_call_that_times_out_or_gets_a_400_is_not_asked_again_the_next_model_is() {
    // Asked for a whole answer, a timed-out call may have been generated in full; a 400 may be
    // the cascade's own `logprobs`.
    for error in [
        RouterError::new(ErrorKind::UpstreamTimeout, "slow"),
        RouterError::from_upstream("local", 400, r#"{"error": {"message": "logprobs unsupported"}}"#, &[]),
    ] {
        let run = drive(machine("chat"), vec![CallResult::Failed(error), CallResult::Answered], vec![]);
        assert_eq!(run.calls, [("small".to_string(), true), ("mid".to_string(), false)]);
        assert_eq!(run.end, delivered("mid"));
    }
}

#[test]
fn a_route_with_a_cascade_needs_no_other_models() {
    let text = CONFIG.replace("name = \"three\"\nmodels = [\"small\"]\n", "name = \"three\"\n");
    let config = Config::parse("c.toml", &text).unwrap();
    assert_eq!(config.route("three").unwrap().candidates(), ["small", "mid", "big"]);
    let err = Config::parse(
        "c.toml",
        &CONFIG.replace("name = \"plain\"\nmodels = [\"small\", \"big\"]\n", "name = \"plain\"\n"),
    )
    .unwrap_err();
    assert!(err.message.contains("lists no models"), "{err}");
}

#[test]
fn logprobs_the_client_did_not_ask_for_are_taken_out_and_those_it_did_are_replayed() {
    let with_logprobs = json!({"id": "c1", "created": 7, "model": "m", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop",
        "logprobs": {"content": [{"token": "ok", "logprob": -0.1}]}}]})
    .to_string();
    let asked = |asked: bool| {
        ChatRequest::from_value(
            json!({"model": "chat", "logprobs": asked, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap()
    };
    let stripped: Value =
        serde_json::from_str(&cascade::as_client_asked(&with_logprobs, &asked(false))).unwrap();
    assert_eq!(stripped["choices"][0]["logprobs"], Value::Null);
    assert_eq!(cascade::as_client_asked(&with_logprobs, &asked(true)), with_logprobs);
    let replayed = String::from_utf8(replay_completion(&with_logprobs, false, None)).unwrap();
    let first: Value =
        serde_json::from_str(&replayed.split("\n\n").next().unwrap()["data: ".len()..]).unwrap();
    assert_eq!(first["choices"][0]["logprobs"]["content"][0]["logprob"], -0.1);
}

#[test]
fn a_failing_cheap_model_falls_back_along_the_chain_as_without_a_cascade() {
    let down = CallResult::Failed(RouterError::new(ErrorKind::UpstreamMalformed, "garbage"));
    let run = drive(machine("chat"), vec![down, CallResult::Answered], vec![]);
    assert_eq!(run.calls, [("small".to_string(), true), ("mid".to_string(), false)]);
    assert_eq!(run.end, delivered("mid"));
}

#[test]
fn a_route_without_a_cascade_or_a_named_model_is_never_rated() {
    let run = drive(machine("plain"), vec![CallResult::Answered], vec![]);
    assert_eq!((run.end, run.header), (delivered("small"), None));
    let run = drive(machine("small"), vec![CallResult::Answered], vec![]);
    assert_eq!(run.calls, [("small".to_string(), false)]);
}

#[test]
fn cascade_mistakes_point_at_their_place() {
    let with = |cascade: &str| {
        let text =
            CONFIG.replace(r#"{ chain = ["small", "mid"], score = "self", min_score = 0.6 }"#, cascade);
        Config::parse("cascade.toml", &text).unwrap_err().to_string()
    };
    let line = "cascade.toml:25:";
    for (cascade, says) in [
        (r#"{ chain = ["small"] }"#, "needs at least two models"),
        (r#"{ chain = ["small", "ghost"] }"#, r#"unknown model "ghost""#),
        (r#"{ chain = ["small", "small"] }"#, r#"lists "small" twice"#),
        (
            r#"{ chain = ["small", "mid"], score = "vibes" }"#,
            r#"must be "self", "judge:MODEL" or "logprobs""#,
        ),
        (r#"{ chain = ["small", "mid"], score = "judge:ghost" }"#, r#"unknown judge model "ghost""#),
        (r#"{ chain = ["small", "mid"], min_score = 7 }"#, "must be in [0, 1]"),
        (r#"{ chain = ["big", "small"], score = "logprobs" }"#, "needs OpenAI-compatible APIs"),
        (r#"{ chain = ["small", "mid"], threshold = 0.5 }"#, "unknown field `threshold`"),
    ] {
        let err = with(cascade);
        assert!(err.starts_with(line) && err.contains(says), "{cascade}: {err}");
    }
    // Log-probabilities are read from the rated models only: the last may be on any API.
    assert!(Config::parse(
        "c.toml",
        &CONFIG
            .replace(r#"score = "self", min_score = 0.6"#, r#"score = "logprobs""#)
            .replace(r#""small", "mid"]"#, r#""small", "big"]"#)
    )
    .is_ok());
}

#[test]
fn a_rated_call_asks_for_the_whole_answer_and_logprobs_only_when_they_are_the_score() {
    let streamed = ChatRequest::from_value(json!({
        "model": "chat", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2,
    }))
    .unwrap();
    let rated = rated_request(&streamed, &ScoreMethod::SelfRating).unwrap();
    assert!(!rated.stream);
    assert_eq!(rated.body.get("stream_options"), None);
    assert_eq!(rated.body.get("temperature"), Some(&json!(0.2)));
    assert_eq!(rated.body.get("logprobs"), None);
    let rated = rated_request(&streamed, &ScoreMethod::Logprobs).unwrap();
    assert_eq!(rated.body.get("logprobs"), Some(&json!(true)));
}

fn answer(content: &str) -> String {
    json!({"id": "c1", "object": "chat.completion", "created": 7, "model": "small-up",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
    .to_string()
}

#[test]
fn self_rating_asks_the_model_that_answered_and_a_judge_asks_the_judge() {
    let config = config();
    let kind_of = |name: &str| config.model(name).and_then(|m| config.provider(&m.provider)).map(|p| p.kind);
    let chat = config.route("chat").unwrap().cascade.clone().unwrap();
    let Rating::Ask { model, request: rating } =
        cascade::rating(&chat, "small", &request("chat"), &answer("4"), kind_of)
    else {
        panic!("a self rating is a call")
    };
    assert_eq!(model, "small");
    let messages = rating.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"], SELF_PROMPT);
    assert_eq!(
        messages[1]["content"],
        "<conversation>\nuser: What is 2+2?\n</conversation>\n<answer>\n4\n</answer>"
    );

    let three = config.route("three").unwrap().cascade.clone().unwrap();
    let Rating::Ask { model, request: rating } =
        cascade::rating(&three, "small", &request("three"), &answer("4"), kind_of)
    else {
        panic!("a judge is a call")
    };
    assert_eq!(model, "big");
    assert_eq!(rating.body["messages"][0]["content"], JUDGE_PROMPT);
    // The judge is on the Anthropic API: the grade is a forced tool call.
    assert_eq!(rating.body["tool_choice"]["function"]["name"], cascade::RATING_TOOL);
}

#[test]
fn a_rater_sees_the_system_prompt_and_the_last_messages_each_cut() {
    let mut messages = vec![json!({"role": "system", "content": "You are terse."})];
    for i in 0..10 {
        messages.push(json!({"role": "user", "content": format!("question {i}")}));
        messages.push(json!({"role": "assistant", "content": format!("answer {i}")}));
    }
    messages.push(json!({"role": "user", "content": "and in Python? ".repeat(1_000)}));
    let request = ChatRequest::from_value(json!({"model": "chat", "messages": messages})).unwrap();
    let shown = cascade::rated_conversation(&request);
    assert!(
        shown.starts_with("system: You are terse.\n\nassistant: answer 7\n\nuser: question 8"),
        "{shown}"
    );
    assert_eq!(shown.matches("\n\n").count(), cascade::MAX_RATED_MESSAGES);
    assert!(shown.len() < 8 * 100 + cascade::MAX_RATED_CHARS, "{}", shown.len());
}

#[test]
fn the_grade_is_constrained_to_0_to_10_in_each_apis_way() {
    for kind in [ProviderKind::Openai, ProviderKind::Gemini] {
        let request = grading_request(kind, SELF_PROMPT, "q", "a").unwrap();
        let format = &request.body["response_format"];
        assert_eq!(format["json_schema"]["strict"], true);
        let grade = &format["json_schema"]["schema"]["properties"]["grade"];
        assert_eq!(grade["enum"], json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
        assert_eq!(request.body["stream"], false);
    }
    let long = "x".repeat(20_000);
    let request = grading_request(ProviderKind::Openai, SELF_PROMPT, "user: q", &long).unwrap();
    let shown = request.body["messages"][1]["content"].as_str().unwrap();
    assert!(shown.len() < cascade::MAX_RATED_CHARS + 100, "{}", shown.len());
}

fn rater_says(message: Value) -> String {
    json!({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}).to_string()
}

#[test]
fn grades_are_read_from_json_text_or_the_forced_tool_and_anything_else_is_no_score() {
    assert_eq!(read_grade(&rater_says(json!({"content": "{\"grade\": 8}"}))), Ok(0.8));
    let tool = json!({"content": null, "tool_calls": [{"id": "t", "type": "function",
        "function": {"name": "grade_answer", "arguments": "{\"grade\": 3}"}}]});
    assert_eq!(read_grade(&rater_says(tool)), Ok(0.3));
    for bad in [
        json!({"content": "8"}),
        json!({"content": "{\"grade\": 11}"}),
        json!({"content": "{\"score\": 5}"}),
        json!({"content": ""}),
        json!({"content": null, "refusal": "no"}),
    ] {
        assert!(read_grade(&rater_says(bad.clone())).is_err(), "{bad}");
    }
}

#[test]
fn logprob_scores_are_the_geometric_mean_of_token_probabilities() {
    let with = |logprobs: Value| {
        json!({"choices": [{"index": 0, "message": {"content": "ok"}, "logprobs": {"content": logprobs}}]})
            .to_string()
    };
    let score =
        logprob_score(&with(json!([{"token": "o", "logprob": 0.0}, {"token": "k", "logprob": -2.0}])));
    assert!((score.unwrap() - (-1.0f64).exp()).abs() < 1e-12);
    assert!(logprob_score(&with(json!([]))).is_err());
    assert!(logprob_score(&answer("4")).is_err(), "an upstream that ignored `logprobs` gives no score");
}

#[test]
fn a_rater_sees_text_refusals_and_tool_calls() {
    let message = json!({"content": "Let me check.", "tool_calls": [{"id": "t", "type": "function",
        "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]});
    assert_eq!(
        answer_text(&rater_says(message)).unwrap(),
        "Let me check.\n(calls tool) weather({\"city\":\"Paris\"})"
    );
}

#[test]
fn a_kept_answer_is_replayed_as_an_openai_stream() {
    let text = String::from_utf8(replay_completion(&answer("Four."), true, Some(0.25))).unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(&e["data: ".len()..]).unwrap())
        .collect();
    assert_eq!(chunks.len(), 3);
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == "c1"));
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": "Four."}));
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[2]["usage"]["completion_tokens"], 3);
    assert_eq!(chunks[2]["usage"]["cost"], 0.25);
    // Without include_usage, no usage chunk.
    let text = String::from_utf8(replay_completion(&answer("Four."), false, None)).unwrap();
    assert_eq!(text.matches("data: ").count(), 3);
}

#[test]
fn the_model_list_shows_each_routes_cascade() {
    let list = switchyard::core::api::models_json(&config());
    let entry = |id: &str| list["data"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap().clone();
    assert_eq!(
        entry("three")["switchyard"]["cascade"],
        json!({"chain": ["small", "mid", "big"], "score": "judge:big", "min_score": 0.7})
    );
    assert_eq!(entry("plain")["switchyard"].get("cascade"), None);
}
