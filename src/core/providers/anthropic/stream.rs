//! Anthropic stream events → OpenAI chunks.
//!
//! `message_start` opens the answer (role chunk, input tokens), `content_block_start` of a
//! `tool_use` block opens a tool call, `text_delta`/`input_json_delta` become content and argument
//! deltas, `message_delta` carries the stop reason and output tokens, `message_stop` ends it.

use crate::core::error::RouterError;
use crate::core::providers::anthropic::{finish_reason, response::usage_of};
use crate::core::providers::{chunk, malformed, stream_error, StreamTranslator, Usage};
use crate::core::sse::SseEvent;
use serde_json::{json, Value};
use std::collections::HashMap;

#[derive(Debug)]
pub struct AnthropicStream {
    id: String,
    model: String,
    created: u64,
    /// Content block index → OpenAI tool call index.
    tool_index: HashMap<u64, usize>,
    usage: Option<Usage>,
    stopped: bool,
}

impl AnthropicStream {
    pub fn new(created: u64) -> Self {
        AnthropicStream {
            id: "msg".into(),
            model: String::new(),
            created,
            tool_index: HashMap::new(),
            usage: None,
            stopped: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        chunk(&self.id, self.created, &self.model, delta, finish)
    }
}

impl StreamTranslator for AnthropicStream {
    fn event(&mut self, event: &SseEvent) -> Result<Vec<Value>, RouterError> {
        let data: Value = serde_json::from_str(&event.data).map_err(|e| malformed("anthropic", e))?;
        let kind = data.get("type").and_then(Value::as_str).or(event.event.as_deref()).unwrap_or_default();
        match kind {
            "message_start" => {
                let message = data.get("message").cloned().unwrap_or(Value::Null);
                if let Some(id) = message.get("id").and_then(Value::as_str) {
                    self.id = id.to_string();
                }
                if let Some(model) = message.get("model").and_then(Value::as_str) {
                    self.model = model.to_string();
                }
                self.usage = message.get("usage").map(usage_of);
                Ok(vec![self.chunk(json!({"role": "assistant", "content": ""}), None)])
            }
            "content_block_start" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = data.get("content_block").cloned().unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let tool = self.tool_index.len();
                        self.tool_index.insert(index, tool);
                        let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                        let name = block.get("name").and_then(Value::as_str).unwrap_or_default();
                        let call = json!({"index": tool, "id": id, "type": "function", "function": {"name": name, "arguments": ""}});
                        Ok(vec![self.chunk(json!({"tool_calls": [call]}), None)])
                    }
                    Some("text") => match block.get("text").and_then(Value::as_str) {
                        Some(text) if !text.is_empty() => {
                            Ok(vec![self.chunk(json!({"content": text}), None)])
                        }
                        _ => Ok(Vec::new()),
                    },
                    _ => Ok(Vec::new()),
                }
            }
            "content_block_delta" => {
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = data.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.get("text").and_then(Value::as_str).unwrap_or_default();
                        Ok(vec![self.chunk(json!({"content": text}), None)])
                    }
                    Some("input_json_delta") => {
                        let Some(&tool) = self.tool_index.get(&index) else {
                            return Err(malformed(
                                "anthropic",
                                "input_json_delta for a block that is not a tool call",
                            ));
                        };
                        let partial = delta.get("partial_json").and_then(Value::as_str).unwrap_or_default();
                        if partial.is_empty() {
                            return Ok(Vec::new());
                        }
                        let call = json!({"index": tool, "function": {"arguments": partial}});
                        Ok(vec![self.chunk(json!({"tool_calls": [call]}), None)])
                    }
                    _ => Ok(Vec::new()), // thinking and signature deltas
                }
            }
            "message_delta" => {
                if let Some(usage) = data.get("usage") {
                    let output = usage.get("output_tokens").and_then(Value::as_u64);
                    let mut total = self.usage.unwrap_or_default();
                    if let Some(output) = output {
                        total.completion_tokens = output;
                    }
                    // Newer API versions repeat input counts here; the larger count wins.
                    total.prompt_tokens = total.prompt_tokens.max(usage_of(usage).prompt_tokens);
                    self.usage = Some(total);
                }
                match data.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str) {
                    Some(stop) => Ok(vec![self.chunk(json!({}), Some(finish_reason(stop)))]),
                    None => Ok(Vec::new()),
                }
            }
            "message_stop" => {
                self.stopped = true;
                Ok(Vec::new())
            }
            "error" => Err(stream_error("anthropic", &data)),
            _ => Ok(Vec::new()), // ping, content_block_stop, future event types
        }
    }

    fn complete(&self) -> bool {
        self.stopped
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}
