//! Which models to call for a request, in which order, and what to do after each failure.
//!
//! A route lists its models best-first; the ones that cannot serve the request are skipped
//! without being called (too small a context window, an unsupported feature, a missing key),
//! and each skip is reported. After a failed call, the error's type alone decides: retry the
//! same model after a jittered exponential backoff (bounded, and never sooner than the
//! upstream's `retry-after`), fall back to the next model, or give up and return the error.
//! [`crate::core::attempts`] runs these rules as a machine the Worker drives; the decisions
//! are here, where they are tested.

use crate::core::config::{Config, UpstreamPolicy};
use crate::core::decision::Decision;
use crate::core::error::{CallOutcome, ErrorKind, RouterError};
use crate::core::providers;
use crate::core::request::ChatRequest;
use std::fmt;

/// Why a model was not called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Prompt tokens plus `max_tokens` exceed the model's context window.
    ContextWindow { needed: u64, window: u32 },
    /// The model's API cannot express a feature the request uses (found before building it).
    Unsupported(&'static str),
    /// Building the request for the model's API failed: something in it that API cannot take.
    Untranslatable,
    /// The route names a model the config does not have.
    UnknownModel,
    /// The provider's key secret is not set.
    MissingSecret(String),
}

impl Skip {
    pub fn code(&self) -> &'static str {
        match self {
            Skip::ContextWindow { .. } => "context_window",
            Skip::Unsupported(_) | Skip::Untranslatable | Skip::UnknownModel => "unsupported",
            Skip::MissingSecret(_) => "missing_secret",
        }
    }
}

/// One call, or one skip, in the order they happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Called { model: String, outcome: CallOutcome },
    Skipped { model: String, reason: Skip },
}

/// The models to consider for a request, each with the reason it must be skipped, if any.
/// `has_secret` tells whether a secret name is set in the environment.
pub fn plan(
    config: &Config,
    decision: &Decision,
    request: &ChatRequest,
    has_secret: impl Fn(&str) -> bool,
) -> Vec<(String, Option<Skip>)> {
    let needed = decision.signals.prompt_tokens.saturating_add(request.max_output_tokens.unwrap_or(0));
    decision
        .candidates
        .iter()
        .map(|name| {
            let Some(model) = config.model(name) else {
                return (name.clone(), Some(Skip::UnknownModel));
            };
            let provider = config.provider(&model.provider);
            let skip = if needed > u64::from(model.context_window) {
                Some(Skip::ContextWindow { needed, window: model.context_window })
            } else if let Some(feature) = provider.and_then(|p| providers::unsupported(p.kind, request)) {
                Some(Skip::Unsupported(feature))
            } else {
                provider
                    .and_then(|p| p.secret_names().find(|k| !has_secret(k)))
                    .map(|k| Skip::MissingSecret(k.to_string()))
            };
            (name.clone(), skip)
        })
        .collect()
}

/// What to do after a failed call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// Call the same model again after this many milliseconds.
    Retry { delay_ms: u64 },
    /// Move on to the next model.
    Fallback,
    /// Return this error to the client.
    Fail,
}

/// Decides after the `retries_done`-th retry of a model failed with `error`. `jitter` is a random
/// number in [0, 1).
pub fn after_failure(policy: &UpstreamPolicy, error: &RouterError, retries_done: u32, jitter: f64) -> Next {
    if !error.falls_back() {
        return Next::Fail;
    }
    if !error.retryable() || retries_done >= policy.max_retries {
        return Next::Fallback;
    }
    let backoff = backoff_ms(policy, retries_done, jitter);
    match error.retry_after_ms {
        Some(wait) if wait > policy.max_retry_after_ms => Next::Fallback,
        Some(wait) => Next::Retry { delay_ms: wait.max(backoff) },
        None => Next::Retry { delay_ms: backoff },
    }
}

/// "Equal jitter": half the capped exponential delay, plus a random share of the other half, so
/// that retries from many isolates spread out but never come back at once.
pub fn backoff_ms(policy: &UpstreamPolicy, retries_done: u32, jitter: f64) -> u64 {
    let exponential = policy.backoff_base_ms.saturating_mul(1u64 << retries_done.min(20));
    let cap = exponential.min(policy.backoff_max_ms);
    let jitter = jitter.clamp(0.0, 1.0);
    cap / 2 + ((cap - cap / 2) as f64 * jitter) as u64
}

/// The error when no model was left to answer: every one was skipped (or none could be called).
pub fn nothing_to_call(route: &str, attempts: &[Attempt]) -> RouterError {
    let skips: Vec<&Skip> = attempts
        .iter()
        .filter_map(|a| match a {
            Attempt::Skipped { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    if let Some(Skip::MissingSecret(name)) = skips.iter().find(|s| matches!(s, Skip::MissingSecret(_))) {
        if skips.iter().all(|s| matches!(s, Skip::MissingSecret(_))) {
            return RouterError::new(
                ErrorKind::Configuration,
                format!("every model of route {route:?} needs a secret that is not set, such as {name}; set it with `wrangler secret put {name}` (or in .dev.vars locally)"),
            );
        }
    }
    if let Some(Skip::ContextWindow { needed, .. }) =
        skips.iter().find(|s| matches!(s, Skip::ContextWindow { .. }))
    {
        let largest = skips
            .iter()
            .filter_map(|s| match s {
                Skip::ContextWindow { window, .. } => Some(*window),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        return RouterError::new(
            ErrorKind::ContextLengthExceeded,
            format!("the prompt plus max_tokens needs about {needed} tokens; the largest context window among route {route:?}'s usable models is {largest}"),
        )
        .with_param("messages");
    }
    let features: Vec<&str> = skips
        .iter()
        .filter_map(|s| match s {
            Skip::Unsupported(f) => Some(*f),
            Skip::Untranslatable => Some("request"),
            Skip::UnknownModel => Some("unknown_model"),
            _ => None,
        })
        .collect();
    RouterError::invalid_request(format!(
        "no model of route {route:?} can serve this request (unsupported: {})",
        features.join(", ")
    ))
}

/// `x-switchyard-attempts`: every call in order, `model=outcome`.
pub fn attempts_header(attempts: &[Attempt]) -> Option<String> {
    let calls: Vec<String> = attempts
        .iter()
        .filter_map(|a| match a {
            Attempt::Called { model, outcome } => Some(format!("{model}={outcome}")),
            _ => None,
        })
        .collect();
    (!calls.is_empty()).then(|| calls.join(", "))
}

/// `x-switchyard-skipped`: every model not called, `model=reason`.
pub fn skipped_header(attempts: &[Attempt]) -> Option<String> {
    let skips: Vec<String> = attempts
        .iter()
        .filter_map(|a| match a {
            Attempt::Skipped { model, reason } => Some(format!("{model}={}", reason.code())),
            _ => None,
        })
        .collect();
    (!skips.is_empty()).then(|| skips.join(", "))
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::ContextWindow { needed, window } => write!(f, "needs {needed} tokens, window {window}"),
            Skip::Unsupported(feature) => write!(f, "unsupported: {feature}"),
            Skip::Untranslatable => f.write_str("unsupported: request"),
            Skip::UnknownModel => f.write_str("unsupported: unknown_model"),
            Skip::MissingSecret(name) => write!(f, "secret {name} not set"),
        }
    }
}
