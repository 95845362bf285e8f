//! The client's body, untouched except for `model` and, when streaming, `stream_options`.

use crate::core::providers::{Target, UpstreamRequest};
use crate::core::request::ChatRequest;
use serde_json::{json, Value};

pub fn build(target: &Target, request: &ChatRequest) -> UpstreamRequest {
    let mut body = request.upstream_body(target.model);
    if request.stream {
        // Usage is counted for cost even when the client did not ask for it; the relay only passes
        // the usage chunk on when the client asked.
        let options = body.entry("stream_options").or_insert_with(|| json!({}));
        if let Value::Object(options) = options {
            options.insert("include_usage".into(), Value::Bool(true));
        } else {
            *options = json!({"include_usage": true});
        }
    }
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("accept", if request.stream { "text/event-stream" } else { "application/json" }.to_string()),
    ];
    if let Some(key) = target.api_key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    UpstreamRequest {
        url: format!("{}/chat/completions", target.base_url),
        headers,
        body: Value::Object(body).to_string(),
    }
}
