//! Calling upstreams: the IO half of `core::attempts` and `core::upstream_call`.
//!
//! Which model to call, when to wait and retry, when to fall back, when a call has failed, when a
//! stream has committed and how it ends are all decided in core; this module carries the
//! decisions out: it sends each request, reads the response within the deadline each step gives,
//! aborts a fetch given up on (so the upstream stops generating, and billing), and hands a
//! committed stream's bytes to the client. It holds no timing or commit policy of its own.

use crate::core::attempts::{Action, Attempts, CallResult, Rated};
use crate::core::cascade::{self, CascadeStep, Rating};
use crate::core::config::{add_costs, Cascade};
use crate::core::decision::Decision;
use crate::core::error::{ErrorKind, RouterError};
use crate::core::fallback::Attempt;
use crate::core::providers::Completion;
use crate::core::request::ChatRequest;
use crate::core::upstream_call::{
    CallError, CommittedStream, Head, Input, Outgoing, Step, StreamEnd, StreamStep, UpstreamCall,
};
use crate::worker::state::{secret, State};
use futures_util::future::{select, Either};
use futures_util::{Stream, StreamExt};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{
    AbortController, ByteStream, Delay, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect,
    Response,
};

/// What a model answered.
pub enum Body {
    Whole(Completion),
    Stream(Box<StreamAnswer>),
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
    /// A cascade's answers, rated or not (empty without a cascade).
    pub cascade: Vec<CascadeStep>,
    /// When a cascade last gave its verdict: the answer sent was held until then.
    pub verdict_at_ms: Option<f64>,
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
    // Answers in hand: the last one, and those a cascade rated (one may still be delivered).
    let mut answers: Vec<(String, Body)> = Vec::new();
    let mut verdict_at_ms = None;
    let mut action = machine.start(now());
    loop {
        action = match action {
            Action::Call { model, timeout_ms, rated } => {
                let result = match rated_or_not(request, machine.cascade(), rated) {
                    Err(error) => CallResult::Untranslatable(error),
                    Ok(request) => {
                        match call(state, env, &request, &model, timeout_ms, Some(machine.time_left(now())))
                            .await
                        {
                            Ok(body) => {
                                answers.push((model, body));
                                CallResult::Answered
                            }
                            Err(error) => error.into(),
                        }
                    }
                };
                machine.called(result, now(), js_sys::Math::random())
            }
            Action::Wait { ms } => {
                Delay::from(Duration::from_millis(ms)).await;
                machine.waited(now())
            }
            Action::Rate { model, within_ms } => {
                let rated = rate(state, env, request, machine.cascade(), &model, &answers, within_ms).await;
                verdict_at_ms = Some(crate::worker::http::now_ms());
                machine.rated(rated, now())
            }
            Action::Deliver { model } => {
                let at = answers.iter().rposition(|(m, _)| *m == model);
                let result = match at.map(|at| answers.swap_remove(at)) {
                    Some((model, body)) => Ok(Answered { model, body }),
                    None => {
                        Err(RouterError::new(ErrorKind::Internal, "an answer was delivered before it came"))
                    }
                };
                let (attempts, cascade) = machine.into_parts();
                return Outcome { result, attempts, cascade, verdict_at_ms };
            }
            Action::Fail(error) => {
                let (attempts, cascade) = machine.into_parts();
                return Outcome { result: Err(error), attempts, cascade, verdict_at_ms };
            }
        };
    }
}

/// The request a model is sent: the client's, or, when its answer is to be rated, the
/// cascade's whole-answer form of it.
fn rated_or_not<'r>(
    request: &'r ChatRequest,
    cascade: Option<&Cascade>,
    rated: bool,
) -> Result<Cow<'r, ChatRequest>, RouterError> {
    match cascade.filter(|_| rated) {
        Some(cascade) => cascade::rated_request(request, &cascade.score).map(Cow::Owned),
        None => Ok(Cow::Borrowed(request)),
    }
}

/// Rates `model`'s answer as the cascade says (a call to the rater, or the answer's own
/// log-probabilities), within `within_ms`; with what the answer and the rating cost.
async fn rate(
    state: &State,
    env: &Env,
    request: &ChatRequest,
    cascade: Option<&Cascade>,
    model: &str,
    answers: &[(String, Body)],
    within_ms: u64,
) -> Rated {
    let config = &state.config;
    let completion = answers.iter().rev().find_map(|(m, body)| match body {
        Body::Whole(completion) if m == model => Some(completion),
        _ => None,
    });
    let (Some(cascade), Some(completion)) = (cascade, completion) else {
        return Rated { score: Err("no whole answer to rate".into()), cost_usd: None };
    };
    let answer_cost = config.cost_usd(model, completion.usage);
    let kind_of = |name: &str| config.model(name).and_then(|m| config.provider(&m.provider)).map(|p| p.kind);
    let (score, rating_cost) = match cascade::rating(cascade, model, request, &completion.body, kind_of) {
        Rating::Computed(score) => (score, None),
        Rating::Ask { model: rater, request: rating_request } => {
            let timeout = config.model(&rater).map_or(within_ms, |m| m.timeout_ms).min(within_ms);
            match complete(state, env, &rating_request, &rater, timeout).await {
                Ok(rating) => (cascade::read_grade(&rating.body), config.cost_usd(&rater, rating.usage)),
                Err(error) => (Err(format!("the rating call failed: {}", error.message)), None),
            }
        }
    };
    if let Err(reason) = &score {
        // The reason is Switchyard's words or a redacted upstream error, never the conversation.
        worker::console_log!(
            "{}",
            serde_json::json!({"event": "cascade_rating_failed", "model": model, "reason": reason})
        );
    }
    Rated { score, cost_usd: add_costs(answer_cost, rating_cost) }
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
    let model_timeout = state.config.model(name).map_or(timeout_ms, |m| m.timeout_ms);
    let error = match call(state, env, request, name, model_timeout, Some(timeout_ms)).await {
        Ok(Body::Whole(completion)) => return Ok(completion),
        Ok(Body::Stream(_)) => RouterError::new(
            ErrorKind::Internal,
            "a whole answer was asked for, and a stream came".to_string(),
        ),
        Err(error) => error.into_error(),
    };
    Err(error.redacted(state.secret_values.iter().map(String::as_str)))
}

/// One call to one model, which has `timeout_ms` to start answering (and `answer_within` ms for
/// its whole answer, if set): the steps of its [`UpstreamCall`] carried out (send, read within
/// each step's deadline, abort on failure).
async fn call(
    state: &State,
    env: &Env,
    request: &ChatRequest,
    name: &str,
    timeout_ms: u64,
    answer_within: Option<u64>,
) -> Result<Body, CallError> {
    let secrets = state.secret_values.clone();
    let (mut call, outgoing) =
        UpstreamCall::prepare(&state.config, name, request, timeout_ms, |s| secret(env, s), secrets, now())?;
    if let Some(ms) = answer_within {
        call = call.answer_within(ms, now());
    }
    let controller = AbortController::default();
    let mut connection = Connection::send(&outgoing, &controller);
    let mut step = call.start();
    loop {
        let input = match step {
            Step::AwaitHead { until_ms } => connection.head(until_ms).await,
            Step::ReadText { until_ms, max_bytes } => connection.text(until_ms, max_bytes).await,
            Step::ReadChunk { until_ms } => connection.chunk(until_ms).await,
            Step::Answered(completion) => return Ok(Body::Whole(completion)),
            Step::Committed(committed) => match connection {
                Connection::Body(upstream) => {
                    return Ok(Body::Stream(Box::new(StreamAnswer::new(committed, upstream, controller))))
                }
                _ => Input::Broken("the stream was lost".into()),
            },
            Step::Failed(error) => {
                controller.abort();
                return Err(CallError::Failed(error));
            }
        };
        step = call.on(input, now());
    }
}

/// The platform's clock, in milliseconds.
fn now() -> u64 {
    js_sys::Date::now() as u64
}

/// An upstream request in flight: sent, its head in, or its body being read.
enum Connection {
    Sending(Pin<Box<dyn Future<Output = worker::Result<Response>>>>),
    Head(Response),
    Body(ByteStream),
    /// The request could not be made, or its body was read whole.
    Gone(String),
}

impl Connection {
    fn send(outgoing: &Outgoing, controller: &AbortController) -> Connection {
        let headers = Headers::new();
        for (header, value) in &outgoing.headers {
            let _ = headers.set(header, value);
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(JsValue::from_str(&outgoing.body)))
            // A redirect would carry the upstream key to another host: it is an error instead.
            .with_redirect(RequestRedirect::Manual);
        match Request::new_with_init(&outgoing.url, &init) {
            Ok(request) => {
                let signal = controller.signal();
                Connection::Sending(Box::pin(async move {
                    Fetch::Request(request).send_with_signal(&signal).await
                }))
            }
            Err(e) => Connection::Gone(e.to_string()),
        }
    }

    async fn head(&mut self, until_ms: u64) -> Input {
        let Connection::Sending(sending) = self else { return self.gone() };
        match within_until(until_ms, sending).await {
            None => Input::TimedOut,
            Some(Err(e)) => Input::Broken(e.to_string()),
            Some(Ok(response)) => {
                let header = |name: &str| response.headers().get(name).ok().flatten();
                let head = Head {
                    status: response.status_code(),
                    retry_after_ms: header("retry-after-ms"),
                    retry_after: header("retry-after"),
                };
                *self = Connection::Head(response);
                Input::Head(head)
            }
        }
    }

    /// The whole body as text, read until `until_ms` and no further than `max_bytes`.
    async fn text(&mut self, until_ms: u64, max_bytes: usize) -> Input {
        let Connection::Head(response) = self else { return self.gone() };
        let input = match response.stream() {
            Err(e) => Input::Broken(e.to_string()),
            Ok(mut body) => {
                within_until(until_ms, read_limited(&mut body, max_bytes)).await.unwrap_or(Input::TimedOut)
            }
        };
        *self = Connection::Gone("the body was read".into());
        input
    }

    async fn chunk(&mut self, until_ms: u64) -> Input {
        if let Connection::Head(response) = self {
            *self = match response.stream() {
                Ok(body) => Connection::Body(body),
                Err(e) => Connection::Gone(e.to_string()),
            };
        }
        match self {
            Connection::Body(body) => next_chunk(body, until_ms).await,
            _ => self.gone(),
        }
    }

    fn gone(&self) -> Input {
        match self {
            Connection::Gone(detail) => Input::Broken(detail.clone()),
            _ => Input::Broken("the response was read out of turn".into()),
        }
    }
}

/// A body read to its end as text (UTF-8, invalid bytes replaced), or `TooLarge` once it passes
/// `max_bytes`.
async fn read_limited(body: &mut ByteStream, max_bytes: usize) -> Input {
    match super::body::read_at_most(body, max_bytes, 0).await {
        Err(e) => Input::Broken(e.to_string()),
        Ok(None) => Input::TooLarge,
        Ok(Some(bytes)) => Input::Text(
            String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ),
    }
}

/// The next bytes of an upstream body, read until `until_ms`.
async fn next_chunk(body: &mut ByteStream, until_ms: u64) -> Input {
    match within_until(until_ms, body.next()).await {
        None => Input::TimedOut,
        Some(None) => Input::End,
        Some(Some(Ok(bytes))) => Input::Chunk(bytes),
        Some(Some(Err(e))) => Input::Broken(e.to_string()),
    }
}

/// Runs `future` until `until_ms` on the platform's clock (at least 1 ms).
async fn within_until<T>(until_ms: u64, future: impl Future<Output = T>) -> Option<T> {
    let future = Box::pin(future);
    let delay = Box::pin(Delay::from(Duration::from_millis(until_ms.saturating_sub(now()).max(1))));
    match select(future, delay).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

/// A committed stream: its first events in hand, the rest relayed as the client reads. What to
/// send and when it ends is its [`CommittedStream`]'s decision; this reads the upstream within
/// each deadline, aborts the fetch when told, and reports the end.
pub struct StreamAnswer {
    stream: CommittedStream,
    upstream: ByteStream,
    /// Taken when used: aborting is once.
    controller: Option<AbortController>,
    on_end: Option<Box<dyn FnOnce(StreamEnd)>>,
    /// The deadline of the next read; `None` once the stream has ended.
    read_until: Option<u64>,
}

impl StreamAnswer {
    fn new(stream: CommittedStream, upstream: ByteStream, controller: AbortController) -> StreamAnswer {
        StreamAnswer { stream, upstream, controller: Some(controller), on_end: None, read_until: None }
    }

    /// The client's body. `on_end` runs once, when the stream ends or the client goes away.
    pub fn into_body(
        mut self,
        on_end: impl FnOnce(StreamEnd) + 'static,
    ) -> impl Stream<Item = Result<Vec<u8>, worker::Error>> + 'static {
        self.on_end = Some(Box::new(on_end));
        let step = self.stream.start(now());
        let said = self.carry_out(step);
        futures_util::stream::unfold((self, said), |(mut this, said)| async move {
            if !said.is_empty() {
                return Some((Ok(said), (this, Vec::new())));
            }
            loop {
                let input = next_chunk(&mut this.upstream, this.read_until?).await;
                let step = this.stream.on(input, now());
                let bytes = this.carry_out(step);
                if !bytes.is_empty() {
                    return Some((Ok(bytes), (this, Vec::new())));
                }
            }
        })
    }

    /// Carries out `step`; the bytes for the client.
    fn carry_out(&mut self, step: StreamStep) -> Vec<u8> {
        match step {
            StreamStep::Relay { bytes, until_ms } => {
                self.read_until = Some(until_ms);
                bytes
            }
            StreamStep::End { bytes, abort, end } => {
                self.read_until = None;
                if abort {
                    self.abort();
                }
                if let Some(on_end) = self.on_end.take() {
                    on_end(end);
                }
                bytes
            }
            StreamStep::Over => {
                self.read_until = None;
                Vec::new()
            }
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
        // The client went away (or the runtime dropped the body) before the end: the upstream,
        // still sending, is cancelled so it stops generating, and billing, at once.
        if let Some(end) = self.stream.client_closed() {
            self.abort();
            if let Some(on_end) = self.on_end.take() {
                on_end(end);
            }
        }
    }
}
