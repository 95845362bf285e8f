//! Typed errors for every request path.
//!
//! Every failure a client can see is a [`RouterError`]: it knows its HTTP status, the OpenAI error
//! `type`/`code` it is reported as, where it came from ([`Origin`]) and whether trying again could
//! help. Callers decide on fallbacks and retries from these fields, never by matching on message
//! text, and the Worker turns any of them into the OpenAI error JSON without further thought.

use crate::core::request::clip_chars;
use serde::Serialize;
use std::fmt;

/// Who is at fault: decides the log level, the status family and whether a fallback makes sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The caller sent something we reject (bad JSON, wrong key, unknown model).
    Client,
    /// An upstream model server failed or refused.
    Upstream,
    /// Switchyard itself or its configuration is at fault.
    Internal,
}

/// What went wrong, coarse enough to map onto an HTTP status and an OpenAI error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    PayloadTooLarge,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    ModelNotFound,
    /// Switchyard's own configuration is unusable (bad config, missing secret).
    Configuration,
    /// The upstream answered with an error status; the status is kept.
    UpstreamStatus(u16),
    /// The upstream could not be reached or its answer could not be read.
    UpstreamUnreachable,
    /// The upstream did not start answering (or paused mid-stream) for longer than allowed.
    UpstreamTimeout,
    /// The upstream answered 2xx with something that is not its API's answer (bad JSON, a stream
    /// cut short, an error event inside the stream).
    UpstreamMalformed,
    /// The prompt plus `max_tokens` fits none of the models that could answer.
    ContextLengthExceeded,
    /// A part of Switchyard itself (the embedding model) is not available right now.
    Unavailable,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound | ErrorKind::ModelNotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Configuration | ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
            ErrorKind::UpstreamStatus(status) if (400..=599).contains(&status) => status,
            ErrorKind::UpstreamStatus(_) | ErrorKind::UpstreamUnreachable | ErrorKind::UpstreamMalformed => {
                502
            }
            ErrorKind::UpstreamTimeout => 504,
            ErrorKind::ContextLengthExceeded => 400,
        }
    }

    /// The OpenAI `error.type` string clients switch on.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::PayloadTooLarge
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::ModelNotFound
            | ErrorKind::ContextLengthExceeded => "invalid_request_error",
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::UpstreamStatus(429) => "rate_limit_error",
            ErrorKind::UpstreamStatus(_)
            | ErrorKind::UpstreamUnreachable
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamMalformed => "upstream_error",
            ErrorKind::Configuration | ErrorKind::Internal | ErrorKind::Unavailable => "server_error",
        }
    }

    fn default_code(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::Unauthorized => "invalid_api_key",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::Configuration => "configuration_error",
            ErrorKind::UpstreamStatus(_) => "upstream_error",
            ErrorKind::UpstreamUnreachable => "upstream_unreachable",
            ErrorKind::UpstreamTimeout => "upstream_timeout",
            ErrorKind::UpstreamMalformed => "upstream_malformed",
            ErrorKind::ContextLengthExceeded => "context_length_exceeded",
            ErrorKind::Unavailable => "model_unavailable",
            ErrorKind::Internal => "internal_error",
        }
    }

    pub fn origin(self) -> Origin {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::PayloadTooLarge
            | ErrorKind::Unauthorized
            | ErrorKind::Forbidden
            | ErrorKind::NotFound
            | ErrorKind::MethodNotAllowed
            | ErrorKind::ModelNotFound
            | ErrorKind::ContextLengthExceeded => Origin::Client,
            ErrorKind::UpstreamStatus(_)
            | ErrorKind::UpstreamUnreachable
            | ErrorKind::UpstreamTimeout
            | ErrorKind::UpstreamMalformed => Origin::Upstream,
            ErrorKind::Configuration | ErrorKind::Internal | ErrorKind::Unavailable => Origin::Internal,
        }
    }

    /// Whether the same request may succeed if sent to the same model again, after a pause.
    pub fn retryable(self) -> bool {
        match self {
            ErrorKind::UpstreamStatus(status) => status == 408 || status == 429 || status >= 500,
            ErrorKind::UpstreamUnreachable | ErrorKind::UpstreamTimeout => true,
            _ => false,
        }
    }

    /// Whether another model may succeed where this one failed: every retryable failure, an
    /// answer this model garbled, and an upstream refusing Switchyard's own key or not knowing the
    /// model id (401, 403, 404: a configuration fault of this provider, not of the request). A
    /// request the upstream found invalid (400, 413, 422…) would fail anywhere and is returned.
    pub fn falls_back(self) -> bool {
        self.retryable()
            || self == ErrorKind::UpstreamMalformed
            || matches!(self, ErrorKind::UpstreamStatus(401 | 403 | 404))
    }

    /// How a call that failed this way is reported in `x-switchyard-attempts` and logs.
    pub fn outcome(self) -> CallOutcome {
        match self {
            ErrorKind::UpstreamStatus(status) => CallOutcome::Status(status),
            ErrorKind::UpstreamUnreachable => CallOutcome::Unreachable,
            ErrorKind::UpstreamTimeout => CallOutcome::Timeout,
            ErrorKind::UpstreamMalformed => CallOutcome::Malformed,
            other => CallOutcome::Failed(other.default_code()),
        }
    }
}

/// How one upstream call ended, as `x-switchyard-attempts` and the logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// It answered (`ok`).
    Ok,
    /// It answered this error status (`http_503`).
    Status(u16),
    /// It could not be reached (`unreachable`).
    Unreachable,
    /// It did not answer in time (`timeout`).
    Timeout,
    /// It answered 2xx with something that is not its API's answer (`malformed`).
    Malformed,
    /// Another failure, by its error code.
    Failed(&'static str),
}

impl std::fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallOutcome::Ok => f.write_str("ok"),
            CallOutcome::Status(status) => write!(f, "http_{status}"),
            CallOutcome::Unreachable => f.write_str("unreachable"),
            CallOutcome::Timeout => f.write_str("timeout"),
            CallOutcome::Malformed => f.write_str("malformed"),
            CallOutcome::Failed(code) => f.write_str(code),
        }
    }
}

/// An error a client will see, in OpenAI form.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterError {
    pub kind: ErrorKind,
    pub message: String,
    /// The request field at fault, as OpenAI's `error.param` (e.g. `messages[0].role`).
    pub param: Option<String>,
    /// Overrides the kind's default `error.code` (e.g. an upstream's own code).
    pub code: Option<String>,
    /// Overrides the kind's `error.type` (e.g. an upstream's own type).
    pub error_type: Option<String>,
    /// How long the upstream asked us to wait before trying again (`retry-after`).
    pub retry_after_ms: Option<u64>,
}

impl RouterError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        RouterError {
            kind,
            message: message.into(),
            param: None,
            code: None,
            error_type: None,
            retry_after_ms: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        let param = param.into();
        self.param = if param.is_empty() { None } else { Some(param) };
        self
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The OpenAI `error.code`: the upstream's own, or the kind's.
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or(self.kind.default_code())
    }

    pub fn origin(&self) -> Origin {
        self.kind.origin()
    }

    pub fn retryable(&self) -> bool {
        self.kind.retryable()
    }

    pub fn falls_back(&self) -> bool {
        self.kind.falls_back()
    }

    /// The OpenAI error body: `{"error": {"message", "type", "param", "code"}}`.
    ///
    /// A configuration error is the operator's to read, not the client's: clients get a fixed
    /// message and the stable code `configuration_error`; the details go to the log.
    pub fn to_openai_json(&self) -> serde_json::Value {
        let message = match self.kind {
            ErrorKind::Configuration => CONFIGURATION_MESSAGE,
            _ => &self.message,
        };
        serde_json::json!({
            "error": {
                "message": message,
                "type": self.error_type.as_deref().unwrap_or(self.kind.openai_type()),
                "param": self.param,
                "code": self.code(),
            }
        })
    }

    /// The Worker's log line for this error (`"event": "error"`; README, "Logs"), with the id of
    /// the decision it ended when it ended a routed request. A client's own mistake is logged
    /// without its message, which may quote what the client sent; every other message (already
    /// scrubbed of secrets, configuration errors with their `FILE:LINE:COLUMN`) is the operator's
    /// to read.
    pub fn log_line(&self, decision_id: Option<&str>) -> serde_json::Value {
        let mut line = serde_json::json!({
            "event": "error",
            "status": self.status(),
            "origin": self.origin(),
            "code": self.code(),
            "param": self.param,
            "message": (self.origin() != Origin::Client).then_some(&self.message),
        });
        if let Some(id) = decision_id {
            line["decision_id"] = serde_json::json!(id);
        }
        line
    }

    /// Replaces every occurrence of each secret in every field with `[redacted]`, then cuts the
    /// message to [`MAX_ERROR_MESSAGE_CHARS`].
    ///
    /// Upstream error texts are passed on to clients; an upstream that echoes the key it was sent
    /// must not leak it through us. Redaction comes first: a cut through the middle of a key
    /// would leave a prefix no longer equal to the key, which redaction would then miss.
    pub fn redacted<'a>(mut self, secrets: impl IntoIterator<Item = &'a str> + Clone) -> Self {
        self.message =
            clip_chars(&redact(&self.message, secrets.clone()), MAX_ERROR_MESSAGE_CHARS).to_string();
        for field in [&mut self.code, &mut self.error_type, &mut self.param].into_iter().flatten() {
            *field = redact(field, secrets.clone());
        }
        self
    }
}

/// What a client is told of a configuration error; the log has the details.
pub const CONFIGURATION_MESSAGE: &str =
    "Switchyard is not configured correctly; its operator's log says why (code configuration_error).";

/// Error messages longer than this are cut (after redaction) before being passed on.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 2000;

impl RouterError {
    /// Maps an upstream's error answer (status and body) to an error that keeps the upstream
    /// status and, where the body has the usual `{"error": {"message", "type", "code"}}` shape
    /// (OpenAI, Anthropic, Gemini's `status`), its message, type and code. Anthropic's
    /// non-standard 529 "overloaded" becomes 503. Every value in `secrets` is scrubbed.
    pub fn from_upstream(provider: &str, status: u16, body: &str, secrets: &[String]) -> RouterError {
        let status = if status == 529 { 503 } else { status };
        let secrets = || secrets.iter().map(String::as_str);
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let upstream = parsed.as_ref().map(|v| v.get("error").unwrap_or(v));
        let field =
            |name: &str| upstream.and_then(|e| e.get(name)).and_then(|v| v.as_str()).map(str::to_string);
        let detail = field("message").unwrap_or_else(|| body.trim().to_string());
        let mut error = RouterError::new(
            ErrorKind::UpstreamStatus(status),
            format!("upstream {provider:?} answered HTTP {status}: {detail}"),
        );
        error.code = field("code").or_else(|| field("status"));
        error.error_type = field("type").filter(|t| !t.is_empty() && t.len() < 64);
        error.redacted(secrets())
    }
}

/// Parses `retry-after-ms` (milliseconds) or `retry-after` (seconds, or an HTTP date compared with
/// `now_unix_ms`) into a wait in milliseconds. Unparseable values are ignored.
pub fn parse_retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now_unix_ms: u64,
) -> Option<u64> {
    if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(ms.round() as u64);
        }
    }
    let value = retry_after?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let at_ms = date.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(at_ms.saturating_sub(now_unix_ms))
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.default_code())
    }
}

impl std::error::Error for RouterError {}

/// Replaces each non-trivial secret in `text` by `[redacted]`.
pub fn redact<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        // Very short values would redact ordinary words; real keys are long.
        if secret.len() >= 8 && out.contains(secret) {
            out = out.replace(secret, "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_status_is_kept_and_classified() {
        let e = RouterError::new(ErrorKind::UpstreamStatus(429), "slow down");
        assert_eq!(e.status(), 429);
        assert!(e.retryable());
        assert_eq!(e.origin(), Origin::Upstream);
        assert_eq!(e.to_openai_json()["error"]["type"], "rate_limit_error");
        let e = RouterError::new(ErrorKind::UpstreamStatus(400), "bad");
        assert!(!e.retryable());
        // A nonsense upstream status becomes a gateway error, not an invalid HTTP status.
        assert_eq!(RouterError::new(ErrorKind::UpstreamStatus(200), "?").status(), 502);
    }

    #[test]
    fn upstream_errors_keep_status_type_and_code_but_not_secrets() {
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-upstream-secret-1","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let e = RouterError::from_upstream("openai", 401, body, &["sk-upstream-secret-1".to_string()]);
        assert_eq!(e.status(), 401);
        let json = e.to_openai_json();
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert_eq!(json["error"]["code"], "invalid_api_key");
        assert!(!json.to_string().contains("sk-upstream-secret-1"));
        // A non-JSON body is kept as text, cut to a bounded length.
        let e = RouterError::from_upstream("local", 503, &"x".repeat(10_000), &[]);
        assert_eq!(e.status(), 503);
        assert!(e.message.len() < 2100);
    }

    #[test]
    fn retry_after_is_read_in_every_form() {
        assert_eq!(parse_retry_after(Some("1500"), Some("9"), 0), Some(1500));
        assert_eq!(parse_retry_after(None, Some("2"), 0), Some(2000));
        assert_eq!(parse_retry_after(None, Some("0.5"), 0), Some(500));
        // 1994-11-06T08:49:37Z is 784111777 s after the epoch.
        let now = 784_111_777_000 - 3_000;
        assert_eq!(parse_retry_after(None, Some("Sun, 06 Nov 1994 08:49:37 GMT"), now), Some(3000));
        assert_eq!(parse_retry_after(None, Some("soon"), 0), None);
        assert_eq!(parse_retry_after(None, Some("-1"), 0), None);
    }

    #[test]
    fn overloaded_and_gemini_errors_are_mapped() {
        let anthropic = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let e = RouterError::from_upstream("claude", 529, anthropic, &[]);
        assert_eq!(e.status(), 503);
        assert!(e.retryable());
        assert_eq!(e.to_openai_json()["error"]["type"], "overloaded_error");
        let gemini = r#"{"error":{"code":400,"message":"API key not valid","status":"INVALID_ARGUMENT"}}"#;
        let e = RouterError::from_upstream("gemini", 400, gemini, &[]);
        assert_eq!(e.to_openai_json()["error"]["code"], "INVALID_ARGUMENT");
        assert!(!e.falls_back());
    }

    #[test]
    fn a_key_across_the_cut_is_redacted_not_half_shown() {
        let key = "sk-upstream-secret-0123456789";
        for at in [1990, 1995, 2000] {
            let message = format!("{}{key} and more", "x".repeat(at - 40));
            let body =
                serde_json::json!({"error": {"message": message, "type": key, "code": key}}).to_string();
            let e = RouterError::from_upstream("openai", 400, &body, &[key.to_string()]);
            let json = e.to_openai_json().to_string();
            assert!(!json.contains("sk-upstream-secret"), "{at}: {json}");
            assert!(e.message.chars().count() <= MAX_ERROR_MESSAGE_CHARS);
        }
    }

    #[test]
    fn log_lines_name_the_decision_and_keep_a_clients_own_words_out() {
        let upstream = RouterError::new(ErrorKind::UpstreamTimeout, "model \"mini\": no answer in 1500 ms");
        let line = upstream.log_line(Some("0b7e…"));
        assert_eq!(line["event"], "error");
        assert_eq!(line["decision_id"], "0b7e…");
        assert_eq!(line["status"], 504);
        assert_eq!(line["origin"], "upstream");
        assert_eq!(line["message"], "model \"mini\": no answer in 1500 ms");
        let client =
            RouterError::invalid_request("messages[0].content: my secret plan").with_param("messages[0]");
        let line = client.log_line(None);
        assert!(line["message"].is_null() && line.get("decision_id").is_none(), "{line}");
        assert_eq!(line["param"], "messages[0]");
    }

    #[test]
    fn configuration_errors_reach_clients_without_their_details() {
        let e =
            RouterError::new(ErrorKind::Configuration, "SWITCHYARD_CONFIG:3:1: secret ROUTER_KEY is short");
        let json = e.to_openai_json();
        assert_eq!(json["error"]["code"], "configuration_error");
        assert!(!json.to_string().contains("ROUTER_KEY"));
        assert!(e.to_string().contains("ROUTER_KEY"), "the log keeps the details");
    }

    #[test]
    fn redaction_removes_secrets_from_messages() {
        let e = RouterError::new(ErrorKind::UpstreamStatus(401), "bad key sk-live-123456789 sent")
            .redacted(["sk-live-123456789", "short"]);
        assert_eq!(e.message, "bad key [redacted] sent");
    }
}
