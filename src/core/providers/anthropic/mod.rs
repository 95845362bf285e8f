//! Anthropic's Messages API (`POST /v1/messages`, `anthropic-version: 2023-06-01`).
//!
//! The system prompt moves out of the messages, tool calls become `tool_use` blocks and tool
//! results `tool_result` blocks in a user turn, and consecutive turns of one role are merged
//! (tool results of parallel calls must share one user turn). Anthropic has no JSON mode: a
//! request with `response_format` JSON skips Anthropic models (see `providers::unsupported`).

pub mod request;
pub mod response;
pub mod stream;

/// The API version every request names.
pub const API_VERSION: &str = "2023-06-01";

/// OpenAI's finish reason for an Anthropic `stop_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop", // end_turn, stop_sequence, pause_turn
    }
}
