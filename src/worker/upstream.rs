//! Calling upstreams: the IO half of `core::fallback` and `core::providers`.
//!
//! For each model of the decision, in order: skip it if the plan says so, else build its request
//! (`providers::build_request`), send it under the model's timeout (aborting the fetch when it
//! expires), and on failure let `fallback::after_failure` say whether to wait and retry, move on,
//! or give up. A stream counts as answered only once its first translated event is in hand, so a
//! model that accepts the request and then fails or stalls before saying anything is still
//! replaced by the next; after that first byte, failures end the stream with an error event.

use crate::core::attempts::{Action, Attempts, CallResult};
use crate::core::config::{Model, Provider};
use crate::core::decision::Decision;
use crate::core::error::{parse_retry_after, ErrorKind, RouterError};
use crate::core::fallback::Attempt;
use crate::core::providers::{self, Completion, Target, Usage};
use crate::core::relay::{error_event, StreamRelay};
use crate::core::request::ChatRequest;
use crate::worker::state::{secret, State};
use futures_util::future::{select, Either};
use futures_util::{Stream, StreamExt};
use std::future::Future;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{
    AbortController, ByteStream, Delay, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
};

/// What a model answered.
pub enum Body {
    Whole(Completion),
    Stream(StreamAnswer),
}

pub struct Answered {
    /// The model (a key of `[models]`) that answered.
    pub model: String,
    pub body: Body,
}

/// The outcome of a request: the answer or the error to return, and every call and skip on the
/// way, for the headers and the log.
pub struct Outcome {
    pub result: Result<Answered, RouterError>,
    pub attempts: Vec<Attempt>,
}

/// Calls the decision's models until one answers: a driver for [`Attempts`], which decides
/// every call, wait, retry and fallback; this only carries them out.
pub async fn answer(state: &State, env: &Env, request: &ChatRequest, decision: &Decision) -> Outcome {
    let config = &state.config;
    let mut machine = Attempts::new(
        config,
        decision,
        request,
        |name| secret(env, name).is_some(),
        state.secret_values.clone(),
    );
    let mut answered = None;
    let now = || js_sys::Date::now() as u64;
    let mut action = machine.start(now());
    loop {
        action = match action {
            Action::Call { model, timeout_ms } => {
                let result = match call(state, env, request, &model, timeout_ms).await {
                    Ok(body) => {
                        answered = Some(body);
                        CallResult::Answered
                    }
                    Err(CallError::Untranslatable(error)) => CallResult::Untranslatable(error),
                    Err(CallError::Failed(error)) => CallResult::Failed(error),
                };
                machine.called(result, now(), js_sys::Math::random())
            }
            Action::Wait { ms } => {
                Delay::from(Duration::from_millis(ms)).await;
                machine.waited(now())
            }
            Action::Deliver { model } => {
                let result = match answered.take() {
                    Some(body) => Ok(Answered { model, body }),
                    None => {
                        Err(RouterError::new(ErrorKind::Internal, "an answer was delivered before it came"))
                    }
                };
                return Outcome { result, attempts: machine.into_attempts() };
            }
            Action::Fail(error) => return Outcome { result: Err(error), attempts: machine.into_attempts() },
        };
    }
}

/// One whole (not streamed) answer from model `name`, within `timeout_ms` for the whole call,
/// with no retry or fallback: the LLM router's call, which routing must not wait on for long.
/// Errors come redacted of every secret value.
pub async fn complete(
    state: &State,
    env: &Env,
    request: &ChatRequest,
    name: &str,
    timeout_ms: u64,
) -> Result<Completion, RouterError> {
    let config = &state.config;
    let missing = config
        .model(name)
        .and_then(|m| config.provider(&m.provider))
        .and_then(|p| p.secret_names().find(|secret_name| secret(env, secret_name).is_none()));
    if let Some(secret_name) = missing {
        return Err(RouterError::new(
            ErrorKind::Configuration,
            format!("the secret {secret_name} that model {name:?} needs is not set"),
        ));
    }
    let model_timeout = state.config.model(name).map_or(timeout_ms, |m| m.timeout_ms);
    let error = match within(timeout_ms, call(state, env, request, name, model_timeout)).await {
        Some(Ok(Body::Whole(completion))) => return Ok(completion),
        Some(Ok(Body::Stream(_))) => RouterError::new(
            ErrorKind::Internal,
            "a whole answer was asked for, and a stream came".to_string(),
        ),
        Some(Err(CallError::Failed(error) | CallError::Untranslatable(error))) => error,
        None => RouterError::new(
            ErrorKind::UpstreamTimeout,
            format!("model {name:?} did not answer within {timeout_ms} ms"),
        ),
    };
    Err(error.redacted(state.secret_values.iter().map(String::as_str)))
}

/// A request this model's API cannot express (found before calling it).
struct Untranslatable(RouterError);

impl From<RouterError> for CallError {
    fn from(error: RouterError) -> Self {
        CallError::Failed(error)
    }
}

impl From<Untranslatable> for CallError {
    fn from(error: Untranslatable) -> Self {
        CallError::Untranslatable(error.0)
    }
}

enum CallError {
    /// The model was called and failed.
    Failed(RouterError),
    /// The model was not called: the request cannot be put in its API.
    Untranslatable(RouterError),
}

/// One call to one model, which has `timeout_ms` to start answering.
async fn call(
    state: &State,
    env: &Env,
    request: &ChatRequest,
    name: &str,
    timeout_ms: u64,
) -> Result<Body, CallError> {
    let config = &state.config;
    let internal =
        |what: &str| RouterError::new(ErrorKind::Internal, format!("decision names unknown {what}"));
    let model: &Model = config.model(name).ok_or_else(|| CallError::Failed(internal("model")))?;
    let provider_name = &model.provider;
    let provider: &Provider =
        config.provider(provider_name).ok_or_else(|| CallError::Failed(internal("provider")))?;
    let api_key = provider.api_key.as_ref().and_then(|k| secret(env, k));
    let base_url = provider.base_url.as_str();
    let upstream_model = model.upstream.as_str();
    let target = Target {
        kind: provider.kind,
        base_url,
        api_key: api_key.as_deref(),
        model: upstream_model,
        default_max_tokens: model.max_output_tokens,
    };
    let outgoing = providers::build_request(&target, request).map_err(Untranslatable)?;
    let idle_ms = config.upstream.idle_timeout_ms;
    let started = js_sys::Date::now();

    let headers = Headers::new();
    for (header, value) in &outgoing.headers {
        let _ = headers.set(header, value);
    }
    for (header, secret_name) in &provider.headers {
        // The plan skipped this model if any of these secrets were missing.
        if let Some(value) = secret(env, secret_name) {
            let _ = headers.set(header, &value);
        }
    }
    let controller = AbortController::default();
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&outgoing.body)))
        // A redirect would carry the upstream key to another host: it is an error instead.
        .with_redirect(RequestRedirect::Manual);
    let unreachable = |detail: String| {
        RouterError::new(
            ErrorKind::UpstreamUnreachable,
            format!("could not reach upstream {provider_name:?} at {base_url}: {detail}"),
        )
    };
    let timed_out = |what: &str, ms: u64| {
        RouterError::new(ErrorKind::UpstreamTimeout, format!("model {name:?} {what} within {ms} ms"))
    };
    let upstream_request =
        Request::new_with_init(&outgoing.url, &init).map_err(|e| unreachable(e.to_string()))?;
    let signal = controller.signal();
    let sent = within(timeout_ms, Fetch::Request(upstream_request).send_with_signal(&signal)).await;
    let mut response = match sent {
        Some(result) => result.map_err(|e| unreachable(e.to_string()))?,
        None => {
            controller.abort();
            return Err(CallError::Failed(timed_out("did not start answering", timeout_ms)));
        }
    };

    let status = response.status_code();
    if !(200..300).contains(&status) {
        let header = |name: &str| response.headers().get(name).ok().flatten();
        let retry_after = parse_retry_after(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
            js_sys::Date::now() as u64,
        );
        let text = match within(idle_ms, response.text()).await {
            Some(read) => read.unwrap_or_default(),
            None => {
                // An error body that stalls is given up on, and its connection closed.
                controller.abort();
                String::new()
            }
        };
        let mut error = RouterError::from_upstream(provider_name, status, &text, &state.secret_values);
        error.retry_after_ms = retry_after;
        return Err(CallError::Failed(error));
    }
    let created = (js_sys::Date::now() / 1000.0) as u64;
    if !request.stream {
        let text = match within(idle_ms, response.text()).await {
            Some(text) => text.map_err(|e| unreachable(format!("reading the answer failed: {e}")))?,
            None => {
                controller.abort();
                return Err(CallError::Failed(timed_out("went silent while answering", idle_ms)));
            }
        };
        return providers::parse_completion(provider.kind, &text, upstream_model, created)
            .map(Body::Whole)
            .map_err(CallError::Failed);
    }

    let upstream = response.stream().map_err(|e| unreachable(e.to_string()))?;
    let include_usage = request
        .body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let relay = StreamRelay::new(
        providers::stream_translator(provider.kind, upstream_model, created),
        include_usage,
        model.price,
    );
    let mut answer = StreamAnswer {
        first: Vec::new(),
        upstream,
        relay,
        idle_ms,
        controller: Some(controller),
        secrets: state.secret_values.clone(),
        on_end: None,
        done: false,
        upstream_ended: false,
    };
    // Nothing has reached the client yet: until the stream says something (content, a tool call,
    // a finish), any failure is a fallback. The opening role chunk waits with it.
    loop {
        let left = (timeout_ms as f64 - (js_sys::Date::now() - started)).max(1.0) as u64;
        match within(left, answer.upstream.next()).await {
            Some(Some(Ok(bytes))) => {
                let relayed = answer.relay.feed(&bytes);
                if let Some(error) = relayed.error {
                    return Err(CallError::Failed(error));
                }
                answer.first.extend(relayed.bytes);
                if answer.relay.answering {
                    return Ok(Body::Stream(answer));
                }
            }
            Some(Some(Err(e))) => {
                return Err(CallError::Failed(unreachable(format!("the stream broke: {e}"))))
            }
            Some(None) => {
                answer.upstream_ended = true;
                let relayed = answer.relay.finish();
                if let Some(error) = relayed.error {
                    return Err(CallError::Failed(error));
                }
                answer.first.extend(relayed.bytes);
                answer.done = true;
                return Ok(Body::Stream(answer));
            }
            None => {
                answer.abort();
                return Err(CallError::Failed(timed_out("sent no stream event", timeout_ms)));
            }
        }
    }
}

/// Runs `future` for at most `ms` milliseconds.
async fn within<T>(ms: u64, future: impl Future<Output = T>) -> Option<T> {
    let future = Box::pin(future);
    let delay = Box::pin(Delay::from(Duration::from_millis(ms)));
    match select(future, delay).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

/// How a relayed stream ended, for the log.
pub struct StreamEnd {
    pub usage: Option<Usage>,
    pub cost_usd: Option<f64>,
    /// `complete`, `error` (an error event was sent) or `client_closed`.
    pub outcome: &'static str,
    pub error: Option<RouterError>,
}

/// A stream whose first event is in hand; the rest is relayed as the client reads.
pub struct StreamAnswer {
    first: Vec<u8>,
    upstream: ByteStream,
    relay: StreamRelay,
    idle_ms: u64,
    controller: Option<AbortController>,
    secrets: Vec<String>,
    on_end: Option<Box<dyn FnOnce(StreamEnd)>>,
    done: bool,
    /// The upstream closed its stream: nothing left to cancel.
    upstream_ended: bool,
}

impl StreamAnswer {
    /// The client's body. `on_end` runs once, when the stream ends or the client goes away.
    pub fn into_body(
        mut self,
        on_end: impl FnOnce(StreamEnd) + 'static,
    ) -> impl Stream<Item = Result<Vec<u8>, worker::Error>> + 'static {
        self.on_end = Some(Box::new(on_end));
        if self.done {
            self.end(None);
        }
        futures_util::stream::unfold(self, |mut this| async move {
            if !this.first.is_empty() {
                let first = std::mem::take(&mut this.first);
                return Some((Ok(first), this));
            }
            if this.done {
                return None;
            }
            loop {
                let out = match within(this.idle_ms, this.upstream.next()).await {
                    Some(Some(Ok(bytes))) => {
                        let relayed = this.relay.feed(&bytes);
                        match relayed.error {
                            None if relayed.bytes.is_empty() => continue,
                            None => relayed.bytes,
                            Some(e) => {
                                let mut out = relayed.bytes;
                                out.extend(this.fail(e));
                                out
                            }
                        }
                    }
                    Some(Some(Err(e))) => this.fail(RouterError::new(
                        ErrorKind::UpstreamUnreachable,
                        format!("the upstream stream broke mid-answer: {e}"),
                    )),
                    Some(None) => {
                        this.upstream_ended = true;
                        this.finish()
                    }
                    None if this.relay.complete() => {
                        // The answer is whole; the upstream just never closed the connection.
                        this.abort();
                        this.finish()
                    }
                    None => {
                        this.abort();
                        let ms = this.idle_ms;
                        this.fail(RouterError::new(
                            ErrorKind::UpstreamTimeout,
                            format!("the upstream sent nothing for {ms} ms mid-answer"),
                        ))
                    }
                };
                return Some((Ok(out), this));
            }
        })
    }

    fn finish(&mut self) -> Vec<u8> {
        let relayed = self.relay.finish();
        match relayed.error {
            None => {
                self.end(None);
                relayed.bytes
            }
            Some(e) => {
                let mut out = relayed.bytes;
                out.extend(self.fail(e));
                out
            }
        }
    }

    fn fail(&mut self, error: RouterError) -> Vec<u8> {
        let error = error.redacted(self.secrets.iter().map(String::as_str));
        let out = error_event(&error);
        self.end(Some(error));
        out
    }

    fn end(&mut self, error: Option<RouterError>) {
        self.done = true;
        if let Some(on_end) = self.on_end.take() {
            let outcome = if error.is_some() { "error" } else { "complete" };
            on_end(StreamEnd { usage: self.relay.usage(), cost_usd: self.relay.cost_usd(), outcome, error });
        }
    }

    fn abort(&mut self) {
        if let Some(controller) = self.controller.take() {
            controller.abort();
        }
    }
}

impl Drop for StreamAnswer {
    fn drop(&mut self) {
        // An upstream still sending (a stream given up on before or after its first byte, or
        // whose client went away) is cancelled, so it stops generating, and billing, at once.
        if !self.upstream_ended {
            self.abort();
        }
        // The client went away (or the runtime dropped the body) before the end.
        if let Some(on_end) = self.on_end.take() {
            on_end(StreamEnd {
                usage: self.relay.usage(),
                cost_usd: self.relay.cost_usd(),
                outcome: "client_closed",
                error: None,
            });
        }
    }
}
