//! Gemini SSE events (each a whole `GenerateContentResponse` holding the next parts) → OpenAI
//! chunks. A `functionCall` arrives whole, so it becomes one tool-call delta with all its
//! arguments; the last event carries `finishReason` and the usage.

use crate::core::error::RouterError;
use crate::core::providers::gemini::response::{call_fields, parts_of};
use crate::core::providers::gemini::{finish_reason, usage_of};
use crate::core::providers::{chunk, malformed, stream_error, StreamTranslator, Usage};
use crate::core::sse::SseEvent;
use serde_json::{json, Value};

#[derive(Debug)]
pub struct GeminiStream {
    id: String,
    model: String,
    created: u64,
    started: bool,
    tool_calls: usize,
    usage: Option<Usage>,
    finished: bool,
}

impl GeminiStream {
    pub fn new(model: &str, created: u64) -> Self {
        GeminiStream {
            id: "gemini".into(),
            model: model.to_string(),
            created,
            started: false,
            tool_calls: 0,
            usage: None,
            finished: false,
        }
    }
}

impl StreamTranslator for GeminiStream {
    fn event(&mut self, event: &SseEvent) -> Result<Vec<Value>, RouterError> {
        let response: Value = serde_json::from_str(&event.data).map_err(|e| malformed("gemini", e))?;
        if response.get("error").is_some() {
            return Err(stream_error("gemini", &response));
        }
        if !response.is_object() {
            return Err(malformed("gemini", "a stream event that is not a JSON object"));
        }
        if let Some(id) = response.get("responseId").and_then(Value::as_str) {
            self.id = id.to_string();
        }
        if let Some(model) = response.get("modelVersion").and_then(Value::as_str) {
            self.model = model.to_string();
        }
        if let Some(metadata) = response.get("usageMetadata") {
            self.usage = Some(usage_of(metadata));
        }
        let mut chunks = Vec::new();
        if !self.started {
            self.started = true;
            chunks.push(chunk(
                &self.id,
                self.created,
                &self.model,
                json!({"role": "assistant", "content": ""}),
                None,
            ));
        }
        let candidate = response.get("candidates").and_then(|c| c.get(0)).cloned().unwrap_or(Value::Null);
        for part in parts_of(&candidate) {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                if !text.is_empty() {
                    chunks.push(chunk(&self.id, self.created, &self.model, json!({"content": text}), None));
                }
            }
            if let Some(call) = part.get("functionCall") {
                let (id, name, args) = call_fields(call, self.tool_calls);
                let delta = json!({"tool_calls": [{
                    "index": self.tool_calls,
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": args.to_string()},
                }]});
                self.tool_calls += 1;
                chunks.push(chunk(&self.id, self.created, &self.model, delta, None));
            }
        }
        if let Some(reason) =
            candidate.get("finishReason").and_then(Value::as_str).filter(|r| super::failed(r))
        {
            return Err(malformed("gemini", format!("the model finished with {reason}")));
        }
        let reason = candidate
            .get("finishReason")
            .and_then(Value::as_str)
            .map(|r| finish_reason(r, self.tool_calls > 0));
        let blocked = response.get("promptFeedback").and_then(|f| f.get("blockReason")).is_some();
        if let Some(reason) = reason.or(blocked.then_some("content_filter")) {
            self.finished = true;
            chunks.push(chunk(&self.id, self.created, &self.model, json!({}), Some(reason)));
        }
        Ok(chunks)
    }

    fn complete(&self) -> bool {
        self.finished
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}
