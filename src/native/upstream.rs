//! One whole answer from a configured model, natively: the request built by
//! `core::providers`, sent with ureq under the model's timeout, the answer translated back, and
//! failures retried with backoff while they are worth retrying. Batch work (`switchyard
//! distill`) waits as long as a rate limit asks (up to [`MAX_WAIT_MS`]), where the Worker would
//! rather fall back to another model.

use crate::core::config::Config;
use crate::core::error::{parse_retry_after, ErrorKind, RouterError};
use crate::core::fallback::backoff_ms;
use crate::core::providers::{self, Completion, Target};
use crate::core::request::ChatRequest;
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

    fn call(&self, name: &str, request: &ChatRequest) -> Result<Completion, RouterError> {
        let config = self.config;
        let unknown =
            || RouterError::new(ErrorKind::Configuration, format!("no model {name:?} in the config"));
        let model = config.model(name).ok_or_else(unknown)?;
        let provider = config.provider(&model.provider).ok_or_else(unknown)?;
        if let Some(missing) = provider.secret_names().find(|n| secret(n).is_none()) {
            return Err(RouterError::new(
                ErrorKind::Configuration,
                format!("model {name:?} needs the environment variable {missing}"),
            ));
        }
        let api_key = provider.api_key.as_deref().and_then(secret);
        let target = Target {
            kind: provider.kind,
            base_url: &provider.base_url,
            api_key: api_key.as_deref(),
            model: &model.upstream,
            default_max_tokens: model.max_output_tokens,
        };
        let outgoing = providers::build_request(&target, request)?;
        let mut call = self
            .agent
            .post(&outgoing.url)
            .config()
            .timeout_global(Some(Duration::from_millis(model.timeout_ms)))
            .max_redirects(0)
            .build();
        for (header, value) in &outgoing.headers {
            call = call.header(*header, value);
        }
        for (header, secret_name) in &provider.headers {
            call = call.header(header, secret(secret_name).unwrap_or_default());
        }
        let mut response = call.send(outgoing.body.as_str()).map_err(|e| {
            let kind = match e {
                ureq::Error::Timeout(_) => ErrorKind::UpstreamTimeout,
                _ => ErrorKind::UpstreamUnreachable,
            };
            RouterError::new(kind, format!("model {name:?}: {e}"))
        })?;
        let status = response.status().as_u16();
        let header = |h: &str| response.headers().get(h).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after = parse_retry_after(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
            now_ms(),
        );
        let text = response.body_mut().with_config().limit(16 << 20).read_to_string().map_err(|e| {
            RouterError::new(
                ErrorKind::UpstreamUnreachable,
                format!("model {name:?}: reading the answer: {e}"),
            )
        })?;
        if !(200..300).contains(&status) {
            let mut error = RouterError::from_upstream(&model.provider, status, &text, &self.secret_values);
            error.retry_after_ms = retry_after;
            return Err(error);
        }
        providers::parse_completion(provider.kind, &text, &model.upstream, now_ms() / 1000)
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
