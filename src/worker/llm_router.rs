//! Level 3a's model call in the Worker: the routing request goes to the configured model through
//! the same provider translations and fetch as any answer, bounded by `[llm_router] timeout_ms`.
//! The isolate remembers recent choices ([`State::llm_choices`]).

use crate::core::error::{ErrorKind, RouterError};
use crate::core::llm_router::ChoiceCache;
use crate::core::pipeline::LlmCaller;
use crate::core::providers::Completion;
use crate::core::request::ChatRequest;
use crate::worker::state::State;
use crate::worker::upstream;
use std::cell::RefCell;
use worker::Env;

pub struct UpstreamLlm<'a> {
    pub env: &'a Env,
    pub state: &'a State,
}

impl LlmCaller for UpstreamLlm<'_> {
    async fn complete(
        &self,
        model: &str,
        request: &ChatRequest,
        timeout_ms: u64,
    ) -> Result<Completion, String> {
        upstream::complete(self.state, self.env, request, model, timeout_ms).await.map_err(|error| {
            super::log_error(&error);
            reason(model, &error)
        })
    }

    fn remembered(&self) -> Option<&RefCell<ChoiceCache>> {
        Some(&self.state.llm_choices)
    }
}

/// The failure in words for the decision: its kind, not the upstream's message (which may name
/// hosts); the log has the whole error.
fn reason(model: &str, error: &RouterError) -> String {
    match error.kind {
        // A missing secret: the message names it (never its value).
        ErrorKind::Configuration => error.message.clone(),
        kind => format!("model {model:?} failed: {}", kind.outcome()),
    }
}
