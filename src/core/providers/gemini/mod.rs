//! Google's Gemini API: `models/{model}:generateContent`, and `:streamGenerateContent?alt=sse`
//! when streaming, keyed by `x-goog-api-key`.
//!
//! Roles become `user`/`model`, the system prompt `systemInstruction`, tool calls
//! `functionCall` parts and tool results `functionResponse` parts (which Gemini matches by
//! function name, looked up from the assistant turn that made the call). JSON mode maps to
//! `responseMimeType` and `responseJsonSchema`. Gemini gives calls no ids of its own in older
//! models: `call_{n}` ids are made up so the client can answer them.

pub mod request;
pub mod response;
pub mod stream;

/// Gemini finish reasons that mean the model failed to produce an answer (a garbled or
/// unexpected tool call): an error, so that the next model is tried.
pub fn failed(reason: &str) -> bool {
    matches!(reason, "MALFORMED_FUNCTION_CALL" | "UNEXPECTED_TOOL_CALL")
}

/// OpenAI's finish reason for a Gemini `finishReason`.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY"
        | "LANGUAGE" => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// Gemini's usage; thinking tokens are billed as output.
pub fn usage_of(metadata: &serde_json::Value) -> crate::core::providers::Usage {
    let count = |name: &str| metadata.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0);
    crate::core::providers::Usage {
        prompt_tokens: count("promptTokenCount"),
        completion_tokens: count("candidatesTokenCount").saturating_add(count("thoughtsTokenCount")),
    }
}
