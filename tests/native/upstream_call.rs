//! One call's protocol (`core::upstream_call`) on a fake clock: the request it sends, the time a
//! model has to start answering (shared by the head and a stream's first event), a silent body,
//! the commit point of a stream, and failures before it, each typed as the attempt loop needs;
//! then the committed stream: how it ends (whole, cut, stalled, the client gone), reported once.
//! A failure before the commit point has no stream, so it has no stream end to log: the types
//! see to that.

use serde_json::json;
use switchyard::core::config::Config;
use switchyard::core::error::ErrorKind;
use switchyard::core::request::ChatRequest;
use switchyard::core::upstream_call::{
    CallError, CommittedStream, Head, Input, Step, StreamEnd, StreamOutcome, StreamStep, UpstreamCall,
};

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
    assert!(matches!(step, Step::ReadText { until_ms, .. } if until_ms == T0 + 300 + 2000));
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
        Step::Committed(mut stream) => match stream.start(T0 + 500) {
            StreamStep::Relay { bytes, until_ms } => {
                let said = String::from_utf8(bytes).unwrap();
                assert_eq!(said.matches("data: ").count(), 2, "{said}");
                assert!(said.contains("\"role\":\"assistant\"") && said.contains("Paris"));
                assert_eq!(until_ms, T0 + 500 + 2000, "the stream may stay silent for idle_timeout_ms");
            }
            step => panic!("the stream did not go on: {step:?}"),
        },
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
        Step::Committed(mut stream) => {
            let StreamStep::Relay { bytes, .. } = stream.start(T0 + 300) else { panic!("no relay") };
            let said = String::from_utf8(bytes).unwrap();
            assert!(said.contains("Paris") && said.contains("\"stop\""), "{said}");
            let (last, abort, end) = ended(stream.on(Input::End, T0 + 400));
            assert_eq!(last, "data: [DONE]\n\n");
            assert!(!abort, "the upstream had closed its stream");
            assert_eq!(end.outcome, StreamOutcome::Complete);
            assert!(stream.client_closed().is_none(), "the stream already ended");
        }
        _ => panic!("not committed"),
    }
}

#[test]
fn an_error_status_keeps_its_status_and_retry_after_even_when_its_body_stalls() {
    let mut call = call("sonnet", false);
    let limited = Head { status: 429, retry_after: Some("2".into()), ..Head::default() };
    let step = call.on(Input::Head(limited), T0 + 100);
    assert!(matches!(step, Step::ReadText { until_ms, .. } if until_ms == T0 + 2100));
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
fn a_broken_connection_is_unreachable_naming_the_provider_not_its_url() {
    let mut call = call("a", true);
    let error = failed(call.on(Input::Broken("connection refused".into()), T0 + 10));
    assert_eq!(error.kind, ErrorKind::UpstreamUnreachable);
    // The client learns which provider failed, not where the operator's servers are.
    assert_eq!(error.message, "could not reach upstream \"local\": connection refused");
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

/// Model `model`'s stream, committed by `opening` at `T0 + 200`, its opening relayed at
/// `T0 + 300`.
fn committed(model: &str, opening: &str) -> CommittedStream {
    let mut call = call(model, true);
    call.on(head(200), T0 + 100);
    let Step::Committed(mut stream) = call.on(chunk(opening), T0 + 200) else {
        panic!("{opening} did not commit the stream");
    };
    assert!(matches!(stream.start(T0 + 300), StreamStep::Relay { .. }));
    stream
}

/// A stream of `model`, committed at `T0 + 200`, whose whole answer has `ms` from `T0`.
fn committed_within(model: &str, ms: u64) -> CommittedStream {
    let mut call = call(model, true).answer_within(ms, T0);
    call.on(head(200), T0 + 100);
    let Step::Committed(mut stream) = call.on(chunk(&format!("{ROLE_ONLY}{CONTENT}")), T0 + 200) else {
        panic!("the stream did not commit");
    };
    stream.start(T0 + 300);
    stream
}

fn ended(step: StreamStep) -> (String, bool, StreamEnd) {
    match step {
        StreamStep::End { bytes, abort, end } => (String::from_utf8(bytes).unwrap(), abort, end),
        step => panic!("the stream did not end: {step:?}"),
    }
}

/// The part of Anthropic's stream before its error event: it says "Partial".
fn anthropic_partial() -> String {
    let wire = std::fs::read_to_string("tests/data/wire/anthropic/stream_error.sse").unwrap();
    wire[..wire.find("event: error").unwrap()].to_string()
}

#[test]
fn upstream_bodies_past_their_caps_fail_as_malformed_and_are_not_read_on() {
    use switchyard::core::upstream_call::{MAX_ANSWER_BYTES, MAX_ERROR_BODY_BYTES, MAX_UNCOMMITTED_BYTES};
    // A whole answer: the platform is told the cap, and past it the answer is malformed.
    let mut whole = call("a", false);
    assert!(
        matches!(whole.on(head(200), T0 + 100), Step::ReadText { max_bytes, .. } if max_bytes == MAX_ANSWER_BYTES)
    );
    let error = failed(whole.on(Input::TooLarge, T0 + 200));
    assert_eq!(error.kind, ErrorKind::UpstreamMalformed);
    assert!(error.falls_back(), "the next model is tried");
    // A platform that cannot stop reading is held to the cap all the same.
    let mut whole = call("a", false);
    whole.on(head(200), T0 + 100);
    let text = format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_ANSWER_BYTES));
    assert_eq!(failed(whole.on(Input::Text(text), T0 + 200)).kind, ErrorKind::UpstreamMalformed);
    // An error body keeps its status.
    let mut refused = call("a", false);
    assert!(
        matches!(refused.on(head(503), T0 + 100), Step::ReadText { max_bytes, .. } if max_bytes == MAX_ERROR_BODY_BYTES)
    );
    let error = failed(refused.on(Input::TooLarge, T0 + 200));
    assert_eq!((error.status(), error.retryable()), (503, true));
    // A stream that says nothing, at length.
    let mut stream = call("a", true);
    stream.on(head(200), T0 + 100);
    let mut step = stream.on(chunk(ROLE_ONLY), T0 + 150);
    let mut sent = ROLE_ONLY.len();
    while matches!(step, Step::ReadChunk { .. }) {
        step = stream.on(chunk(ROLE_ONLY), T0 + 200);
        sent += ROLE_ONLY.len();
    }
    assert_eq!(failed(step).kind, ErrorKind::UpstreamMalformed);
    assert!(sent > MAX_UNCOMMITTED_BYTES && sent < MAX_UNCOMMITTED_BYTES + 2 * ROLE_ONLY.len());
}

#[test]
fn a_stream_event_past_the_cap_fails_the_call_as_malformed() {
    let mut stream = call("a", true);
    stream.on(head(200), T0 + 100);
    let huge = format!("data: {}", "x".repeat(switchyard::core::sse::MAX_LINE_BYTES + 1));
    assert_eq!(failed(stream.on(chunk(&huge), T0 + 200)).kind, ErrorKind::UpstreamMalformed);
}

#[test]
fn a_stream_kept_alive_by_pings_ends_at_the_requests_deadline_with_an_error_event() {
    let mut stream = committed_within("a", 10_000);
    // A keep-alive comment every second: never idle, but the deadline comes.
    let mut now = T0 + 1000;
    let mut until = 0;
    while now < T0 + 10_000 {
        match stream.on(chunk(": ping\n\n"), now) {
            StreamStep::Relay { until_ms, .. } => until = until_ms,
            step => panic!("ended early at {}: {step:?}", now - T0),
        }
        now += 1000;
    }
    assert_eq!(until, T0 + 10_000, "reads are clipped to the deadline");
    let (bytes, abort, end) = ended(stream.on(Input::TimedOut, T0 + 10_000));
    assert!(
        bytes.contains("\"code\":\"upstream_timeout\"") && bytes.contains("request_deadline_ms"),
        "{bytes}"
    );
    assert!(!bytes.contains("[DONE]") && abort);
    assert_eq!(end.outcome, StreamOutcome::Error);
}

#[test]
fn a_stream_that_never_pauses_still_ends_at_the_requests_deadline() {
    let mut stream = committed_within("a", 10_000);
    assert!(matches!(stream.on(chunk(CONTENT), T0 + 9_999), StreamStep::Relay { .. }));
    let (bytes, abort, end) = ended(stream.on(chunk(CONTENT), T0 + 10_000));
    assert!(bytes.contains("Paris") && bytes.contains("request_deadline_ms"), "{bytes}");
    assert!(abort && !bytes.contains("[DONE]"));
    assert_eq!(end.outcome, StreamOutcome::Error);
}

#[test]
fn a_whole_answer_whose_body_stalls_is_given_up_at_the_requests_deadline() {
    let mut call = call("a", false).answer_within(1_000, T0);
    match call.on(head(200), T0 + 500) {
        Step::ReadText { until_ms, .. } => assert_eq!(until_ms, T0 + 1_000, "not the 2000 ms idle timeout"),
        _ => panic!("the call does not read the body"),
    }
    let error = failed(call.on(Input::TimedOut, T0 + 1_000));
    assert_eq!(error.kind, ErrorKind::UpstreamTimeout);
}

#[test]
fn the_earlier_of_two_answer_deadlines_holds() {
    let mut call = call("a", false).answer_within(1_000, T0).answer_within(5_000, T0);
    let Step::ReadText { until_ms, .. } = call.on(head(200), T0 + 100) else { panic!("no body read") };
    assert_eq!(until_ms, T0 + 1_000);
}

#[test]
fn each_event_relayed_gives_the_stream_idle_timeout_ms_more() {
    let mut stream = committed("a", &format!("{ROLE_ONLY}{CONTENT}"));
    match stream.on(chunk(CONTENT), T0 + 1500) {
        StreamStep::Relay { bytes, until_ms } => {
            assert!(String::from_utf8(bytes).unwrap().contains("Paris"));
            assert_eq!(until_ms, T0 + 1500 + 2000);
        }
        step => panic!("{step:?}"),
    }
    // Half an event: nothing for the client yet, and no end.
    assert!(
        matches!(stream.on(chunk("data: {\"id\""), T0 + 1600), StreamStep::Relay { bytes, .. } if bytes.is_empty())
    );
}

#[test]
fn a_stream_cut_mid_answer_ends_with_an_error_event_and_no_done() {
    let mut stream = committed("a", &format!("{ROLE_ONLY}{CONTENT}"));
    let (bytes, _, end) = ended(stream.on(Input::End, T0 + 400));
    assert!(bytes.contains("\"error\"") && bytes.contains("stream_interrupted"), "{bytes}");
    assert!(!bytes.contains("[DONE]"), "a cut answer must not look whole: {bytes}");
    assert_eq!(end.outcome, StreamOutcome::Error);
    assert_eq!(end.error.map(|e| e.kind), Some(switchyard::core::error::ErrorKind::UpstreamMalformed));

    let mut stream = committed("a", &format!("{ROLE_ONLY}{CONTENT}"));
    let (bytes, abort, end) = ended(stream.on(Input::Broken("reset by peer".into()), T0 + 400));
    assert!(bytes.contains("the upstream stream broke mid-answer: reset by peer"), "{bytes}");
    assert!(abort && end.outcome == StreamOutcome::Error);
}

#[test]
fn an_error_event_mid_answer_is_relayed_as_an_error_event_redacted() {
    let mut stream = committed("sonnet", &anthropic_partial());
    let error = format!(
        "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"busy for {KEY}\"}}}}\n\n"
    );
    let (bytes, abort, end) = ended(stream.on(chunk(&error), T0 + 400));
    assert!(bytes.starts_with("data: {\"error\""), "{bytes}");
    assert!(!bytes.contains(KEY) && !bytes.contains("[DONE]"), "{bytes}");
    assert!(abort, "the upstream is told to stop");
    let error = end.error.expect("the error is logged");
    assert!(!error.message.contains(KEY), "{}", error.message);
    assert_eq!(end.outcome, StreamOutcome::Error);
}

#[test]
fn a_key_where_a_mid_stream_error_is_cut_is_redacted_whole() {
    for pad in [1940, 1950, 1960] {
        let mut stream = committed("sonnet", &anthropic_partial());
        let error = format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{KEY}\",\"message\":\"{}{KEY}\"}}}}\n\n",
            "x".repeat(pad)
        );
        let (bytes, _, _) = ended(stream.on(chunk(&error), T0 + 400));
        assert!(!bytes.contains(&KEY[..8]), "{pad}: {bytes}");
    }
}

#[test]
fn a_stream_that_stalls_mid_answer_is_aborted_with_a_timeout_event() {
    let mut stream = committed("a", &format!("{ROLE_ONLY}{CONTENT}"));
    let (bytes, abort, end) = ended(stream.on(Input::TimedOut, T0 + 2300));
    assert!(bytes.contains("the upstream sent nothing for 2000 ms mid-answer"), "{bytes}");
    assert!(!bytes.contains("[DONE]"));
    assert!(abort, "a stalled upstream is aborted, so it stops billing");
    assert_eq!(end.error.map(|e| e.kind), Some(switchyard::core::error::ErrorKind::UpstreamTimeout));
}

#[test]
fn a_whole_answer_whose_connection_lingers_ends_complete() {
    let finish = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
    let mut stream = committed("a", &format!("{ROLE_ONLY}{CONTENT}{finish}"));
    let (bytes, abort, end) = ended(stream.on(Input::TimedOut, T0 + 2300));
    assert!(bytes.ends_with("data: [DONE]\n\n"), "{bytes}");
    assert!(abort, "the lingering connection is closed");
    assert_eq!((end.outcome, end.error), (StreamOutcome::Complete, None));
}

#[test]
fn a_client_that_goes_away_ends_the_stream_once_with_the_usage_so_far() {
    let mut stream = committed("sonnet", &anthropic_partial());
    let end = stream.client_closed().expect("the stream had not ended");
    assert_eq!(end.outcome, StreamOutcome::ClientClosed);
    assert_eq!(end.usage.map(|u| u.prompt_tokens), Some(10), "the usage so far is logged");
    assert!(end.cost_usd.is_some());
    assert!(stream.client_closed().is_none(), "reported twice");
    assert_eq!(stream.on(chunk(CONTENT), T0 + 500), StreamStep::Over);

    let mut stream = committed("a", &format!("{ROLE_ONLY}{CONTENT}"));
    ended(stream.on(Input::TimedOut, T0 + 2300));
    assert!(stream.client_closed().is_none(), "a stream that ended is not closed by its client");
}

#[test]
fn a_call_given_a_budget_for_its_whole_answer_clips_every_deadline_to_it() {
    // The LLM router's call: 5 s to start answering, but 1.5 s for all of it.
    let mut call = call("a", false).answer_within(1500, T0);
    assert!(matches!(call.start(), Step::AwaitHead { until_ms } if until_ms == T0 + 1500));
    let step = call.on(head(200), T0 + 1000);
    assert!(matches!(step, Step::ReadText { until_ms, .. } if until_ms == T0 + 1500), "idle would give 3000");
    let error = failed(call.on(Input::TimedOut, T0 + 1500));
    assert_eq!(error.kind, ErrorKind::UpstreamTimeout);
    assert_eq!(error.message, "model \"a\" did not answer within 1500 ms");
}
