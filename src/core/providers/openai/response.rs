//! An OpenAI answer is passed on byte for byte; it is only read for its usage.

use crate::core::providers::{malformed, Completion, Usage};
use serde_json::Value;

pub fn parse(body: &str) -> Result<Completion, crate::core::error::RouterError> {
    let value: Value = serde_json::from_str(body).map_err(|e| malformed("the upstream", e))?;
    if !value.get("choices").is_some_and(Value::is_array) {
        return Err(malformed("the upstream", "no choices array"));
    }
    Ok(Completion { body: body.to_string(), usage: usage_of(&value) })
}

/// `usage` of a completion or chunk, when present.
pub fn usage_of(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|u| u.is_object())?;
    let count = |name: &str| usage.get(name).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage { prompt_tokens: count("prompt_tokens"), completion_tokens: count("completion_tokens") })
}
