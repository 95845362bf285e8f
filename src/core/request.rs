//! The chat request as Switchyard sees it.
//!
//! A request is validated once, at the edge, into a [`ChatRequest`]: bad JSON, wrong types, empty
//! `messages` and unknown roles become a 400 naming the field (`error.param`), before any routing
//! or upstream work. The original JSON object is kept untouched next to the typed view, so every
//! field we do not interpret (`tools`, `response_format`, vendor extensions) reaches the upstream
//! exactly as the client sent it; only `model` is rewritten.

use crate::core::body_limits;
use crate::core::decide::AUTO;
use crate::core::error::{ErrorKind, RouterError};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

/// One message, reduced to what routing needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    /// The text of the message: its string content, or its text parts joined by newlines.
    pub text: String,
    /// Non-text parts (images, audio, files), counted for token estimates.
    pub media_parts: usize,
    /// Serialized `tool_calls`/`function_call` of an assistant message, counted as prompt text.
    pub tool_call_text: String,
}

#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The body as sent, forwarded upstream with `model` replaced.
    pub body: Map<String, Value>,
    /// `model` as sent; `"auto"` when absent.
    pub model: String,
    pub messages: Vec<Message>,
    pub stream: bool,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_output_tokens: Option<u64>,
    /// Serialized `tools`/`functions` definitions, which the upstream counts as prompt.
    pub tools_text: String,
}

#[derive(Deserialize)]
struct WireRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<WireMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    functions: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: Role,
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
    #[serde(default)]
    function_call: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Parts(Vec<Map<String, Value>>),
}

impl ChatRequest {
    /// Parses a request body, within the limits of [`body_limits`]. Errors are 400s naming the
    /// offending field or limit.
    pub fn parse(bytes: &[u8]) -> Result<ChatRequest, RouterError> {
        body_limits::check(bytes)?;
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| RouterError::invalid_request(format!("request body is not valid JSON: {e}")))?;
        Self::from_value(value)
    }

    /// The request in `value`. The typed view is read from the value in place: the body is held
    /// once, in `body`, not copied for reading.
    pub fn from_value(value: Value) -> Result<ChatRequest, RouterError> {
        let Value::Object(body) = value else {
            return Err(RouterError::invalid_request("request body must be a JSON object"));
        };
        let wire: WireRequest = serde_path_to_error::deserialize(&body).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let inner = inner.replace(
                "data did not match any variant of untagged enum WireContent",
                "expected a string or an array of content parts",
            );
            if path == "." {
                RouterError::invalid_request(format!("invalid request body: {inner}"))
            } else {
                RouterError::invalid_request(format!("invalid request body at {path}: {inner}"))
                    .with_param(path)
            }
        })?;
        if wire.messages.is_empty() {
            return Err(RouterError::invalid_request("messages must contain at least one message")
                .with_param("messages"));
        }
        let mut messages = Vec::with_capacity(wire.messages.len());
        for (i, m) in wire.messages.into_iter().enumerate() {
            messages.push(message_from_wire(i, m)?);
        }
        let model = match wire.model {
            Some(m) if !m.trim().is_empty() => m,
            Some(_) => {
                return Err(RouterError::invalid_request("model must not be empty").with_param("model"))
            }
            None => AUTO.to_string(),
        };
        let tools_text = [wire.tools, wire.functions]
            .into_iter()
            .flatten()
            .flatten()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        Ok(ChatRequest {
            body,
            model,
            messages,
            stream: wire.stream.unwrap_or(false),
            max_output_tokens: wire.max_completion_tokens.or(wire.max_tokens),
            tools_text,
        })
    }

    /// The latest user message and the one before it (texts, trimmed; messages without text,
    /// such as an image alone, are skipped).
    pub fn last_two_user_texts(&self) -> (Option<&str>, Option<&str>) {
        let mut texts = self
            .messages
            .iter()
            .rev()
            .filter(|m| m.role == Role::User)
            .map(|m| m.text.trim())
            .filter(|t| !t.is_empty());
        (texts.next(), texts.next())
    }

    /// [`Self::last_two_user_texts`] as routing reads them: each through its [`routing_window`].
    pub fn last_two_user_windows(&self) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
        let (latest, previous) = self.last_two_user_texts();
        (latest.map(routing_window), previous.map(routing_window))
    }

    /// Whether a streamed answer is to end with a usage chunk (`stream_options.include_usage`).
    pub fn include_usage(&self) -> bool {
        self.body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// The text of the most recent user message (what level-1 keyword rules look at).
    pub fn latest_user_text(&self) -> &str {
        self.messages.iter().rev().find(|m| m.role == Role::User).map_or("", |m| m.text.as_str())
    }

    /// The body to send upstream, as JSON text: the client's body with `model` set to
    /// `upstream_model` and each of `overrides` set. It is written from references to the
    /// client's values, so a 4 MiB body is not copied on its way out.
    pub fn upstream_json(
        &self,
        upstream_model: &str,
        overrides: &[(&str, Value)],
    ) -> Result<String, RouterError> {
        let model = Value::String(upstream_model.to_string());
        let mut fields: BTreeMap<&str, &Value> = self.body.iter().map(|(k, v)| (k.as_str(), v)).collect();
        fields.insert("model", &model);
        for (name, value) in overrides {
            fields.insert(name, value);
        }
        serde_json::to_string(&fields).map_err(|e| {
            RouterError::new(ErrorKind::Internal, format!("could not write the upstream body: {e}"))
        })
    }
}

fn message_from_wire(index: usize, m: WireMessage) -> Result<Message, RouterError> {
    let param = |field: &str| format!("messages[{index}].{field}");
    let mut text = String::new();
    let mut media_parts = 0;
    match m.content {
        Some(WireContent::Text(s)) => text = s,
        Some(WireContent::Parts(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let part_param = format!("messages[{index}].content[{j}]");
                let Some(kind) = part.get("type").and_then(Value::as_str) else {
                    return Err(RouterError::invalid_request(format!("{part_param}.type must be a string"))
                        .with_param(format!("{part_param}.type")));
                };
                if kind == "text" {
                    let Some(t) = part.get("text").and_then(Value::as_str) else {
                        return Err(RouterError::invalid_request(format!(
                            "{part_param}.text must be a string"
                        ))
                        .with_param(format!("{part_param}.text")));
                    };
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(t);
                } else {
                    media_parts += 1;
                }
            }
        }
        None => {
            let may_omit = m.role == Role::Assistant && (m.tool_calls.is_some() || m.function_call.is_some());
            if !may_omit {
                return Err(RouterError::invalid_request(format!(
                    "{} is required for a {:?} message",
                    param("content"),
                    m.role
                ))
                .with_param(param("content")));
            }
        }
    }
    let tool_call_text = match (&m.tool_calls, &m.function_call) {
        (None, None) => String::new(),
        (calls, call) => {
            let mut s = calls.as_ref().map(|c| Value::Array(c.clone()).to_string()).unwrap_or_default();
            if let Some(call) = call {
                s.push_str(&call.to_string());
            }
            s
        }
    };
    Ok(Message { role: m.role, text, media_parts, tool_call_text })
}

/// `text` cut to its first `max` characters (never inside one).
pub fn clip_chars(text: &str, max: usize) -> &str {
    text.char_indices().nth(max).map_or(text, |(at, _)| &text[..at])
}

/// Routing reads at most this many characters of a message: see [`routing_window`].
pub const ROUTING_WINDOW_CHARS: usize = 8192;

/// What routing reads of a message's text: all of it up to [`ROUTING_WINDOW_CHARS`], else its
/// first and last halves of that, joined by a line break. Every routing step (keyword rules,
/// tokenizing, the turn's judgement) costs time in the length of what it reads, so a 4 MB prompt
/// must cost what an 8 KB one does; what a prompt is about is in its opening and closing lines
/// (the question after a pasted file, the instruction before one).
pub fn routing_window(text: &str) -> Cow<'_, str> {
    let half = ROUTING_WINDOW_CHARS / 2;
    let Some((head_end, _)) = text.char_indices().nth(ROUTING_WINDOW_CHARS) else {
        return text.into();
    };
    let head = &text[..text.char_indices().nth(half).map_or(head_end, |(at, _)| at)];
    let tail_start = text.char_indices().rev().nth(half - 1).map_or(0, |(at, _)| at);
    format!("{head}\n{}", &text[tail_start..]).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routing_window_is_the_whole_text_or_its_two_ends() {
        assert_eq!(routing_window("short"), "short");
        let exact = "é".repeat(ROUTING_WINDOW_CHARS);
        assert_eq!(routing_window(&exact), exact.as_str());
        let long = format!("{}{}{}", "a".repeat(5000), "é".repeat(10_000), "z".repeat(5000));
        let window = routing_window(&long);
        let half = ROUTING_WINDOW_CHARS / 2;
        assert_eq!(window.chars().count(), ROUTING_WINDOW_CHARS + 1);
        assert_eq!(window, format!("{}\n{}", "a".repeat(half), "z".repeat(half)));
    }
}
