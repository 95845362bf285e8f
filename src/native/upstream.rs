//! One whole answer from a configured model, natively: the steps of a
//! `core::upstream_call::UpstreamCall` (the same call protocol as the Worker's) carried out with
//! ureq, and failures retried with backoff while they are worth retrying. Batch work (`switchyard
//! distill`) waits as long as a rate limit asks (up to [`MAX_WAIT_MS`]), where the Worker would
//! rather fall back to another model.

use crate::core::config::Config;
use crate::core::error::{ErrorKind, RouterError};
use crate::core::fallback::backoff_ms;
use crate::core::providers::Completion;
use crate::core::request::ChatRequest;
use crate::core::upstream_call::{CallError, Head, Input, Step, UpstreamCall};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tries of one request, the first included.
pub const MAX_TRIES: u32 = 6;

/// Longest wait a rate limit may ask for before the request is given up.
pub const MAX_WAIT_MS: u64 = 300_000;

/// Calls the models of a config; secrets are read from environment variables of the same names.
pub struct NativeUpstream<'c> {
    config: &'c Config,
    agent: ureq::Agent,
    secret_values: Vec<String>,
}

impl<'c> NativeUpstream<'c> {
    pub fn new(config: &'c Config) -> NativeUpstream<'c> {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let secret_values = config.secret_names().iter().filter_map(|name| secret(name)).collect();
        NativeUpstream { config, agent, secret_values }
    }

    /// `request` (not streamed) answered by `model`, retried on retryable failures. Errors are
    /// redacted of every secret value.
    pub fn complete(&self, model: &str, request: &ChatRequest) -> Result<Completion, RouterError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let error = match self.call(model, request) {
                Ok(completion) => return Ok(completion),
                Err(error) => error.redacted(self.secret_values.iter().map(String::as_str)),
            };
            if !error.retryable() || tries >= MAX_TRIES {
                return Err(error);
            }
            let backoff = backoff_ms(&self.config.upstream, tries - 1, jitter());
            let wait = error.retry_after_ms.unwrap_or(0).max(backoff);
            if wait > MAX_WAIT_MS {
                return Err(error);
            }
            std::thread::sleep(Duration::from_millis(wait));
        }
    }

    /// One call of model `name`: its [`UpstreamCall`]'s steps carried out with ureq.
    fn call(&self, name: &str, request: &ChatRequest) -> Result<Completion, RouterError> {
        let timeout_ms = self.config.model(name).map_or(self.config.upstream.timeout_ms, |m| m.timeout_ms);
        let (mut call, outgoing) = UpstreamCall::prepare(
            self.config,
            name,
            request,
            timeout_ms,
            secret,
            self.secret_values.clone(),
            now_ms(),
        )
        .map_err(CallError::into_error)?;
        let Step::AwaitHead { until_ms } = call.start() else {
            return Err(RouterError::new(ErrorKind::Internal, "a call that does not wait for its head"));
        };
        let mut sending = self
            .agent
            .post(&outgoing.url)
            .config()
            .timeout_recv_response(Some(Duration::from_millis(until_ms.saturating_sub(now_ms()).max(1))))
            .timeout_recv_body(Some(Duration::from_millis(self.config.upstream.idle_timeout_ms)))
            .max_redirects(0)
            .build();
        for (header, value) in &outgoing.headers {
            sending = sending.header(header, value);
        }
        let mut response = match sending.send(outgoing.body.as_str()) {
            Ok(response) => response,
            Err(e) => return answer(call.on(input_of(e), now_ms())),
        };
        let header = |h: &str| response.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
        let head = Head {
            status: response.status().as_u16(),
            retry_after_ms: header("retry-after-ms"),
            retry_after: header("retry-after"),
        };
        let max_bytes = match call.on(Input::Head(head), now_ms()) {
            Step::ReadText { max_bytes, .. } => max_bytes,
            step => return answer(step),
        };
        let text = match response.body_mut().with_config().limit(max_bytes as u64).read_to_string() {
            Ok(text) => Input::Text(text),
            Err(e) => input_of(e),
        };
        answer(call.on(text, now_ms()))
    }
}

/// A call's last step: its answer or why it failed.
fn answer(step: Step) -> Result<Completion, RouterError> {
    match step {
        Step::Answered(completion) => Ok(completion),
        Step::Failed(error) => Err(error),
        _ => Err(RouterError::new(ErrorKind::Internal, "a whole answer was asked for, and a stream came")),
    }
}

/// What a ureq error means to the call.
fn input_of(error: ureq::Error) -> Input {
    match error {
        ureq::Error::Timeout(_) => Input::TimedOut,
        ureq::Error::BodyExceedsLimit(_) => Input::TooLarge,
        e => Input::Broken(e.to_string()),
    }
}

fn secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A number in [0, 1) for backoff jitter: std's per-process random hash keys, no extra crate.
fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}
