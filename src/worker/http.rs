//! Building responses without ever failing: every helper here returns a `Response`, falling back
//! to a minimal one if the runtime refuses a header, so no request path can end in a panic or an
//! unhandled error.

use crate::core::error::RouterError;
use wasm_bindgen::JsCast;
use worker::{Headers, Response, ResponseBody};

/// A JSON response with the given status.
pub fn json(status: u16, value: &serde_json::Value) -> Response {
    json_text(status, value.to_string())
}

/// A response whose body is already JSON text.
pub fn json_text(status: u16, body: String) -> Response {
    fixed(status, "application/json", body.into_bytes())
}

/// A JSON Lines body.
pub fn json_lines(body: String) -> Response {
    fixed(200, "application/x-ndjson; charset=utf-8", body.into_bytes())
}

/// A whole body of `content_type`.
fn fixed(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", content_type);
    Response::builder().with_status(status).with_headers(headers).fixed(body)
}

/// The OpenAI-style error response for `error`.
pub fn error(error: &RouterError) -> Response {
    json(error.status(), &error.to_openai_json())
}

/// Sets headers on a response, skipping any the runtime rejects.
pub fn set_headers<'a>(response: &mut Response, headers: impl IntoIterator<Item = (&'a str, String)>) {
    let target = response.headers_mut();
    for (name, value) in headers {
        let _ = target.set(name, &value);
    }
}

/// An empty 204 (CORS preflight answers).
pub fn no_content() -> Response {
    Response::builder().with_status(204).body(ResponseBody::Empty)
}

/// Milliseconds from a high-resolution clock: `performance.now()` where the runtime offers it
/// (local workerd), else `Date.now()` (production Workers advance it only across I/O).
pub fn now_ms() -> f64 {
    let global = js_sys::global();
    js_sys::Reflect::get(&global, &"performance".into())
        .ok()
        .and_then(|performance| {
            let now = js_sys::Reflect::get(&performance, &"now".into()).ok()?;
            let now: js_sys::Function = now.dyn_into().ok()?;
            now.call0(&performance).ok()?.as_f64()
        })
        .unwrap_or_else(js_sys::Date::now)
}
