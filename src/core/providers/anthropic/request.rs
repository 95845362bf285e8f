//! OpenAI chat request → Anthropic Messages request.

use crate::core::error::RouterError;
use crate::core::providers::anthropic::API_VERSION;
use crate::core::providers::{
    bad_field, content_text, function_tools, image_of, push_turn, stop_sequences, tool_arguments,
    tool_choice, FunctionTool, Image, Target, ToolChoice, UpstreamRequest,
};
use crate::core::request::ChatRequest;
use serde_json::{json, Map, Value};

pub fn build(target: &Target, request: &ChatRequest) -> Result<UpstreamRequest, RouterError> {
    let body = &request.body;
    let (system, messages) = messages(body)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(target.model));
    out.insert(
        "max_tokens".into(),
        json!(request.max_output_tokens.unwrap_or(u64::from(target.default_max_tokens))),
    );
    if !system.is_empty() {
        out.insert("system".into(), json!(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    // OpenAI's temperature goes to 2, Anthropic's to 1: the same request must not fail here
    // for a value every OpenAI model takes.
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    // Current Claude models refuse temperature and top_p together; temperature wins.
    if let Some(v) = body.get("top_p").filter(|v| v.is_number() && !out.contains_key("temperature")) {
        out.insert("top_p".into(), v.clone());
    }
    if let Some(stop) = stop_sequences(body)? {
        out.insert("stop_sequences".into(), json!(stop));
    }
    if let Some(user) = body.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    let tools = function_tools(body)?;
    if !tools.is_empty() {
        let tools: Vec<Value> = tools
            .into_iter()
            .map(|FunctionTool { name, description, parameters }| {
                let mut tool = json!({
                    "name": name,
                    "input_schema": parameters.unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                });
                if let Some(d) = description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = match tool_choice(body)? {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"type": "auto"})),
        Some(ToolChoice::None) => Some(json!({"type": "none"})),
        Some(ToolChoice::Required) => Some(json!({"type": "any"})),
        Some(ToolChoice::Function(name)) => Some(json!({"type": "tool", "name": name})),
    };
    if body.get("parallel_tool_calls") == Some(&Value::Bool(false)) && out.contains_key("tools") {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if c["type"] != "none" {
            c["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    if request.stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("accept", if request.stream { "text/event-stream" } else { "application/json" }.to_string()),
        ("anthropic-version", API_VERSION.to_string()),
    ];
    if let Some(key) = target.api_key {
        headers.push(("x-api-key", key.to_string()));
    }
    Ok(UpstreamRequest {
        url: format!("{}/messages", target.base_url),
        headers,
        body: Value::Object(out).to_string(),
    })
}

/// The system text and the alternating user/assistant turns.
fn messages(body: &Map<String, Value>) -> Result<(String, Vec<Value>), RouterError> {
    let list = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.push(content_text(m.get("content")));
                continue;
            }
            "user" => ("user", user_blocks(m.get("content"), &param)?),
            "assistant" => ("assistant", assistant_blocks(m, &param)?),
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| {
                    bad_field(format!("{param}.tool_call_id"), "a tool message needs tool_call_id")
                })?;
                let result = json!({"type": "tool_result", "tool_use_id": id, "content": content_text(m.get("content"))});
                ("user", vec![result])
            }
            other => {
                return Err(bad_field(
                    format!("{param}.role"),
                    format!("role {other:?} cannot be sent to Anthropic"),
                ))
            }
        };
        push_turn(&mut turns, role, blocks);
    }
    if turns.is_empty() {
        return Err(bad_field("messages", "Anthropic needs at least one user or assistant message"));
    }
    let turns = turns.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    Ok((system.join("\n\n"), turns))
}

fn user_blocks(content: Option<&Value>, param: &str) -> Result<Vec<Value>, RouterError> {
    match content {
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let part_param = format!("{param}.content[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = part.get("text").and_then(Value::as_str).unwrap_or_default();
                        if !text.is_empty() {
                            blocks.push(json!({"type": "text", "text": text}));
                        }
                    }
                    Some("image_url") => blocks.push(match image_of(part, &part_param)? {
                        Image::Inline { media_type, data } => json!({
                            "type": "image",
                            "source": {"type": "base64", "media_type": media_type, "data": data},
                        }),
                        Image::Url(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
                    }),
                    other => {
                        return Err(bad_field(
                            format!("{part_param}.type"),
                            format!("content part type {} cannot be sent to Anthropic", other.unwrap_or("?")),
                        ))
                    }
                }
            }
            Ok(blocks)
        }
        _ => Ok(Vec::new()),
    }
}

fn assistant_blocks(m: &Value, param: &str) -> Result<Vec<Value>, RouterError> {
    let mut blocks = Vec::new();
    let text = content_text(m.get("content"));
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        for (k, call) in calls.iter().enumerate() {
            let call_param = format!("{param}.tool_calls[{k}]");
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad_field(format!("{call_param}.id"), "a tool call needs an id"))?;
            let name = call.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(
                || bad_field(format!("{call_param}.function.name"), "a tool call needs a function name"),
            )?;
            let input = tool_arguments(call, &call_param)?;
            blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
    }
    Ok(blocks)
}
