//! One call to one model, as a sans-IO state machine: the request it sends, every decision
//! between sending it and the commit point, where the answer becomes the client's, and how a
//! committed stream is relayed and ends.
//!
//! Why a machine: when a call has failed, and whether it may still be replaced by another
//! model's answer, is the subtle part of a router, and it depends on time. Here it is decided
//! from inputs alone (the response's head, its body whole or chunk by chunk, its end, a deadline
//! that passed, a broken connection) and the platform's clock, so native tests drive every case
//! with a fake clock. The platform only fetches, reads each step with the deadline it is given,
//! and aborts the fetch when told the call failed, so an upstream given up on stops generating
//! (and billing) at once.
//!
//! The policy:
//! - the time a model has to start answering (`timeout_ms`: its own, else `[upstream]`'s,
//!   clipped by the request's deadline) is shared by the response head and, for a stream, its
//!   first event that says something;
//! - a whole body, or an error body, that sends nothing for `[upstream] idle_timeout_ms` is given
//!   up on (an error body keeps its status; a silent answer is a timeout);
//! - every read, a committed stream's included, is also clipped to the whole answer's deadline
//!   ([`UpstreamCall::answer_within`]: what is left of the request's), so neither a body that
//!   trickles nor a stream kept alive by keep-alive comments holds the client past it;
//! - a stream commits once it says something (content, a tool call, a refusal, reasoning, a
//!   finish): its opening role-only chunk does not, so a model that opens a stream and then
//!   fails or stalls is still replaced, unseen by the client;
//! - an error event before the commit point is a failure of the status it stands for (an
//!   Anthropic `overloaded_error` is retried like a 503);
//! - after the commit point ([`CommittedStream`]) a failure can no longer be replaced: a cut, an
//!   error event, garbage or `idle_timeout_ms` of silence ends the stream with an OpenAI error
//!   event and no `[DONE]`, and the fetch is aborted; a whole answer whose connection lingers
//!   ends complete; a client that goes away ends it as `client_closed` with the usage so far.
//!   Each stream reports its [`StreamEnd`] exactly once. Before and after the commit point, a
//!   chunk goes through the same relay step (`hear`).
//!
//! ```text
//!  start ─► AwaitHead ─2xx, whole──► ReadText ─────────────────────────► Answered(completion)
//!              │      └─2xx, stream─► ReadChunk ⟲ role-only chunks ─said something─► Committed
//!              └─other status─► ReadText (the error body) ──────────────► Failed(its status)
//!  a deadline passed, a broken connection, an error event or garbage before commit ─► Failed
//!
//!  Committed ─start─► Relay ⟲ each chunk (idle_timeout_ms more) ─end of a whole answer─► End(complete)
//!                        └─ cut, error event, garbage, silence ─► End(error: error event, abort)
//!  the client goes away before the end ─► End(client_closed, abort), once
//! ```

use crate::core::attempts::CallResult;
use crate::core::config::{Config, ProviderKind};
use crate::core::error::{parse_retry_after, ErrorKind, RouterError};
use crate::core::providers::{self, Completion, Target, Usage};
use crate::core::relay::{error_event, StreamRelay};
use crate::core::request::ChatRequest;

/// The HTTP request to send (POST).
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub url: String,
    /// The API's own headers, then the provider's configured ones with their secrets' values.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// The most of an error body that is read: its message is what is wanted of it.
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// The most of a whole answer that is read: far above any answer's text, even with every token's
/// log-probabilities; past it, the answer is malformed and the next model is tried.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;
/// The most a stream may send before it says anything (role-only chunks, comments): bytes held
/// back until the commit point, which a stream that never commits must not grow without end.
pub const MAX_UNCOMMITTED_BYTES: usize = 256 * 1024;

/// Why a call did not answer.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The model was called (or could not be: an unknown model, a missing secret) and failed.
    Failed(RouterError),
    /// The model was not called: the request cannot be put in its API.
    Untranslatable(RouterError),
}

impl CallError {
    pub fn into_error(self) -> RouterError {
        match self {
            CallError::Failed(error) | CallError::Untranslatable(error) => error,
        }
    }
}

impl From<CallError> for CallResult {
    fn from(error: CallError) -> CallResult {
        match error {
            CallError::Failed(error) => CallResult::Failed(error),
            CallError::Untranslatable(error) => CallResult::Untranslatable(error),
        }
    }
}

/// What the platform saw, reported with [`UpstreamCall::on`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The response's status and retry headers arrived.
    Head(Head),
    /// The whole body, read as text.
    Text(String),
    /// The body's next bytes.
    Chunk(Vec<u8>),
    /// The body ended.
    End,
    /// The step's deadline passed with nothing read.
    TimedOut,
    /// The body passed the step's `max_bytes`; the rest was not read.
    TooLarge,
    /// The connection failed (refused, reset, or broken mid-body), with the platform's detail.
    Broken(String),
}

/// The part of a response head the call reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Head {
    pub status: u16,
    /// The `retry-after-ms` header.
    pub retry_after_ms: Option<String>,
    /// The `retry-after` header.
    pub retry_after: Option<String>,
}

/// What the platform is to do next. Deadlines are on the clock passed to [`UpstreamCall::on`].
pub enum Step {
    /// Wait for the response's head until `until_ms`.
    AwaitHead { until_ms: u64 },
    /// Read the whole body as text until `until_ms`, giving up ([`Input::TooLarge`]) once it
    /// passes `max_bytes`.
    ReadText { until_ms: u64, max_bytes: usize },
    /// Read the body's next bytes until `until_ms`.
    ReadChunk { until_ms: u64 },
    /// A whole answer: the call is over.
    Answered(Completion),
    /// The stream said something: it is the client's now, relayed by the [`CommittedStream`].
    Committed(CommittedStream),
    /// The call failed: abort the fetch and report the error.
    Failed(RouterError),
}

/// A stream past its commit point: relays the rest to the client and decides how it ends.
pub struct CommittedStream {
    relay: StreamRelay,
    /// Everything the stream said up to the commit point, for the client first.
    said: Vec<u8>,
    /// The upstream already ended its stream whole (and the relay has finished it).
    upstream_ended: bool,
    /// The longest the stream may stay silent.
    idle_ms: u64,
    /// When the whole answer must be in (the request's deadline): a stream kept alive past it,
    /// by content or by keep-alive comments, ends there.
    answer_by: AnswerBy,
    /// Values scrubbed from the error that ends a failed stream.
    secrets: Vec<String>,
    over: bool,
}

/// What the platform is to do after a committed stream's input.
#[derive(Debug, PartialEq)]
pub enum StreamStep {
    /// Send `bytes` (perhaps none) to the client, then read the next chunk until `until_ms`.
    Relay { bytes: Vec<u8>, until_ms: u64 },
    /// Send `bytes`, the stream's last; abort the fetch if `abort` (the upstream may still be
    /// generating); report `end`.
    End { bytes: Vec<u8>, abort: bool, end: StreamEnd },
    /// The stream had already ended: nothing to do.
    Over,
}

/// How a committed stream ended, for the log: reported exactly once.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEnd {
    pub outcome: StreamOutcome,
    /// The usage the upstream reported so far.
    pub usage: Option<Usage>,
    pub cost_usd: Option<f64>,
    /// Why the stream failed (redacted), when it did.
    pub error: Option<RouterError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// The answer was whole and `[DONE]` was sent.
    Complete,
    /// The stream failed and ended with an error event.
    Error,
    /// The client went away before the end.
    ClientClosed,
}

impl StreamOutcome {
    /// Its name in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamOutcome::Complete => "complete",
            StreamOutcome::Error => "error",
            StreamOutcome::ClientClosed => "client_closed",
        }
    }
}

/// One call to one model.
pub struct UpstreamCall {
    model: String,
    provider: String,
    kind: ProviderKind,
    upstream_model: String,
    stream: bool,
    include_usage: bool,
    price: crate::core::config::Price,
    timeout_ms: u64,
    idle_ms: u64,
    secrets: Vec<String>,
    /// When the model must have started answering (its head and, for a stream, its commit).
    start_by_ms: u64,
    /// When the whole answer must be in, if the caller set a time ([`UpstreamCall::answer_within`]).
    answer_by: AnswerBy,
    phase: Phase,
}

enum Phase {
    /// The request is sent; no head yet.
    Sent,
    /// A status other than 2xx: reading the error body.
    ErrorBody { status: u16, retry_after_ms: Option<u64> },
    /// A 2xx to a request not streamed: reading the answer.
    WholeBody { created: u64 },
    /// A 2xx stream that has not said anything yet.
    Opening { relay: Box<StreamRelay>, said: Vec<u8> },
    /// Answered, committed or failed.
    Over,
}

impl UpstreamCall {
    /// The call of model `name` (a key of `[models]`) for `request`, which has `timeout_ms` to
    /// start answering from `now_ms`, and the request to send; or why it cannot be sent.
    /// `secret` reads a secret's value by name; `secrets` are the values to scrub from errors.
    pub fn prepare(
        config: &Config,
        name: &str,
        request: &ChatRequest,
        timeout_ms: u64,
        secret: impl Fn(&str) -> Option<String>,
        secrets: Vec<String>,
        now_ms: u64,
    ) -> Result<(UpstreamCall, Outgoing), CallError> {
        let unknown = |what: &str| {
            CallError::Failed(RouterError::new(
                ErrorKind::Internal,
                format!("model {name:?} names an unknown {what}"),
            ))
        };
        let model = config.model(name).ok_or_else(|| unknown("model"))?;
        let provider = config.provider(&model.provider).ok_or_else(|| unknown("provider"))?;
        if let Some(missing) = provider.secret_names().find(|secret_name| secret(secret_name).is_none()) {
            return Err(CallError::Failed(RouterError::new(
                ErrorKind::Configuration,
                format!("the secret {missing} that model {name:?} needs is not set"),
            )));
        }
        let api_key = provider.api_key.as_deref().and_then(&secret);
        let target = Target {
            kind: provider.kind,
            base_url: &provider.base_url,
            api_key: api_key.as_deref(),
            model: &model.upstream,
            default_max_tokens: model.max_output_tokens,
        };
        let built = providers::build_request(&target, request).map_err(CallError::Untranslatable)?;
        let mut headers: Vec<(String, String)> =
            built.headers.into_iter().map(|(header, value)| (header.to_string(), value)).collect();
        for (header, secret_name) in &provider.headers {
            headers.extend(secret(secret_name).map(|value| (header.clone(), value)));
        }
        let include_usage = request.include_usage();
        let call = UpstreamCall {
            model: name.to_string(),
            provider: model.provider.clone(),
            kind: provider.kind,
            upstream_model: model.upstream.clone(),
            stream: request.stream,
            include_usage,
            price: model.price,
            timeout_ms,
            idle_ms: config.upstream.idle_timeout_ms,
            secrets,
            start_by_ms: now_ms.saturating_add(timeout_ms),
            answer_by: AnswerBy::NEVER,
            phase: Phase::Sent,
        };
        Ok((call, Outgoing { url: built.url, headers, body: built.body }))
    }

    /// The call, which must have its whole answer within `ms` of `now_ms` (what is left of the
    /// request's deadline; less for the LLM router's call, which routing must not wait on for
    /// long): every deadline is clipped to that, a committed stream's too.
    pub fn answer_within(mut self, ms: u64, now_ms: u64) -> UpstreamCall {
        let by = AnswerBy { at_ms: now_ms.saturating_add(ms), ms };
        if by.at_ms < self.answer_by.at_ms {
            self.answer_by = by;
        }
        self
    }

    /// The first step, once the request is sent: wait for its head.
    pub fn start(&self) -> Step {
        Step::AwaitHead { until_ms: self.answer_by.clip(self.start_by_ms) }
    }

    /// What the last step brought, at `now_ms`: the next step.
    pub fn on(&mut self, input: Input, now_ms: u64) -> Step {
        if matches!(input, Input::TimedOut) && self.answer_by.passed(now_ms) {
            let ms = self.answer_by.ms;
            return self.failed(self.timed_out(format!("did not answer within {ms} ms")));
        }
        match (std::mem::replace(&mut self.phase, Phase::Over), input) {
            (Phase::Sent, Input::Head(head)) => self.head(head, now_ms),
            (Phase::Sent, Input::TimedOut) => {
                self.failed(self.timed_out(format!("did not start answering within {} ms", self.timeout_ms)))
            }
            (Phase::ErrorBody { status, retry_after_ms }, input) => {
                let text = match input {
                    Input::Text(text) if text.len() <= MAX_ERROR_BODY_BYTES => text,
                    Input::Text(_) | Input::TooLarge => {
                        format!("(an error body over {MAX_ERROR_BODY_BYTES} bytes, not read)")
                    }
                    // An error body that stalls or breaks is given up on; its status stays.
                    _ => String::new(),
                };
                let mut error = RouterError::from_upstream(&self.provider, status, &text, &self.secrets);
                error.retry_after_ms = retry_after_ms;
                self.failed(error)
            }
            (Phase::WholeBody { .. }, Input::TooLarge) => self.failed(self.too_large()),
            (Phase::WholeBody { .. }, Input::Text(text)) if text.len() > MAX_ANSWER_BYTES => {
                self.failed(self.too_large())
            }
            (Phase::WholeBody { created }, Input::Text(text)) => {
                match providers::parse_completion(self.kind, &text, &self.upstream_model, created) {
                    Ok(completion) => Step::Answered(completion),
                    Err(error) => self.failed(error),
                }
            }
            (Phase::WholeBody { .. }, Input::TimedOut) => {
                self.failed(self.timed_out(format!("went silent for {} ms while answering", self.idle_ms)))
            }
            (Phase::WholeBody { .. }, Input::Broken(detail)) => {
                self.failed(self.unreachable(&format!("reading the answer failed: {detail}")))
            }
            (Phase::Opening { relay, said }, input) => self.opening(relay, said, input),
            (_, Input::Broken(detail)) => self.failed(self.unreachable(&detail)),
            (_, input) => self.failed(self.out_of_turn(input.name())),
        }
    }

    fn head(&mut self, head: Head, now_ms: u64) -> Step {
        if !(200..300).contains(&head.status) {
            let retry_after_ms =
                parse_retry_after(head.retry_after_ms.as_deref(), head.retry_after.as_deref(), now_ms);
            self.phase = Phase::ErrorBody { status: head.status, retry_after_ms };
            let until_ms = self.answer_by.clip(now_ms.saturating_add(self.idle_ms));
            return Step::ReadText { until_ms, max_bytes: MAX_ERROR_BODY_BYTES };
        }
        let created = now_ms / 1000;
        if !self.stream {
            self.phase = Phase::WholeBody { created };
            let until_ms = self.answer_by.clip(now_ms.saturating_add(self.idle_ms));
            return Step::ReadText { until_ms, max_bytes: MAX_ANSWER_BYTES };
        }
        let translator = providers::stream_translator(self.kind, &self.upstream_model, created);
        let relay = StreamRelay::new(translator, self.include_usage, self.price);
        self.phase = Phase::Opening { relay: Box::new(relay), said: Vec::new() };
        Step::ReadChunk { until_ms: self.answer_by.clip(self.start_by_ms) }
    }

    /// A stream before its commit point: any failure is the call's, and still replaceable.
    fn opening(&mut self, mut relay: Box<StreamRelay>, mut said: Vec<u8>, input: Input) -> Step {
        let upstream_ended = match hear(&mut relay, input) {
            Heard::Said { bytes, ended } => {
                said.extend(bytes);
                ended
            }
            Heard::Failed { error, .. } => return self.failed(error),
            Heard::Silent => {
                let error = format!("sent no stream event within {} ms", self.timeout_ms);
                return self.failed(self.timed_out(error));
            }
            Heard::Broken(detail) => {
                return self.failed(self.unreachable(&format!("the stream broke: {detail}")))
            }
            Heard::OutOfTurn(what) => return self.failed(self.out_of_turn(what)),
        };
        if said.len() > MAX_UNCOMMITTED_BYTES {
            let error = format!(
                "model {:?} streamed {MAX_UNCOMMITTED_BYTES} bytes without saying anything",
                self.model
            );
            return self.failed(RouterError::new(ErrorKind::UpstreamMalformed, error));
        }
        if relay.answering || upstream_ended {
            return Step::Committed(CommittedStream {
                relay: *relay,
                said,
                upstream_ended,
                idle_ms: self.idle_ms,
                answer_by: self.answer_by,
                secrets: std::mem::take(&mut self.secrets),
                over: false,
            });
        }
        self.phase = Phase::Opening { relay, said };
        Step::ReadChunk { until_ms: self.answer_by.clip(self.start_by_ms) }
    }

    fn out_of_turn(&self, what: &str) -> RouterError {
        RouterError::new(
            ErrorKind::Internal,
            format!("the call of model {:?} got {what} out of turn", self.model),
        )
    }

    fn failed(&mut self, error: RouterError) -> Step {
        self.phase = Phase::Over;
        Step::Failed(error)
    }

    /// `deadline_ms`, clipped to the whole answer's deadline.
    fn too_large(&self) -> RouterError {
        RouterError::new(
            ErrorKind::UpstreamMalformed,
            format!("model {:?} answered more than {MAX_ANSWER_BYTES} bytes", self.model),
        )
    }

    fn timed_out(&self, what: String) -> RouterError {
        RouterError::new(ErrorKind::UpstreamTimeout, format!("model {:?} {what}", self.model))
    }

    fn unreachable(&self, detail: &str) -> RouterError {
        RouterError::new(
            ErrorKind::UpstreamUnreachable,
            // Not the base URL: clients get this message, and where the upstreams are is the
            // operator's business.
            format!("could not reach upstream {:?}: {detail}", self.provider),
        )
    }
}

impl Input {
    /// What it is, for an error about it.
    fn name(&self) -> &'static str {
        match self {
            Input::Head(_) => "a response head",
            Input::Text(_) => "a whole body",
            Input::Chunk(_) => "a chunk",
            Input::End => "the end of the body",
            Input::TimedOut => "a timeout",
            Input::TooLarge => "a body too large",
            Input::Broken(_) => "a broken connection",
        }
    }
}

/// What one input did to a stream, before or after its commit point: the relay step both
/// share.
enum Heard {
    /// The upstream said `bytes` (perhaps none); `ended`: it closed its stream, whole.
    Said {
        bytes: Vec<u8>,
        ended: bool,
    },
    /// The stream failed (an error event, garbage, a cut): the bytes relayed before, and why.
    Failed {
        bytes: Vec<u8>,
        error: RouterError,
    },
    /// Nothing came before the deadline.
    Silent,
    Broken(String),
    /// An input a stream never gets.
    OutOfTurn(&'static str),
}

fn hear(relay: &mut StreamRelay, input: Input) -> Heard {
    let (relayed, ended) = match input {
        Input::Chunk(bytes) => (relay.feed(&bytes), false),
        Input::End => (relay.finish(), true),
        Input::TimedOut => return Heard::Silent,
        Input::Broken(detail) => return Heard::Broken(detail),
        other => return Heard::OutOfTurn(other.name()),
    };
    match relayed.error {
        None => Heard::Said { bytes: relayed.bytes, ended },
        Some(error) => Heard::Failed { bytes: relayed.bytes, error },
    }
}

/// When a call's whole answer must be in, and the time that gave it (for the error that says
/// so). One value clips every read's deadline, a committed stream's too.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AnswerBy {
    at_ms: u64,
    ms: u64,
}

impl AnswerBy {
    /// No deadline set: nothing is clipped, nothing passes.
    const NEVER: AnswerBy = AnswerBy { at_ms: u64::MAX, ms: u64::MAX };

    /// `until_ms`, or this deadline where it comes first.
    fn clip(self, until_ms: u64) -> u64 {
        self.at_ms.min(until_ms)
    }

    fn passed(self, now_ms: u64) -> bool {
        now_ms >= self.at_ms
    }

    /// The error that ends a stream still going at this deadline.
    fn passed_error(self) -> RouterError {
        RouterError::new(
            ErrorKind::UpstreamTimeout,
            format!("the answer ran past the {} ms it had ([upstream] request_deadline_ms)", self.ms),
        )
    }
}

impl CommittedStream {
    /// The first step, when the client starts reading: what was said up to the commit point.
    pub fn start(&mut self, now_ms: u64) -> StreamStep {
        if self.over {
            return StreamStep::Over;
        }
        let said = std::mem::take(&mut self.said);
        if self.upstream_ended {
            return self.end(said, false, StreamOutcome::Complete, None);
        }
        StreamStep::Relay { bytes: said, until_ms: self.until(now_ms) }
    }

    /// When the next read gives up: after `idle_ms` of silence, or at the answer's deadline.
    fn until(&self, now_ms: u64) -> u64 {
        self.answer_by.clip(now_ms.saturating_add(self.idle_ms))
    }

    /// What the platform read; what to send and do next.
    pub fn on(&mut self, input: Input, now_ms: u64) -> StreamStep {
        if self.over {
            return StreamStep::Over;
        }
        match hear(&mut self.relay, input) {
            // A stream that keeps talking is read without pause: the deadline is checked here
            // as well as when a read times out.
            Heard::Said { bytes, ended: false } if self.answer_by.passed(now_ms) => {
                self.fail(bytes, self.answer_by.passed_error())
            }
            Heard::Said { bytes, ended: false } => StreamStep::Relay { bytes, until_ms: self.until(now_ms) },
            Heard::Said { bytes, ended: true } => self.end(bytes, false, StreamOutcome::Complete, None),
            Heard::Failed { bytes, error } => self.fail(bytes, error),
            Heard::Silent if self.relay.complete() => {
                // The answer is whole; the upstream just never closed the connection.
                let relayed = self.relay.finish();
                match relayed.error {
                    None => self.end(relayed.bytes, true, StreamOutcome::Complete, None),
                    Some(error) => self.fail(relayed.bytes, error),
                }
            }
            Heard::Silent => {
                let error = if self.answer_by.passed(now_ms) {
                    self.answer_by.passed_error()
                } else {
                    RouterError::new(
                        ErrorKind::UpstreamTimeout,
                        format!("the upstream sent nothing for {} ms mid-answer", self.idle_ms),
                    )
                };
                self.fail(Vec::new(), error)
            }
            Heard::Broken(detail) => {
                let error = format!("the upstream stream broke mid-answer: {detail}");
                self.fail(Vec::new(), RouterError::new(ErrorKind::UpstreamUnreachable, error))
            }
            Heard::OutOfTurn(what) => {
                let error = format!("a committed stream got {what}");
                self.fail(Vec::new(), RouterError::new(ErrorKind::Internal, error))
            }
        }
    }

    /// The client went away: the end to report (with the usage so far) and a fetch to abort,
    /// unless the stream had already ended.
    pub fn client_closed(&mut self) -> Option<StreamEnd> {
        match self.end(Vec::new(), true, StreamOutcome::ClientClosed, None) {
            StreamStep::End { end, .. } => Some(end),
            _ => None,
        }
    }

    /// The bytes relayed before the failure, then its error event; the fetch is aborted.
    fn fail(&mut self, mut bytes: Vec<u8>, error: RouterError) -> StreamStep {
        let error = error.redacted(self.secrets.iter().map(String::as_str));
        bytes.extend(error_event(&error));
        self.end(bytes, true, StreamOutcome::Error, Some(error))
    }

    fn end(
        &mut self,
        bytes: Vec<u8>,
        abort: bool,
        outcome: StreamOutcome,
        error: Option<RouterError>,
    ) -> StreamStep {
        if std::mem::replace(&mut self.over, true) {
            return StreamStep::Over;
        }
        let end = StreamEnd { outcome, usage: self.relay.usage(), cost_usd: self.relay.cost_usd(), error };
        StreamStep::End { bytes, abort, end }
    }
}
