//! The fallback and retry policy: which models are called, skipped, retried or given up on.

use serde_json::json;
use switchyard::core::config::Config;
use switchyard::core::config::UpstreamPolicy;
use switchyard::core::error::{CallOutcome, ErrorKind, RouterError};
use switchyard::core::fallback::{self, after_failure, backoff_ms, plan, Attempt, Next, Skip};
use switchyard::core::request::ChatRequest;

const CONFIG: &str = r#"
[providers.local]
kind = "openai"
base_url = "http://localhost:11434/v1"

[providers.claude]
kind = "anthropic"
base_url = "https://api.anthropic.com/v1"
api_key = "ANTHROPIC_API_KEY"

[providers.google]
kind = "gemini"
base_url = "https://generativelanguage.googleapis.com/v1beta"
api_key = "GEMINI_API_KEY"

[models.tiny]
provider = "local"
context_window = 100

[models.sonnet]
provider = "claude"
context_window = 200000

[models.flash]
provider = "google"
context_window = 1000000

[[routes]]
name = "chat"
models = ["tiny", "sonnet", "flash"]

[default]
route = "chat"
"#;

fn decide(body: serde_json::Value) -> (Config, ChatRequest, switchyard::core::decision::Decision) {
    let config = Config::parse("test.toml", CONFIG).unwrap();
    let request = ChatRequest::from_value(body).unwrap();
    let decision = crate::routing::decide(&config, &crate::routing::without_encoder(), &request).unwrap();
    (config, request, decision)
}

#[test]
fn models_that_cannot_serve_the_request_are_skipped_with_a_reason() {
    let (config, request, decision) = decide(json!({
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 200,
        "response_format": {"type": "json_object"},
    }));
    let planned = plan(&config, &decision, &request, |name| name == "GEMINI_API_KEY");
    assert!(matches!(planned[0], (ref m, Some(Skip::ContextWindow { window: 100, .. })) if m == "tiny"));
    assert_eq!(planned[1], ("sonnet".to_string(), Some(Skip::Unsupported("response_format"))));
    assert_eq!(planned[2], ("flash".to_string(), None));

    let planned = plan(&config, &decision, &request, |_| false);
    assert_eq!(planned[2], ("flash".to_string(), Some(Skip::MissingSecret("GEMINI_API_KEY".into()))));
}

#[test]
fn when_every_model_is_skipped_the_error_says_why() {
    let attempts = vec![
        Attempt::Skipped { model: "tiny".into(), reason: Skip::ContextWindow { needed: 500, window: 100 } },
        Attempt::Skipped { model: "big".into(), reason: Skip::ContextWindow { needed: 500, window: 400 } },
    ];
    let e = fallback::nothing_to_call("chat", &attempts);
    assert_eq!(e.kind, ErrorKind::ContextLengthExceeded);
    assert_eq!(e.status(), 400);
    assert_eq!(e.to_openai_json()["error"]["code"], "context_length_exceeded");
    assert!(e.message.contains("500") && e.message.contains("400"), "{}", e.message);

    let attempts =
        vec![Attempt::Skipped { model: "m".into(), reason: Skip::MissingSecret("KEY_NAME".into()) }];
    let e = fallback::nothing_to_call("chat", &attempts);
    assert_eq!(e.status(), 500);
    assert!(e.message.contains("KEY_NAME"));
    assert_eq!(fallback::skipped_header(&attempts).as_deref(), Some("m=missing_secret"));
}

fn policy() -> UpstreamPolicy {
    UpstreamPolicy {
        max_retries: 2,
        backoff_base_ms: 100,
        backoff_max_ms: 1000,
        max_retry_after_ms: 5000,
        ..Default::default()
    }
}

fn status(code: u16) -> RouterError {
    RouterError::new(ErrorKind::UpstreamStatus(code), "x")
}

#[test]
fn retryable_errors_are_retried_then_fall_back() {
    let p = policy();
    assert!(matches!(after_failure(&p, &status(503), 0, 0.0), Next::Retry { delay_ms: 50 }));
    assert!(matches!(after_failure(&p, &status(429), 1, 0.999), Next::Retry { delay_ms: 199 }));
    assert_eq!(after_failure(&p, &status(503), 2, 0.5), Next::Fallback, "retries are bounded");
    let timeout = RouterError::new(ErrorKind::UpstreamTimeout, "slow");
    assert!(matches!(after_failure(&p, &timeout, 0, 0.5), Next::Retry { .. }));
    let refused = RouterError::new(ErrorKind::UpstreamUnreachable, "refused");
    assert!(matches!(after_failure(&p, &refused, 0, 0.5), Next::Retry { .. }));
}

#[test]
fn garbled_answers_and_refused_keys_fall_back_without_retrying_and_invalid_requests_fail() {
    let p = policy();
    let garbled = RouterError::new(ErrorKind::UpstreamMalformed, "bad json");
    assert_eq!(after_failure(&p, &garbled, 0, 0.5), Next::Fallback);
    for code in [400, 413, 422] {
        assert_eq!(after_failure(&p, &status(code), 0, 0.5), Next::Fail, "{code}");
    }
    // A provider refusing Switchyard's key, or not knowing the model id, is that provider's fault:
    // the next model (another provider, another key) may answer. Not retried.
    for code in [401, 403, 404] {
        assert_eq!(after_failure(&p, &status(code), 0, 0.5), Next::Fallback, "{code}");
    }
    let bad_request = RouterError::invalid_request("bad tool call");
    assert_eq!(after_failure(&p, &bad_request, 0, 0.5), Next::Fail);
}

#[test]
fn retry_after_is_honoured_within_its_bound() {
    let p = policy();
    let mut e = status(429);
    e.retry_after_ms = Some(2000);
    assert_eq!(after_failure(&p, &e, 0, 0.5), Next::Retry { delay_ms: 2000 });
    e.retry_after_ms = Some(10);
    assert!(
        matches!(after_failure(&p, &e, 0, 0.0), Next::Retry { delay_ms: 50 }),
        "never sooner than the backoff"
    );
    e.retry_after_ms = Some(60_000);
    assert_eq!(after_failure(&p, &e, 0, 0.5), Next::Fallback, "a long wait goes to the next model instead");
}

#[test]
fn backoff_grows_exponentially_with_jitter_and_a_cap() {
    let p = policy();
    for retries in 0..8 {
        let cap = (100u64 << retries).min(1000);
        for jitter in [0.0, 0.3, 0.999] {
            let d = backoff_ms(&p, retries, jitter);
            assert!(d >= cap / 2 && d <= cap, "retry {retries} jitter {jitter}: {d}");
        }
    }
    assert_eq!(backoff_ms(&p, 30, 1.0), 1000);
}

#[test]
fn attempts_are_reported_in_order() {
    let attempts = vec![
        Attempt::Called { model: "small".into(), outcome: CallOutcome::Status(503) },
        Attempt::Skipped { model: "coder".into(), reason: Skip::ContextWindow { needed: 9, window: 1 } },
        Attempt::Called { model: "small".into(), outcome: CallOutcome::Timeout },
        Attempt::Called { model: "mini".into(), outcome: CallOutcome::Ok },
    ];
    assert_eq!(
        fallback::attempts_header(&attempts).as_deref(),
        Some("small=http_503, small=timeout, mini=ok")
    );
    assert_eq!(fallback::skipped_header(&attempts).as_deref(), Some("coder=context_window"));
}
