//! The client's body, untouched except for `model` and, when streaming, `stream_options`.

use crate::core::error::RouterError;
use crate::core::providers::{Target, UpstreamRequest};
use crate::core::request::ChatRequest;
use serde_json::{Map, Value};

pub fn build(target: &Target, request: &ChatRequest) -> Result<UpstreamRequest, RouterError> {
    let mut overrides = Vec::new();
    if request.stream {
        // Usage is counted for cost even when the client did not ask for it; the relay only passes
        // the usage chunk on when the client asked.
        let mut options = match request.body.get("stream_options") {
            Some(Value::Object(options)) => options.clone(),
            _ => Map::new(),
        };
        options.insert("include_usage".into(), Value::Bool(true));
        overrides.push(("stream_options", Value::Object(options)));
    }
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("accept", if request.stream { "text/event-stream" } else { "application/json" }.to_string()),
    ];
    if let Some(key) = target.api_key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    Ok(UpstreamRequest {
        url: format!("{}/chat/completions", target.base_url),
        headers,
        body: request.upstream_json(target.model, &overrides)?,
    })
}
