//! One call's protocol (`core::upstream_call`) on a fake clock: the request it sends, the time a
//! model has to start answering (shared by the head and a stream's first event), a silent body,
//! the commit point of a stream, and failures before it, each typed as the attempt loop needs.

use serde_json::json;
use switchyard::core::config::Config;
use switchyard::core::error::ErrorKind;
use switchyard::core::request::ChatRequest;
use switchyard::core::upstream_call::{CallError, Head, Input, Step, UpstreamCall};

const CONFIG: &str = r#"
[providers.local]
kind = "openai"
base_url = "http://localhost:11434/v1"
headers = { "x-tenant" = "TENANT_ID" }

[providers.claude]
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
api_key = "ANTHROPIC_API_KEY"

[models.a]
provider = "local"
context_window = 8192

[models.sonnet]
provider = "claude"
context_window = 200000

[[routes]]
name = "chain"
models = ["a", "sonnet"]

[upstream]
idle_timeout_ms = 2000

[default]
route = "chain"
"#;

const T0: u64 = 1_764_300_000_000;
const TIMEOUT: u64 = 5000;
const KEY: &str = "sk-ant-secret-123";

fn secret(name: &str) -> Option<String> {
    match name {
        "ANTHROPIC_API_KEY" => Some(KEY.to_string()),
        "TENANT_ID" => Some("tenant-7".to_string()),
        _ => None,
    }
}

fn request(stream: bool) -> ChatRequest {
    ChatRequest::from_value(json!({
        "model": "chain", "stream": stream,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    }))
    .unwrap()
}

/// The call of `model`, sent at `T0`.
fn call(model: &str, stream: bool) -> UpstreamCall {
    let config = Config::parse("upstream_call.toml", CONFIG).unwrap();
    match UpstreamCall::prepare(&config, model, &request(stream), TIMEOUT, secret, vec![KEY.into()], T0) {
        Ok((call, _)) => call,
        Err(result) => panic!("{model} could not be called: {result:?}"),
    }
}

fn head(status: u16) -> Input {
    Input::Head(Head { status, ..Head::default() })
}

fn chunk(text: &str) -> Input {
    Input::Chunk(text.as_bytes().to_vec())
}

fn failed(step: Step) -> switchyard::core::error::RouterError {
    match step {
        Step::Failed(error) => error,
        _ => panic!("the call did not fail"),
    }
}

fn read_chunk_until(step: &Step) -> u64 {
    match step {
        Step::ReadChunk { until_ms } => *until_ms,
        _ => panic!("the call does not read the stream"),
    }
}

const ROLE_ONLY: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
const CONTENT: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Paris\"},\"finish_reason\":null}]}\n\n";

#[test]
fn the_request_carries_the_api_headers_and_the_providers_own_from_secrets() {
    let config = Config::parse("upstream_call.toml", CONFIG).unwrap();
    let (_, outgoing) =
        UpstreamCall::prepare(&config, "a", &request(false), TIMEOUT, secret, vec![], T0).unwrap();
    assert_eq!(outgoing.url, "http://localhost:11434/v1/chat/completions");
    assert!(outgoing.headers.contains(&("x-tenant".to_string(), "tenant-7".to_string())));
    let (_, outgoing) =
        UpstreamCall::prepare(&config, "sonnet", &request(false), TIMEOUT, secret, vec![], T0).unwrap();
    assert!(outgoing.headers.contains(&("x-api-key".to_string(), KEY.to_string())));
}

#[test]
fn a_model_without_its_secret_or_that_cannot_take_the_request_is_not_called() {
    let config = Config::parse("upstream_call.toml", CONFIG).unwrap();
    let no_secrets = |_: &str| None;
    match UpstreamCall::prepare(&config, "sonnet", &request(false), TIMEOUT, no_secrets, vec![], T0) {
        Err(CallError::Failed(error)) => {
            assert_eq!(error.kind, ErrorKind::Configuration);
            assert!(error.message.contains("ANTHROPIC_API_KEY"), "{}", error.message);
        }
        _ => panic!("called without its key"),
    }
    let system_only = ChatRequest::from_value(
        json!({"model": "chain", "messages": [{"role": "system", "content": "Be brief."}]}),
    )
    .unwrap();
    let prepared = UpstreamCall::prepare(&config, "sonnet", &system_only, TIMEOUT, secret, vec![], T0);
    assert!(matches!(prepared, Err(CallError::Untranslatable(e)) if e.status() == 400));
    let unknown = UpstreamCall::prepare(&config, "nope", &request(false), TIMEOUT, secret, vec![], T0);
    assert!(matches!(unknown, Err(CallError::Failed(e)) if e.kind == ErrorKind::Internal));
}

#[test]
fn a_whole_answer_is_read_and_translated() {
    let mut call = call("a", false);
    assert!(matches!(call.start(), Step::AwaitHead { until_ms } if until_ms == T0 + TIMEOUT));
    let step = call.on(head(200), T0 + 300);
    assert!(matches!(step, Step::ReadText { until_ms } if until_ms == T0 + 300 + 2000));
    let body = std::fs::read_to_string("tests/data/wire/openai/completion.json").unwrap();
    match call.on(Input::Text(body), T0 + 900) {
        Step::Answered(completion) => {
            assert!(completion.body.contains("Paris is the capital of France."));
            assert_eq!(completion.usage.map(|u| u.completion_tokens), Some(8));
        }
        _ => panic!("no answer"),
    }
}

#[test]
fn a_head_that_comes_too_late_is_a_timeout_naming_the_model() {
    let mut call = call("a", false);
    let error = failed(call.on(Input::TimedOut, T0 + TIMEOUT));
    assert_eq!(error.kind, ErrorKind::UpstreamTimeout);
    assert!(error.retryable());
    assert_eq!(error.message, "model \"a\" did not start answering within 5000 ms");
}

#[test]
fn a_whole_body_that_goes_silent_is_given_up_on() {
    let mut call = call("a", false);
    call.on(head(200), T0 + 100);
    let error = failed(call.on(Input::TimedOut, T0 + 2100));
    assert_eq!(error.kind, ErrorKind::UpstreamTimeout);
    assert!(error.message.contains("went silent for 2000 ms"), "{}", error.message);
}

#[test]
fn the_time_to_start_answering_is_shared_by_the_head_and_the_first_event() {
    let mut call = call("a", true);
    // The head took 3 s of the 5: the first event has what is left, not 5 s more.
    let step = call.on(head(200), T0 + 3000);
    assert_eq!(read_chunk_until(&step), T0 + TIMEOUT);
    let error = failed(call.on(Input::TimedOut, T0 + TIMEOUT));
    assert_eq!(error.kind, ErrorKind::UpstreamTimeout);
    assert_eq!(error.message, "model \"a\" sent no stream event within 5000 ms");
}

#[test]
fn a_role_only_first_chunk_does_not_commit_the_stream() {
    let mut call = call("a", true);
    call.on(head(200), T0 + 100);
    let step = call.on(chunk(ROLE_ONLY), T0 + 200);
    assert_eq!(read_chunk_until(&step), T0 + TIMEOUT, "the opening chunk committed the stream");
    // Half an event: still nothing said.
    let (first, rest) = CONTENT.split_at(40);
    assert_eq!(read_chunk_until(&call.on(chunk(first), T0 + 300)), T0 + TIMEOUT);
    match call.on(chunk(rest), T0 + 400) {
        Step::Committed(stream) => {
            let said = String::from_utf8(stream.said).unwrap();
            assert_eq!(said.matches("data: ").count(), 2, "{said}");
            assert!(said.contains("\"role\":\"assistant\"") && said.contains("Paris"));
            assert!(!stream.upstream_ended);
        }
        _ => panic!("content did not commit the stream"),
    }
}

#[test]
fn a_stream_that_opens_then_stalls_is_still_replaceable() {
    let mut call = call("a", true);
    call.on(head(200), T0 + 100);
    call.on(chunk(ROLE_ONLY), T0 + 200);
    let error = failed(call.on(Input::TimedOut, T0 + TIMEOUT));
    assert_eq!(error.kind, ErrorKind::UpstreamTimeout);
}

#[test]
fn an_error_event_before_anything_was_said_fails_like_the_status_it_stands_for() {
    let mut call = call("sonnet", true);
    call.on(head(200), T0 + 100);
    let opening = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n";
    assert_eq!(read_chunk_until(&call.on(chunk(opening), T0 + 200)), T0 + TIMEOUT);
    let overloaded = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    let error = failed(call.on(chunk(overloaded), T0 + 300));
    assert_eq!(error.kind, ErrorKind::UpstreamStatus(503));
    assert!(error.retryable(), "an overloaded stream is retried like a 503");
}

#[test]
fn a_stream_that_ends_before_saying_anything_is_a_failure_not_an_empty_answer() {
    let mut call = call("a", true);
    call.on(head(200), T0 + 100);
    call.on(chunk(ROLE_ONLY), T0 + 200);
    let error = failed(call.on(Input::End, T0 + 300));
    assert_eq!(error.kind, ErrorKind::UpstreamMalformed);
    assert!(error.falls_back());
}

#[test]
fn a_stream_whole_in_its_first_bytes_commits_with_all_of_it() {
    let mut call = call("a", true);
    call.on(head(200), T0 + 100);
    let finish = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    match call.on(chunk(&format!("{ROLE_ONLY}{CONTENT}{finish}")), T0 + 200) {
        Step::Committed(stream) => {
            let said = String::from_utf8(stream.said).unwrap();
            assert!(said.contains("Paris") && said.contains("\"stop\""), "{said}");
        }
        _ => panic!("not committed"),
    }
}

#[test]
fn an_error_status_keeps_its_status_and_retry_after_even_when_its_body_stalls() {
    let mut call = call("sonnet", false);
    let limited = Head { status: 429, retry_after: Some("2".into()), ..Head::default() };
    let step = call.on(Input::Head(limited), T0 + 100);
    assert!(matches!(step, Step::ReadText { until_ms } if until_ms == T0 + 2100));
    let body = format!(
        "{{\"type\":\"error\",\"error\":{{\"type\":\"rate_limit_error\",\"message\":\"slow down, {KEY}\"}}}}"
    );
    let error = failed(call.on(Input::Text(body), T0 + 200));
    assert_eq!(error.kind, ErrorKind::UpstreamStatus(429));
    assert_eq!(error.retry_after_ms, Some(2000));
    assert!(!error.message.contains(KEY), "{}", error.message);

    let mut call = self::call("sonnet", false);
    call.on(head(503), T0 + 100);
    let error = failed(call.on(Input::TimedOut, T0 + 2100));
    assert_eq!(error.kind, ErrorKind::UpstreamStatus(503));
}

#[test]
fn a_broken_connection_is_unreachable_naming_the_provider_and_its_url() {
    let mut call = call("a", true);
    let error = failed(call.on(Input::Broken("connection refused".into()), T0 + 10));
    assert_eq!(error.kind, ErrorKind::UpstreamUnreachable);
    assert_eq!(
        error.message,
        "could not reach upstream \"local\" at http://localhost:11434/v1: connection refused"
    );
    let mut call = self::call("a", true);
    call.on(head(200), T0 + 100);
    let error = failed(call.on(Input::Broken("reset".into()), T0 + 200));
    assert!(error.message.ends_with("the stream broke: reset"), "{}", error.message);
}

#[test]
fn an_input_out_of_turn_is_an_internal_error_not_a_panic() {
    let mut call = call("a", false);
    let error = failed(call.on(Input::End, T0 + 10));
    assert_eq!(error.kind, ErrorKind::Internal);
    let error = failed(call.on(head(200), T0 + 20));
    assert_eq!(error.kind, ErrorKind::Internal);
}
