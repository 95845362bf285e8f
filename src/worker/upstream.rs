//! Calling an OpenAI-compatible upstream and passing its answer through.
//!
//! A successful answer's body is handed to the client as the same `ReadableStream`: SSE chunks
//! flow through as the upstream sends them, never buffered whole. An error answer is read (it is
//! small), mapped to an OpenAI-style error that keeps the upstream status, and scrubbed of every
//! secret value before it leaves.

use crate::core::decision::Decision;
use crate::core::error::{ErrorKind, RouterError};
use crate::core::request::ChatRequest;
use crate::worker::state::{secret, State};
use wasm_bindgen::JsValue;
use worker::{Env, Fetch, Headers, Method, Request, RequestInit, Response};

/// Sends `request` to the decision's model. `Ok` is the upstream's successful response, body
/// untouched; any failure is a typed error.
pub async fn forward(
    state: &State,
    env: &Env,
    request: &ChatRequest,
    decision: &Decision,
) -> Result<Response, RouterError> {
    let config = &state.router.config;
    let internal =
        |what: &str| RouterError::new(ErrorKind::Internal, format!("decision names unknown {what}"));
    let model = config.model(&decision.model).ok_or_else(|| internal("model"))?;
    let provider_name = model.provider.get_ref();
    let provider = config.provider(provider_name).ok_or_else(|| internal("provider"))?;
    let base_url = provider.base_url.get_ref().trim_end_matches('/');
    let url = format!("{base_url}/chat/completions");

    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    let _ = headers.set("accept", if request.stream { "text/event-stream" } else { "application/json" });
    if let Some(key_name) = &provider.api_key {
        let key_name = key_name.get_ref();
        let key = secret(env, key_name).ok_or_else(|| {
            RouterError::new(
                ErrorKind::Configuration,
                format!(
                    "provider {provider_name:?} needs the secret {key_name}, which is not set; set it with `wrangler secret put {key_name}` (or in .dev.vars locally)"
                ),
            )
        })?;
        let _ = headers.set("authorization", &format!("Bearer {key}"));
    }
    let body =
        serde_json::Value::Object(request.upstream_body(model.upstream_id(&decision.model))).to_string();
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(JsValue::from_str(&body)));
    let unreachable = |detail: String| {
        RouterError::new(
            ErrorKind::UpstreamUnreachable,
            format!("could not reach upstream {provider_name:?} at {base_url}: {detail}"),
        )
        .redacted(state.secret_values.iter().map(String::as_str))
    };
    let upstream_request = Request::new_with_init(&url, &init).map_err(|e| unreachable(e.to_string()))?;
    let mut response =
        Fetch::Request(upstream_request).send().await.map_err(|e| unreachable(e.to_string()))?;

    let status = response.status_code();
    if (200..300).contains(&status) {
        let content_type = response.headers().get("content-type").ok().flatten();
        let (_, body) = response.into_parts();
        let headers = Headers::new();
        if let Some(content_type) = content_type {
            let _ = headers.set("content-type", &content_type);
        }
        if request.stream {
            let _ = headers.set("cache-control", "no-cache");
        }
        return Ok(Response::builder().with_status(status).with_headers(headers).body(body));
    }
    let text = response.text().await.unwrap_or_default();
    Err(RouterError::from_upstream(provider_name, status, &text, &state.secret_values))
}
