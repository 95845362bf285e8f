//! Gemini `GenerateContentResponse` → OpenAI `chat.completion`.

use crate::core::error::RouterError;
use crate::core::providers::gemini::{finish_reason, usage_of};
use crate::core::providers::{completion, malformed, tool_call, Completion};
use serde_json::Value;

pub fn parse(body: &str, model: &str, created: u64) -> Result<Completion, RouterError> {
    let response: Value = serde_json::from_str(body).map_err(|e| malformed("gemini", e))?;
    if !response.is_object() {
        return Err(malformed("gemini", "not a JSON object"));
    }
    let candidate = response.get("candidates").and_then(|c| c.get(0)).cloned().unwrap_or(Value::Null);
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for part in parts_of(&candidate) {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(call) = part.get("functionCall") {
            let (id, name, args) = call_fields(call, tool_calls.len());
            tool_calls.push(tool_call(&id, name, &args));
        }
    }
    if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str).filter(|r| super::failed(r)) {
        return Err(malformed("gemini", format!("the model finished with {reason}")));
    }
    let reason = match candidate.get("finishReason").and_then(Value::as_str) {
        Some(r) => finish_reason(r, !tool_calls.is_empty()),
        // No candidate at all: the prompt itself was blocked.
        None if response.get("promptFeedback").and_then(|f| f.get("blockReason")).is_some() => {
            "content_filter"
        }
        None if candidate.is_null() => return Err(malformed("gemini", "no candidates")),
        None => finish_reason("STOP", !tool_calls.is_empty()),
    };
    let usage = response.get("usageMetadata").map(usage_of);
    let id = response.get("responseId").and_then(Value::as_str).unwrap_or("gemini");
    let model = response.get("modelVersion").and_then(Value::as_str).unwrap_or(model);
    let text = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    let body = completion(id, created, model, text, tool_calls, reason, usage);
    Ok(Completion { body: body.to_string(), usage })
}

pub(crate) fn parts_of(candidate: &Value) -> impl Iterator<Item = &Value> {
    candidate.get("content").and_then(|c| c.get("parts")).and_then(Value::as_array).into_iter().flatten()
}

/// `(id, name, args)` of a `functionCall`; calls without an id get `call_{n}`.
pub(crate) fn call_fields(call: &Value, n: usize) -> (String, &str, Value) {
    let id = call.get("id").and_then(Value::as_str).map_or_else(|| format!("call_{n}"), str::to_string);
    let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
    let args = call.get("args").cloned().unwrap_or(Value::Object(Default::default()));
    (id, name, args)
}
