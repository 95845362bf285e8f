//! The attempt loop (`core::attempts`) against a scripted upstream: every branch the end-to-end
//! fault tests cover, exactly (jitter fixed, no clock), with the attempts header it produces.

use serde_json::json;
use switchyard::core::attempts::{Action, Attempts, CallResult};
use switchyard::core::config::Config;
use switchyard::core::error::{ErrorKind, RouterError};
use switchyard::core::fallback::{attempts_header, skipped_header};
use switchyard::core::request::ChatRequest;

const CONFIG: &str = r#"
[providers.local]
kind = "openai"
base_url = "http://localhost:11434/v1"

[providers.claude]
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
api_key = "ANTHROPIC_API_KEY"

[models.a]
provider = "local"
context_window = 8192

[models.b]
provider = "local"
context_window = 8192
timeout_ms = 4000

[models.small]
provider = "local"
context_window = 50

[models.sonnet]
provider = "claude"
context_window = 200000

[[routes]]
name = "chain"
models = ["a", "b"]

[[routes]]
name = "skips"
models = ["small", "sonnet", "b"]

[[routes]]
name = "nothing"
models = ["small", "sonnet"]

[upstream]
max_retries = 1
backoff_base_ms = 100
backoff_max_ms = 1000
max_retry_after_ms = 2000
request_deadline_ms = 10000

[default]
route = "chain"
"#;

const JITTER: f64 = 0.5;

/// The machine for a request to `route` with `content`; only ANTHROPIC_API_KEY is unset.
fn machine(route: &str, content: &str) -> Attempts {
    let config = Config::parse("attempts.toml", CONFIG).unwrap();
    let request =
        ChatRequest::from_value(json!({"model": route, "messages": [{"role": "user", "content": content}]}))
            .unwrap();
    let decision = crate::routing::decide(&config, &crate::routing::without_encoder(), &request).unwrap();
    Attempts::new(&config, &decision, &request, |_| false, vec!["sk-secret-123".into()])
}

/// What the platform did, driving `machine` with the scripted results, in order.
struct Run {
    calls: Vec<String>,
    waits: Vec<u64>,
    /// The time each call was given to start answering.
    timeouts: Vec<u64>,
    end: Action,
    attempts: Option<String>,
    skipped: Option<String>,
}

fn drive(machine: Attempts, script: Vec<CallResult>) -> Run {
    let script = script.into_iter().map(|result| (result, 0)).collect();
    drive_timed(machine, script)
}

/// As [`drive`], each call taking the given milliseconds of a fake clock (waits take theirs).
fn drive_timed(mut machine: Attempts, script: Vec<(CallResult, u64)>) -> Run {
    let mut script = script.into_iter();
    let (mut calls, mut waits, mut timeouts) = (Vec::new(), Vec::new(), Vec::new());
    let mut now = 1_000_000;
    let mut action = machine.start(now);
    let end = loop {
        action = match action {
            Action::Call { model, timeout_ms, .. } => {
                calls.push(model);
                timeouts.push(timeout_ms);
                let (result, took) = script.next().expect("the script ran out");
                now += took;
                machine.called(result, now, JITTER)
            }
            Action::Wait { ms } => {
                waits.push(ms);
                now += ms;
                machine.waited(now)
            }
            end => break end,
        };
    };
    assert!(script.next().is_none(), "the machine stopped before the script's end");
    Run {
        calls,
        waits,
        timeouts,
        end,
        attempts: attempts_header(machine.attempts()),
        skipped: skipped_header(machine.attempts()),
    }
}

fn status(code: u16) -> CallResult {
    CallResult::Failed(RouterError::from_upstream(
        "local",
        code,
        r#"{"error": {"message": "scripted"}}"#,
        &[],
    ))
}

fn failed(kind: ErrorKind) -> CallResult {
    CallResult::Failed(RouterError::new(kind, "scripted"))
}

fn delivered(model: &str) -> Action {
    Action::Deliver { model: model.into() }
}

#[test]
fn a_503_is_retried_once_after_a_backoff_then_the_next_model_answers() {
    let run = drive(machine("chain", "hi"), vec![status(503), status(503), CallResult::Answered]);
    assert_eq!(run.end, delivered("b"));
    assert_eq!(run.calls, ["a", "a", "b"]);
    // Backoff before retry 0: uniform in [base/2, base], here at jitter 0.5.
    assert_eq!(run.waits, [75]);
    assert_eq!(run.attempts.as_deref(), Some("a=http_503, a=http_503, b=ok"));
}

#[test]
fn a_429_waits_as_long_as_retry_after_asks_unless_that_is_past_the_limit() {
    let mut limited = RouterError::from_upstream("local", 429, "{}", &[]);
    limited.retry_after_ms = Some(1500);
    let run = drive(machine("chain", "hi"), vec![CallResult::Failed(limited.clone()), CallResult::Answered]);
    assert_eq!(run.calls, ["a", "a"]);
    assert_eq!(run.waits, [1500]);
    assert_eq!(run.end, delivered("a"));

    limited.retry_after_ms = Some(5000);
    let run = drive(machine("chain", "hi"), vec![CallResult::Failed(limited), CallResult::Answered]);
    assert_eq!(run.calls, ["a", "b"]);
    assert!(run.waits.is_empty());
    assert_eq!(run.attempts.as_deref(), Some("a=http_429, b=ok"));
}

#[test]
fn timeouts_unreachable_and_529_are_retried_malformed_answers_fall_back_at_once() {
    for (first, outcome) in [
        (failed(ErrorKind::UpstreamTimeout), "timeout"),
        (failed(ErrorKind::UpstreamUnreachable), "unreachable"),
        (status(529), "http_503"),
    ] {
        let run = drive(machine("chain", "hi"), vec![first, CallResult::Answered]);
        assert_eq!(run.attempts, Some(format!("a={outcome}, a=ok")));
    }
    let run = drive(machine("chain", "hi"), vec![failed(ErrorKind::UpstreamMalformed), CallResult::Answered]);
    assert_eq!(run.attempts.as_deref(), Some("a=malformed, b=ok"));
}

#[test]
fn a_400_fails_at_once_and_401_403_404_fall_back_without_a_retry() {
    let run = drive(machine("chain", "hi"), vec![status(400)]);
    assert!(matches!(&run.end, Action::Fail(e) if e.status() == 400), "{:?}", run.end);
    assert_eq!(run.calls, ["a"]);
    for code in [401, 403, 404] {
        let run = drive(machine("chain", "hi"), vec![status(code), CallResult::Answered]);
        assert_eq!(run.attempts, Some(format!("a=http_{code}, b=ok")));
    }
}

#[test]
fn when_every_model_fails_the_last_error_is_returned_scrubbed_of_secrets() {
    let leaky = || {
        CallResult::Failed(RouterError::from_upstream(
            "local",
            502,
            r#"{"error": {"message": "bad key sk-secret-123"}}"#,
            &[],
        ))
    };
    let run = drive(machine("chain", "hi"), vec![leaky(), leaky(), leaky(), leaky()]);
    let Action::Fail(error) = run.end else { panic!("{:?}", run.end) };
    assert_eq!(error.status(), 502);
    assert!(
        !error.message.contains("sk-secret-123") && error.message.contains("[redacted]"),
        "{}",
        error.message
    );
    assert_eq!(run.attempts.as_deref(), Some("a=http_502, a=http_502, b=http_502, b=http_502"));
}

#[test]
fn a_request_one_api_cannot_express_skips_to_the_next_model() {
    let untranslatable = RouterError::invalid_request("tool call arguments must be a JSON object");
    let run = drive(
        machine("chain", "hi"),
        vec![CallResult::Untranslatable(untranslatable.clone()), CallResult::Answered],
    );
    assert_eq!(run.end, delivered("b"));
    assert_eq!((run.attempts.as_deref(), run.skipped.as_deref()), (Some("b=ok"), Some("a=unsupported")));
    // If no model can take it, that 400 is the answer.
    let run = drive(
        machine("chain", "hi"),
        vec![CallResult::Untranslatable(untranslatable.clone()), CallResult::Untranslatable(untranslatable)],
    );
    assert!(matches!(&run.end, Action::Fail(e) if e.status() == 400 && e.message.contains("JSON object")));
}

#[test]
fn skipped_models_are_never_called_and_all_skipped_says_why() {
    let long = "word ".repeat(80);
    let run = drive(machine("skips", &long), vec![CallResult::Answered]);
    assert_eq!(run.calls, ["b"]);
    assert_eq!(run.skipped.as_deref(), Some("small=context_window, sonnet=missing_secret"));
    let run = drive(machine("nothing", &long), vec![]);
    assert!(run.calls.is_empty());
    assert!(matches!(&run.end, Action::Fail(e) if e.status() == 400), "{:?}", run.end);
    let run = drive(machine("nothing", "hi"), vec![status(503), status(503)]);
    assert_eq!(run.calls, ["small", "small"]);
    assert_eq!(run.skipped.as_deref(), Some("sonnet=missing_secret"));
}

#[test]
fn each_call_gets_its_models_timeout_clipped_to_what_is_left_of_the_deadline() {
    // a: the [upstream] default (60 s) clipped to the 10 s deadline; b: its own 4 s.
    let run = drive(machine("chain", "hi"), vec![failed(ErrorKind::UpstreamMalformed), CallResult::Answered]);
    assert_eq!(run.timeouts, [10_000, 4000]);
    // After 8 s spent on a, b has 2 s left, not its 4.
    let run = drive_timed(
        machine("chain", "hi"),
        vec![(failed(ErrorKind::UpstreamMalformed), 8000), (CallResult::Answered, 100)],
    );
    assert_eq!(run.timeouts, [10_000, 2000]);
}

#[test]
fn a_retry_that_would_outlast_the_deadline_moves_on_and_a_spent_deadline_fails_with_a_504() {
    let mut limited = RouterError::from_upstream("local", 429, "{}", &[]);
    limited.retry_after_ms = Some(1500);
    // 9 s gone: waiting 1.5 s for a would pass the deadline, so b is called with what is left.
    let run = drive_timed(
        machine("chain", "hi"),
        vec![(CallResult::Failed(limited), 9000), (CallResult::Answered, 100)],
    );
    assert_eq!(run.calls, ["a", "b"]);
    assert!(run.waits.is_empty());
    assert_eq!(run.timeouts, [10_000, 1000]);
    // a's timeout used the whole deadline: nothing is left for b.
    let run = drive_timed(machine("chain", "hi"), vec![(failed(ErrorKind::UpstreamTimeout), 10_000)]);
    let Action::Fail(error) = run.end else { panic!("{:?}", run.end) };
    assert_eq!(error.status(), 504);
    assert!(
        error.message.contains("deadline of 10000 ms") && error.message.contains("after 1 calls"),
        "{}",
        error.message
    );
    assert_eq!(run.attempts.as_deref(), Some("a=timeout"));
}
