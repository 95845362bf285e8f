//! OpenAI chunks pass through as they are; the usage-only chunk (asked for by the router) is
//! held back, since the relay emits its own when the client asked for usage.

use crate::core::error::RouterError;
use crate::core::providers::openai::response::usage_of;
use crate::core::providers::{malformed, stream_error, StreamTranslator, Usage};
use crate::core::sse::SseEvent;
use serde_json::Value;

#[derive(Debug, Default)]
pub struct OpenAiStream {
    done: bool,
    finished: bool,
    usage: Option<Usage>,
}

impl StreamTranslator for OpenAiStream {
    fn event(&mut self, event: &SseEvent) -> Result<Vec<Value>, RouterError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Vec::new());
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| malformed("the upstream", e))?;
        if chunk.get("error").is_some() || event.event.as_deref() == Some("error") {
            return Err(stream_error("the upstream", &chunk));
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        if let Some(usage) = usage_of(&chunk) {
            self.usage = Some(usage);
        }
        let Some(choices) = choices else {
            return Err(malformed("the upstream", "a stream chunk without choices"));
        };
        if choices.iter().any(|c| c.get("finish_reason").is_some_and(|f| !f.is_null())) {
            self.finished = true;
        }
        if choices.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![chunk])
    }

    fn complete(&self) -> bool {
        self.done || self.finished
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}
