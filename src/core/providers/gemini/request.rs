//! OpenAI chat request → Gemini `GenerateContentRequest`.

use crate::core::error::RouterError;
use crate::core::providers::{
    bad_field, content_text, function_tools, image_of, push_turn, stop_sequences, tool_arguments,
    tool_choice, FunctionTool, Image, Target, ToolChoice, UpstreamRequest,
};
use crate::core::request::ChatRequest;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub fn build(target: &Target, request: &ChatRequest) -> Result<UpstreamRequest, RouterError> {
    let body = &request.body;
    let (system, contents) = contents(body)?;
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": [{"text": system}]}));
    }
    let mut generation = Map::new();
    if let Some(max) = request.max_output_tokens {
        generation.insert("maxOutputTokens".into(), json!(max));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed")] {
        if let Some(v) = body.get(from).filter(|v| v.is_number()) {
            generation.insert(to.into(), v.clone());
        }
    }
    if let Some(stop) = stop_sequences(body)? {
        generation.insert("stopSequences".into(), json!(stop));
    }
    if let Some(format) = body.get("response_format").filter(|f| !f.is_null()) {
        match format.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                generation.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                let schema = format.get("json_schema").and_then(|s| s.get("schema")).ok_or_else(|| {
                    bad_field("response_format.json_schema.schema", "json_schema needs a schema")
                })?;
                generation.insert("responseMimeType".into(), json!("application/json"));
                generation.insert("responseJsonSchema".into(), schema.clone());
            }
            _ => {
                return Err(bad_field(
                    "response_format.type",
                    "response_format.type must be text, json_object or json_schema",
                ))
            }
        }
    }
    if !generation.is_empty() {
        out.insert("generationConfig".into(), Value::Object(generation));
    }
    let tools = function_tools(body)?;
    if !tools.is_empty() {
        let declarations: Vec<Value> = tools
            .into_iter()
            .map(|FunctionTool { name, description, parameters }| {
                let mut declaration = json!({"name": name});
                if let Some(d) = description {
                    declaration["description"] = json!(d);
                }
                if let Some(p) = parameters {
                    declaration["parametersJsonSchema"] = p;
                }
                declaration
            })
            .collect();
        out.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
    }
    let config = match tool_choice(body)? {
        None => None,
        Some(ToolChoice::Auto) => Some(json!({"mode": "AUTO"})),
        Some(ToolChoice::None) => Some(json!({"mode": "NONE"})),
        Some(ToolChoice::Required) => Some(json!({"mode": "ANY"})),
        Some(ToolChoice::Function(name)) => Some(json!({"mode": "ANY", "allowedFunctionNames": [name]})),
    };
    if let Some(config) = config {
        out.insert("toolConfig".into(), json!({"functionCallingConfig": config}));
    }
    let method = if request.stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("accept", if request.stream { "text/event-stream" } else { "application/json" }.to_string()),
    ];
    if let Some(key) = target.api_key {
        headers.push(("x-goog-api-key", key.to_string()));
    }
    Ok(UpstreamRequest {
        url: format!("{}/models/{}:{method}", target.base_url, target.model),
        headers,
        body: Value::Object(out).to_string(),
    })
}

/// The system text and the `contents` turns.
fn contents(body: &Map<String, Value>) -> Result<(String, Vec<Value>), RouterError> {
    let list = body.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut system: Vec<String> = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let (role, parts) = match role {
            "system" | "developer" => {
                system.push(content_text(m.get("content")));
                continue;
            }
            "user" => ("user", user_parts(m.get("content"), &param)?),
            "assistant" => {
                let mut parts = Vec::new();
                let text = content_text(m.get("content"));
                if !text.is_empty() {
                    parts.push(json!({"text": text}));
                }
                for (k, call) in
                    m.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate()
                {
                    let call_param = format!("{param}.tool_calls[{k}]");
                    let name =
                        call.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(
                            || {
                                bad_field(
                                    format!("{call_param}.function.name"),
                                    "a tool call needs a function name",
                                )
                            },
                        )?;
                    if let Some(id) = call.get("id").and_then(Value::as_str) {
                        call_names.insert(id.to_string(), name.to_string());
                    }
                    parts.push(
                        json!({"functionCall": {"name": name, "args": tool_arguments(call, &call_param)?}}),
                    );
                }
                ("model", parts)
            }
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or_default();
                let name = call_names.get(id).ok_or_else(|| {
                    bad_field(
                        format!("{param}.tool_call_id"),
                        format!("{param}.tool_call_id {id:?} answers no tool call of an earlier assistant message"),
                    )
                })?;
                let text = content_text(m.get("content"));
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"result": text}),
                };
                ("user", vec![json!({"functionResponse": {"name": name, "response": response}})])
            }
            other => {
                return Err(bad_field(
                    format!("{param}.role"),
                    format!("role {other:?} cannot be sent to Gemini"),
                ))
            }
        };
        push_turn(&mut turns, role, parts);
    }
    if turns.is_empty() {
        return Err(bad_field("messages", "Gemini needs at least one user or assistant message"));
    }
    let contents = turns.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect();
    Ok((system.join("\n\n"), contents))
}

fn user_parts(content: Option<&Value>, param: &str) -> Result<Vec<Value>, RouterError> {
    match content {
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"text": s})]),
        Some(Value::Array(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for (j, part) in items.iter().enumerate() {
                let part_param = format!("{param}.content[{j}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = part.get("text").and_then(Value::as_str).unwrap_or_default();
                        if !text.is_empty() {
                            parts.push(json!({"text": text}));
                        }
                    }
                    Some("image_url") => parts.push(match image_of(part, &part_param)? {
                        Image::Inline { media_type, data } => {
                            json!({"inlineData": {"mimeType": media_type, "data": data}})
                        }
                        Image::Url(url) => {
                            json!({"fileData": {"fileUri": url, "mimeType": guess_image_type(url)}})
                        }
                    }),
                    other => {
                        return Err(bad_field(
                            format!("{part_param}.type"),
                            format!("content part type {} cannot be sent to Gemini", other.unwrap_or("?")),
                        ))
                    }
                }
            }
            Ok(parts)
        }
        _ => Ok(Vec::new()),
    }
}

/// Gemini wants a media type with every file URL; OpenAI clients do not send one.
fn guess_image_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url).to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else {
        "image/jpeg"
    }
}
