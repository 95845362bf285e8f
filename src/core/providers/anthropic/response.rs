//! Anthropic message → OpenAI `chat.completion`.

use crate::core::error::RouterError;
use crate::core::providers::anthropic::finish_reason;
use crate::core::providers::{completion, malformed, tool_call, Completion, Usage};
use serde_json::Value;

pub fn parse(body: &str, created: u64) -> Result<Completion, RouterError> {
    let message: Value = serde_json::from_str(body).map_err(|e| malformed("anthropic", e))?;
    let content = message
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("anthropic", "no content array"))?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => {
                let id = block.get("id").and_then(Value::as_str).unwrap_or_default();
                let name = block.get("name").and_then(Value::as_str).unwrap_or_default();
                let input = block.get("input").cloned().unwrap_or(Value::Object(Default::default()));
                tool_calls.push(tool_call(id, name, &input));
            }
            _ => {} // thinking and other block types have no OpenAI counterpart
        }
    }
    let usage = message.get("usage").map(usage_of);
    let stop = message.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn");
    let id = message.get("id").and_then(Value::as_str).unwrap_or("msg");
    let model = message.get("model").and_then(Value::as_str).unwrap_or_default();
    let text = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    let body = completion(id, created, model, text, tool_calls, finish_reason(stop), usage);
    Ok(Completion { body: body.to_string(), usage })
}

/// Anthropic's usage; cached input tokens are input tokens too.
pub fn usage_of(usage: &Value) -> Usage {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        prompt_tokens: count("input_tokens")
            .saturating_add(count("cache_creation_input_tokens"))
            .saturating_add(count("cache_read_input_tokens")),
        completion_tokens: count("output_tokens"),
    }
}
