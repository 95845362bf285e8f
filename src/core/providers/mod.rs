//! Upstream APIs as pure transforms: an OpenAI chat request in, the upstream's own HTTP request
//! out; the upstream's answer (whole, or one SSE event at a time) in, OpenAI's answer out.
//!
//! Clients only ever speak OpenAI Chat Completions; each provider folder (`openai`, `anthropic`,
//! `gemini`) holds the three translations for one upstream API (`request`, `response`, `stream`).
//! Nothing here does IO, so every translation is tested natively against recorded wire samples;
//! the Worker only sends what [`build_request`] returns and feeds back what arrives.

pub mod anthropic;
pub mod gemini;
pub mod openai;

use crate::core::config::ProviderKind;
use crate::core::error::{ErrorKind, RouterError};
use crate::core::request::ChatRequest;
use crate::core::sse::SseEvent;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// Where and how to call one model.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub kind: ProviderKind,
    /// The provider's `base_url`, without a trailing slash.
    pub base_url: &'a str,
    /// The upstream key's value, when the provider has one.
    pub api_key: Option<&'a str>,
    /// The model id the upstream knows.
    pub model: &'a str,
    /// `max_tokens` for upstreams that require one, when the client sent none.
    pub default_max_tokens: u32,
}

/// An HTTP request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Token counts the upstream reported for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    pub fn to_openai_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens.saturating_add(self.completion_tokens),
        })
    }
}

/// A whole (non-streamed) answer in OpenAI form.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The `chat.completion` JSON text sent to the client.
    pub body: String,
    pub usage: Option<Usage>,
}

/// Translates one upstream's event stream into OpenAI `chat.completion.chunk` objects.
pub trait StreamTranslator {
    /// One upstream event in, zero or more chunks out. An `Err` is an error the upstream
    /// reported inside the stream, or an event that is not its API's.
    fn event(&mut self, event: &SseEvent) -> Result<Vec<Value>, RouterError>;
    /// Whether the upstream said the answer is complete (a finish reason or its end event).
    fn complete(&self) -> bool;
    /// Usage reported so far.
    fn usage(&self) -> Option<Usage>;
}

/// Why a model cannot serve this request at all, so it is skipped rather than called.
pub fn unsupported(kind: ProviderKind, request: &ChatRequest) -> Option<&'static str> {
    let body = &request.body;
    if kind == ProviderKind::Openai {
        return None;
    }
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Some("n_above_1");
    }
    let format = body.get("response_format").and_then(|f| f.get("type")).and_then(Value::as_str);
    if kind == ProviderKind::Anthropic && matches!(format, Some("json_object" | "json_schema")) {
        return Some("response_format");
    }
    if request.messages.iter().any(|m| m.role == crate::core::request::Role::Function)
        || body.contains_key("functions")
    {
        return Some("legacy_functions");
    }
    None
}

/// The upstream request for `target`.
pub fn build_request(target: &Target, request: &ChatRequest) -> Result<UpstreamRequest, RouterError> {
    match target.kind {
        ProviderKind::Openai => openai::request::build(target, request),
        ProviderKind::Anthropic => anthropic::request::build(target, request),
        ProviderKind::Gemini => gemini::request::build(target, request),
    }
}

/// A successful non-streamed answer, translated. `created` is the Unix time in seconds.
pub fn parse_completion(
    kind: ProviderKind,
    body: &str,
    model: &str,
    created: u64,
) -> Result<Completion, RouterError> {
    match kind {
        ProviderKind::Openai => openai::response::parse(body),
        ProviderKind::Anthropic => anthropic::response::parse(body, created),
        ProviderKind::Gemini => gemini::response::parse(body, model, created),
    }
}

/// A translator for one streamed answer.
pub fn stream_translator(kind: ProviderKind, model: &str, created: u64) -> Box<dyn StreamTranslator> {
    match kind {
        ProviderKind::Openai => Box::new(openai::stream::OpenAiStream::default()),
        ProviderKind::Anthropic => Box::new(anthropic::stream::AnthropicStream::new(created)),
        ProviderKind::Gemini => Box::new(gemini::stream::GeminiStream::new(model, created)),
    }
}

/// An answer constrained to a JSON schema: what to ask for, named for each API's way of asking.
pub struct ConstrainedAnswer<'a> {
    /// The schema's name (OpenAI `json_schema.name`).
    pub schema_name: &'a str,
    /// The tool an Anthropic model is made to call, since that API has no JSON mode.
    pub tool_name: &'a str,
    pub tool_description: &'a str,
    /// A JSON schema of an object, strict (`additionalProperties: false`, every property required).
    pub schema: Value,
}

/// Adds to `body` (a request in OpenAI form) the fields that constrain a model of `kind` to
/// answer `answer.schema`:
/// - OpenAI-compatible: `response_format` with a strict `json_schema`;
/// - Gemini: the same `response_format`, which the Gemini translation sends as
///   `generationConfig.responseMimeType = "application/json"` with the schema;
/// - Anthropic: a tool whose input schema is the object, forced with `tool_choice`.
///
/// The LLM router and the cascade's raters both ask this way.
pub fn constrain_answer(body: &mut Value, kind: ProviderKind, answer: ConstrainedAnswer) {
    let fields = match kind {
        ProviderKind::Openai | ProviderKind::Gemini => json!({
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": answer.schema_name, "strict": true, "schema": answer.schema},
            },
        }),
        ProviderKind::Anthropic => json!({
            "tools": [{
                "type": "function",
                "function": {
                    "name": answer.tool_name,
                    "description": answer.tool_description,
                    "parameters": answer.schema,
                },
            }],
            "tool_choice": {"type": "function", "function": {"name": answer.tool_name}},
        }),
    };
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
}

// ---- helpers shared by the translations ----

/// The 400 for a request field a provider cannot translate.
pub(crate) fn bad_field(param: impl Into<String>, message: impl Into<String>) -> RouterError {
    RouterError::invalid_request(message).with_param(param)
}

/// A 2xx answer that is not what the upstream's API returns.
pub(crate) fn malformed(provider: &str, detail: impl std::fmt::Display) -> RouterError {
    RouterError::new(
        ErrorKind::UpstreamMalformed,
        format!("{provider} answered with an unreadable body: {detail}"),
    )
}

/// An error event inside an upstream stream, kept with the upstream's own type and message, and
/// typed by the status it stands for (Anthropic's `overloaded_error` is a 503, Gemini's and
/// OpenAI's carry a numeric `code`), so that retries and fallbacks treat it like the same error
/// given as an HTTP status. Unknown errors count as a broken answer.
pub(crate) fn stream_error(provider: &str, error: &Value) -> RouterError {
    let inner = error.get("error").unwrap_or(error);
    let message = inner.get("message").and_then(Value::as_str).unwrap_or("unknown error");
    let error_type = inner.get("type").and_then(Value::as_str).filter(|t| !t.is_empty() && t.len() < 64);
    let status =
        inner.get("code").and_then(Value::as_u64).filter(|c| (400..600).contains(c)).or(match error_type {
            Some("overloaded_error") => Some(503),
            Some("rate_limit_error") => Some(429),
            Some("api_error" | "server_error") => Some(500),
            Some("timeout_error") => Some(504),
            Some("invalid_request_error") => Some(400),
            Some("authentication_error") => Some(401),
            Some("permission_error") => Some(403),
            Some("not_found_error") => Some(404),
            _ => None,
        });
    let kind = status.map_or(ErrorKind::UpstreamMalformed, |s| ErrorKind::UpstreamStatus(s as u16));
    let mut e = RouterError::new(
        kind,
        // Cut where it is redacted (`RouterError::redacted`), never before.
        format!("{provider} reported an error mid-stream: {message}"),
    )
    .with_code("upstream_stream_error");
    e.error_type = error_type.map(str::to_string);
    e
}

/// The text of a message's `content`: a string, or its text parts joined.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// An `image_url` part's URL split into media type and base64 data when it is a `data:` URL.
pub(crate) enum Image<'a> {
    Inline { media_type: &'a str, data: &'a str },
    Url(&'a str),
}

pub(crate) fn image_of<'a>(part: &'a Value, param: &str) -> Result<Image<'a>, RouterError> {
    let url =
        part.get("image_url").and_then(|i| i.get("url").or(Some(i))).and_then(Value::as_str).ok_or_else(
            || bad_field(format!("{param}.image_url.url"), format!("{param}.image_url.url must be a string")),
        )?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| {
            bad_field(format!("{param}.image_url.url"), "a data: URL needs a comma before its data")
        })?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            bad_field(format!("{param}.image_url.url"), "only base64 data: URLs can be sent to this provider")
        })?;
        return Ok(Image::Inline { media_type, data });
    }
    Ok(Image::Url(url))
}

/// A tool call's `function.arguments` (a JSON text) as a JSON object.
pub(crate) fn tool_arguments(call: &Value, param: &str) -> Result<Value, RouterError> {
    let arguments = call.get("function").and_then(|f| f.get("arguments"));
    match arguments {
        None | Some(Value::Null) => Ok(json!({})),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(bad_field(
                format!("{param}.function.arguments"),
                format!("{param}.function.arguments must be a JSON object encoded as a string"),
            )),
        },
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => {
            Err(bad_field(format!("{param}.function.arguments"), "tool call arguments must be a JSON object"))
        }
    }
}

/// One `tools[]` entry of type function.
pub(crate) struct FunctionTool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
}

/// The `tools[]` entries, each a function.
pub(crate) fn function_tools(body: &Map<String, Value>) -> Result<Vec<FunctionTool>, RouterError> {
    let Some(tools) = body.get("tools") else { return Ok(Vec::new()) };
    let tools = tools.as_array().ok_or_else(|| bad_field("tools", "tools must be an array"))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let function = tool
            .get("function")
            .filter(|_| tool.get("type").and_then(Value::as_str).unwrap_or("function") == "function")
            .ok_or_else(|| bad_field(format!("tools[{i}]"), format!("tools[{i}] must be a function tool")))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_field(format!("tools[{i}].function.name"), "a tool needs a name"))?;
        let description = function.get("description").and_then(Value::as_str).map(str::to_string);
        out.push(FunctionTool {
            name: name.to_string(),
            description,
            parameters: function.get("parameters").cloned(),
        });
    }
    Ok(out)
}

/// The client's `tool_choice`, normalised.
pub(crate) enum ToolChoice {
    Auto,
    None,
    Required,
    Function(String),
}

pub(crate) fn tool_choice(body: &Map<String, Value>) -> Result<Option<ToolChoice>, RouterError> {
    match body.get("tool_choice") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => Err(bad_field("tool_choice", format!("unknown tool_choice {other:?}"))),
        },
        Some(v) => v
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|n| Some(ToolChoice::Function(n.to_string())))
            .ok_or_else(|| bad_field("tool_choice", "tool_choice must name a function")),
    }
}

/// `stop` as a list of sequences.
pub(crate) fn stop_sequences(body: &Map<String, Value>) -> Result<Option<Vec<String>>, RouterError> {
    match body.get("stop") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| bad_field("stop", "stop must be a string or an array of strings")),
        Some(_) => Err(bad_field("stop", "stop must be a string or an array of strings")),
    }
}

/// Adds a turn's items to the conversation, merged into the last turn when it has the same role:
/// Anthropic and Gemini both want alternating turns (and one user turn for all the results of
/// parallel tool calls).
pub(crate) fn push_turn(turns: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(items),
        _ => turns.push((role, items)),
    }
}

/// One `chat.completion.chunk`.
pub(crate) fn chunk(id: &str, created: u64, model: &str, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    })
}

/// A whole `chat.completion` with one choice.
pub(crate) fn completion(
    id: &str,
    created: u64,
    model: &str,
    text: Option<String>,
    tool_calls: Vec<Value>,
    finish_reason: &str,
    usage: Option<Usage>,
) -> Value {
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let mut body = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
    });
    if let Some(usage) = usage {
        body["usage"] = usage.to_openai_json();
    }
    body
}

/// An OpenAI tool call object.
pub(crate) fn tool_call(id: &str, name: &str, arguments: &Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}})
}
