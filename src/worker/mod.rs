//! The Cloudflare Worker: parse, call the core, do the IO. Nothing here decides anything.
//!
//! Every request ends in a `Response`: errors of any origin become OpenAI-style error JSON with
//! their status, CORS headers are added for allowed origins, and routed responses carry the
//! decision headers and `Server-Timing`, streaming ones included (headers leave before the body).

mod body;
mod conversation;
mod decision_log;
mod http;
mod llm_router;
mod playground;
mod semantic;
mod state;
mod upstream;

use crate::core::admin_api::DecisionQuery;
use crate::core::api::{models_json, route_json};
use crate::core::cascade;
use crate::core::config::{add_costs, RoutingEncoderChoice};
use crate::core::decision::{Decision, SemanticSignal};
use crate::core::decision_log::Answer;
use crate::core::embeddings_api::{embeddings_json, EmbeddingsRequest};
use crate::core::error::{ErrorKind, Origin, RouterError};
use crate::core::fallback;
use crate::core::feedback::{Feedback, Rating};
use crate::core::headers::{self, answer_headers, decision_headers, format_cost};
use crate::core::pipeline;
use crate::core::relay;
use crate::core::request::ChatRequest;
use crate::core::stats::StatsQuery;
use crate::core::timing::{server_timing, Phase, Stopwatch};
use crate::embed::DIMENSIONS;
use http::now_ms;
use serde_json::json;
use state::State;
use std::rc::Rc;
use upstream::{Answered, Body};
use worker::{event, Context, Env, Headers, Method, Request, Response, ScheduleContext, ScheduledEvent};

/// `GET /v1/admin/conversations/{id}`: one conversation's state (admin key).
const CONVERSATIONS_PATH: &str = "/v1/admin/conversations/";

#[event(fetch)]
pub async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    // The page is served whatever the config: it shows the API's errors, a broken config's too.
    if let Some(asset) = crate::core::playground::asset_path(&req.path()) {
        return Ok(playground::serve(&env, req.method(), &asset).await);
    }
    let origin = req.headers().get("origin").ok().flatten();
    let state = state::get(&env);
    if let Ok(state) = &state {
        warm_up(&ctx, &env, state);
    }
    let mut response = match &state {
        Ok(state) => handle(req, &env, state, &ctx).await.unwrap_or_else(|e| {
            log_error(&e);
            http::error(&e)
        }),
        Err(e) => {
            log_error(e);
            http::error(e)
        }
    };
    if let Ok(state) = &state {
        http::set_headers(&mut response, state.cors.response_headers(origin.as_deref()));
    }
    Ok(response)
}

/// The cron trigger (wrangler.toml `[triggers]`): deletes decision-log rows past their retention.
#[event(scheduled)]
pub async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    match state::get(&env) {
        Ok(state) => decision_log::delete_expired(&env, state.config.log.retention_days).await,
        Err(e) => log_error(&e),
    }
}

/// Starts loading the routing model (encoder, index, classifier) at the isolate's first request of
/// any kind, in the background (`wait_until`: the response does not wait), so that the first
/// request that needs it finds it loaded or already loading. Only when the config embeds.
fn warm_up(ctx: &Context, env: &Env, state: &Rc<State>) {
    if state.config.uses_embeddings() && semantic::claim_warm_up() {
        let (env, state) = (env.clone(), Rc::clone(state));
        ctx.wait_until(async move {
            // A failure is remembered and logged by `engine`; requests then route without it.
            let _ = semantic::engine(&env, &state.config).await;
        });
    }
}

async fn handle(mut req: Request, env: &Env, state: &State, ctx: &Context) -> Result<Response, RouterError> {
    let started = now_ms();
    let path = req.path();
    let method = req.method();
    if method == Method::Options {
        return preflight(&req, state);
    }
    let known = [
        "/healthz",
        "/v1/models",
        "/v1/chat/completions",
        "/v1/route",
        "/v1/embeddings",
        "/v1/feedback",
        "/v1/admin/decisions",
        "/v1/stats",
    ];
    match (method, path.as_str()) {
        (Method::Get, "/healthz") => Ok(health(state, shows_details(&req, state))),
        (Method::Get, "/v1/models") => {
            authorize(&req, state)?;
            Ok(http::json(200, &models_json(&state.config)))
        }
        (Method::Post, "/v1/route") => {
            authorize(&req, state)?;
            let header = |name: &str| req.headers().get(name).ok().flatten();
            let asked = (header(headers::CONVERSATION), header("authorization"));
            let (request, decision, mut phases) = decide(&mut req, env, state, started).await?;
            // A dry run: the conversation is read, not counted.
            let conversed = converse(env, state, asked, &request, decision, &mut phases, Record::No).await?;
            let decision = conversed.decision;
            let plan =
                fallback::plan(&state.config, &decision, &request, |name| state::secret(env, name).is_some());
            let mut answer = route_json(&state.config, &decision, &phases, &plan);
            if let (Some(settings), Some(id), Some(standing)) =
                (&state.config.conversation, &conversed.id, &conversed.state)
            {
                answer["conversation"] = crate::core::conversation::standing_json(id, standing, settings);
            }
            let mut response = http::json(200, &answer);
            annotate(&mut response, &decision, &phases);
            if let Some(cost) = decision.signals.llm.cost_usd() {
                http::set_headers(&mut response, [(headers::COST_USD, format_cost(cost))]);
            }
            Ok(response)
        }
        (Method::Post, "/v1/chat/completions") => {
            authorize(&req, state)?;
            let header = |name: &str| req.headers().get(name).ok().flatten();
            let asked = (header(headers::CONVERSATION), header("authorization"));
            let (request, decision, mut phases) = decide(&mut req, env, state, started).await?;
            let conversed = converse(env, state, asked, &request, decision, &mut phases, Record::Yes).await?;
            Ok(chat(state, env, ctx, request, conversed.decision, phases, conversed.id).await)
        }
        (Method::Post, "/v1/feedback") => {
            authorize(&req, state)?;
            let bytes = body::read_limited(&mut req, state.config.server.max_body_bytes).await?;
            let feedback = Feedback::parse(&bytes, &state.config)?;
            let counts = feedback.rating == Rating::Bad && state.config.conversation.is_some();
            // Read before the rating is stored: was this answer rated bad already?
            let target = if counts {
                Some(decision_log::conversation_of(env, &feedback.decision_id).await)
            } else {
                None
            };
            decision_log::store_feedback(env, &feedback).await?;
            let mut stored = feedback.stored_json();
            if let Some(target) = target {
                stored["conversation"] = json!(bad_rating_to_conversation(env, target).await);
            }
            Ok(http::json(200, &stored))
        }
        (Method::Get, "/v1/admin/decisions") => {
            authorize_admin(&req, state)?;
            let query = DecisionQuery::parse(&query_of(&req)?)?;
            let (lines, next) = decision_log::read_page(env, &query).await?;
            let mut response = http::json_lines(lines);
            http::set_headers(&mut response, next.map(|cursor| (headers::NEXT_CURSOR, cursor)));
            Ok(response)
        }
        (Method::Get, "/v1/stats") => {
            authorize_admin(&req, state)?;
            let query = StatsQuery::parse(&query_of(&req)?)?;
            Ok(http::json(200, &decision_log::stats(env, &state.config, &query).await?))
        }
        (Method::Get, p) if p.starts_with(CONVERSATIONS_PATH) => {
            authorize_admin(&req, state)?;
            if state.config.conversation.is_none() {
                return Err(RouterError::new(
                    ErrorKind::NotFound,
                    "conversations are off: the config has no [conversation] section",
                ));
            }
            let id = crate::core::conversation::admin_id(&p[CONVERSATIONS_PATH.len()..])?;
            Ok(http::json(200, &conversation::read(env, &id).await?))
        }
        (Method::Post, "/v1/embeddings") => {
            authorize(&req, state)?;
            embeddings(&mut req, env, state, started).await
        }
        (_, p) if known.contains(&p) => {
            Err(RouterError::new(ErrorKind::MethodNotAllowed, format!("{p} does not accept this method")))
        }
        (_, p) => Err(RouterError::new(ErrorKind::NotFound, format!("no such endpoint: {p}"))),
    }
}

/// Reads, validates and routes a chat request body through the routing pipeline, the same one
/// the CLI runs. Level 2 loads the encoder from the model assets on first use; if it cannot, the
/// request is routed by the other levels (the decision says so, the log says why) rather than
/// refused.
async fn decide(
    req: &mut Request,
    env: &Env,
    state: &State,
    started: f64,
) -> Result<(ChatRequest, Decision, Vec<Phase>), RouterError> {
    let bytes = body::read_limited(req, state.config.server.max_body_bytes).await?;
    let request = ChatRequest::parse(&bytes)?;
    let mut watch = Stopwatch::since(started, &now_ms);
    watch.lap("parse");
    let embedder = semantic::AssetEmbedder { env, config: &state.config };
    let llm = llm_router::UpstreamLlm { env, state };
    let platform = pipeline::Platform { embedder: &embedder, llm: &llm };
    let decision = pipeline::route(&state.config, &request, &platform, &mut watch).await?;
    if let SemanticSignal::Unavailable(reason) = &decision.signals.semantic {
        log_error(&RouterError::new(ErrorKind::Unavailable, reason.clone()));
    }
    Ok((request, decision, watch.phases))
}

/// Whether a turn is counted (a chat) or only looked at (`/v1/route`'s dry run).
#[derive(Clone, Copy, PartialEq)]
enum Record {
    Yes,
    No,
}

/// A turn after its conversation was consulted.
struct Conversed {
    decision: Decision,
    /// The conversation's id, for the response's header.
    id: Option<String>,
    /// Its state as the object answered (before the turn for a dry run, after it otherwise);
    /// `None` without a conversation, or when it could not be reached.
    state: Option<crate::core::conversation::ConversationState>,
}

/// Level 4 across turns, with a `[conversation]` section: records this turn in the conversation's
/// Durable Object (its id from the `x-switchyard-conversation` header, or derived; with
/// `Record::No`, only reads its state) and, when the conversation has escalated, sends the turn
/// to `escalate_to`. An object that cannot be reached leaves the decision as routed (the reason
/// is logged): never an error for the client.
async fn converse(
    env: &Env,
    state: &State,
    (header, authorization): (Option<String>, Option<String>),
    request: &ChatRequest,
    decision: Decision,
    phases: &mut Vec<Phase>,
    record: Record,
) -> Result<Conversed, RouterError> {
    let (Some(settings), Some(judgement)) = (&state.config.conversation, &decision.signals.conversation)
    else {
        return Ok(Conversed { decision, id: None, state: None });
    };
    // Without router keys anyone may call: the bearer (perhaps a client's own upstream key) is
    // not a key of ours and is not used.
    let router_key =
        authorization.as_deref().and_then(crate::core::auth::bearer).filter(|_| state.keys.has_keys());
    let id = crate::core::conversation::conversation_id(header.as_deref(), router_key, request)
        .map_err(|e| RouterError::invalid_request(e).with_param(headers::CONVERSATION))?;
    let Some(id) = id else { return Ok(Conversed { decision, id: None, state: None }) };
    let started = now_ms();
    let fingerprint = crate::core::conversation::fingerprint(request).filter(|_| record == Record::Yes);
    let recorded = match record {
        Record::Yes => conversation::record_turn(env, &id, fingerprint, judgement).await,
        Record::No => conversation::peek(env, &id).await,
    };
    phases.push(Phase { name: "conversation", ms: now_ms() - started });
    match recorded {
        Ok(conversation) => {
            let decision = crate::core::conversation::escalate(decision, settings, &conversation);
            Ok(Conversed { decision, id: Some(id), state: Some(conversation) })
        }
        Err(reason) => {
            log_error(&RouterError::new(
                ErrorKind::Unavailable,
                format!("conversation {id}: {reason}; this turn is routed without its state"),
            ));
            Ok(Conversed { decision, id: Some(id), state: None })
        }
    }
}

/// A bad rating counts against the conversation of the answer rated (`target`: its id, and
/// whether that answer was rated bad before, which counts once): the id of the conversation, or
/// `None` (no conversation, or it could not be reached: logged).
async fn bad_rating_to_conversation(
    env: &Env,
    target: Result<(Option<String>, bool), RouterError>,
) -> Option<String> {
    let id = match target {
        Ok((id, true)) => return id,
        Ok((id, false)) => id?,
        Err(e) => {
            log_error(&e);
            return None;
        }
    };
    match conversation::record_bad_feedback(env, &id).await {
        Ok(_) => Some(id),
        Err(reason) => {
            log_error(&RouterError::new(ErrorKind::Unavailable, format!("conversation {id}: {reason}")));
            None
        }
    }
}

/// Calls the upstreams for a decided chat request and shapes the client's response: the answer
/// (whole or streamed) or the last error, with the decision, attempt, cascade and cost headers.
/// The decision is logged once the answer is over (for streams, when the stream ends): a line in
/// the Worker's log, and a row in the decision log written after the response.
async fn chat(
    state: &State,
    env: &Env,
    ctx: &Context,
    request: ChatRequest,
    decision: Decision,
    mut phases: Vec<Phase>,
    conversation: Option<String>,
) -> Response {
    let upstream_started = now_ms();
    let mut outcome = upstream::answer(state, env, &request, &decision).await;
    if let Some(verdict_at) = outcome.verdict_at_ms {
        // The time a cascade held the answer back: its rated answers and their ratings.
        phases.push(Phase { name: "cascade", ms: verdict_at - upstream_started });
        phases.push(Phase { name: "upstream", ms: now_ms() - verdict_at });
    } else {
        phases.push(Phase { name: "upstream", ms: now_ms() - upstream_started });
    }
    let attempts = fallback::attempts_header(&outcome.attempts);
    let skipped = fallback::skipped_header(&outcome.attempts);
    let answered_by = outcome.result.as_ref().map(|a| a.model.clone()).ok();
    // Routing's call and the cascade's rated answers with their ratings: paid whatever the answer.
    let paid_before = add_costs(decision.signals.llm.cost_usd(), cascade::rated_cost(&outcome.cascade));
    // The answer's own cost, unless a rated answer (whose cost is its step's) was delivered.
    let answer_cost = match &outcome.result {
        Ok(Answered { body: Body::Whole(completion), model })
            if !cascade::delivered_rated(&outcome.cascade) =>
        {
            state.config.cost_usd(model, completion.usage)
        }
        _ => None,
    };
    cascade::set_final_cost(&mut outcome.cascade, answer_cost);
    let cascade_header = cascade::cascade_header(&outcome.cascade);
    let mut headers =
        answer_headers(&decision, answered_by.as_deref(), attempts.clone(), skipped.clone(), &phases);
    headers.extend(cascade_header.clone().map(|v| (headers::CASCADE, v)));
    headers.extend(conversation.clone().map(|id| (headers::CONVERSATION, id)));
    let entry = decision_log::Entry::start(state, &request);
    headers.push((headers::DECISION_ID, entry.id.clone()));
    let answer = Answer {
        model: answered_by.clone().unwrap_or_else(|| decision.model.clone()),
        status: 200,
        outcome: "complete",
        usage: None,
        cost_usd: paid_before,
        attempts: attempts.clone(),
        skipped: skipped.clone(),
        cascade: cascade_header,
        conversation,
        stream: request.stream,
    };

    let mut response = match outcome.result {
        Err(error) => {
            log_error_line(&error, Some(&entry.id));
            if let Some(cost) = paid_before {
                // What was paid for even though no answer came.
                headers.push((headers::COST_USD, format_cost(cost)));
            }
            let answer = Answer { status: error.status(), outcome: "error", ..answer };
            ctx.wait_until(decision_log::finish(env.clone(), entry.row(&decision, &phases, answer), None));
            http::error(&error)
        }
        Ok(Answered { body: Body::Whole(mut completion), model }) => {
            if cascade::delivered_rated(&outcome.cascade) {
                completion.body = cascade::as_client_asked(&completion.body, &request);
            }
            let cost = add_costs(answer_cost, paid_before);
            if let Some(cost) = cost {
                headers.push((headers::COST_USD, format_cost(cost)));
            }
            let answer = Answer { usage: completion.usage, cost_usd: cost, ..answer };
            ctx.wait_until(decision_log::finish(env.clone(), entry.row(&decision, &phases, answer), None));
            let mut response = if request.stream {
                // A rated answer, read whole for its verdict, goes out as the stream asked for.
                // Its usage chunk's `cost` is the answer's own, as in a relayed stream.
                let own_cost = state.config.cost_usd(&model, completion.usage);
                let bytes = relay::replay_completion(&completion.body, request.include_usage(), own_cost);
                event_stream(futures_util::stream::iter([Ok(bytes)]))
            } else {
                http::json_text(200, completion.body)
            };
            http::set_headers(&mut response, headers);
            return response;
        }
        Ok(Answered { body: Body::Stream(stream), .. }) => {
            // The line and the row are made once the stream ends; the wait keeps the request's
            // context open until then, so the write is not cut off with the connection.
            let (ended, end_seen) = futures_channel::oneshot::channel::<(Answer, Option<String>)>();
            let (env, decision, logged_phases) = (env.clone(), decision.clone(), phases.clone());
            let closed = Answer { outcome: "client_closed", ..answer.clone() };
            ctx.wait_until(async move {
                let (answer, stream_error) = end_seen.await.unwrap_or((closed, None));
                decision_log::finish(env, entry.row(&decision, &logged_phases, answer), stream_error).await;
            });
            let mut steps = outcome.cascade;
            let body = stream.into_body(move |end| {
                let cost = add_costs(end.cost_usd, paid_before);
                // The final answer's cost is known now: the logged steps have it.
                cascade::set_final_cost(&mut steps, end.cost_usd);
                let answer = Answer {
                    usage: end.usage,
                    cost_usd: cost,
                    outcome: end.outcome.as_str(),
                    cascade: cascade::cascade_header(&steps),
                    ..answer
                };
                let _ = ended.send((answer, end.error.map(|e| e.message)));
            });
            event_stream(body)
        }
    };
    http::set_headers(&mut response, headers);
    response
}

/// A `text/event-stream` response of `body`.
fn event_stream(body: impl futures_util::Stream<Item = worker::Result<Vec<u8>>> + 'static) -> Response {
    let response_headers = Headers::new();
    let _ = response_headers.set("content-type", "text/event-stream; charset=utf-8");
    let _ = response_headers.set("cache-control", "no-cache");
    match Response::builder().with_status(200).with_headers(response_headers).from_stream(body) {
        Ok(response) => response,
        Err(e) => {
            http::error(&RouterError::new(ErrorKind::Internal, format!("could not start the stream: {e}")))
        }
    }
}

/// `POST /v1/embeddings` with the router's own encoder.
async fn embeddings(
    req: &mut Request,
    env: &Env,
    state: &State,
    started: f64,
) -> Result<Response, RouterError> {
    let bytes = body::read_limited(req, state.config.server.max_body_bytes).await?;
    let request = EmbeddingsRequest::parse(&bytes, DIMENSIONS)?;
    let parsed = now_ms();
    if state.config.semantic.encoder != RoutingEncoderChoice::MiniLm {
        return Err(not_serving_minilm());
    }
    let engine = semantic::engine(env, &state.config).await?;
    let Some(encoder) = engine.encoder.minilm() else { return Err(not_serving_minilm()) };
    let loaded = now_ms();
    let mut tokens = 0;
    let mut vectors = Vec::with_capacity(request.inputs.len());
    for input in &request.inputs {
        let ids =
            encoder.token_ids(input).map_err(|e| RouterError::new(ErrorKind::Internal, e.to_string()))?;
        tokens += ids.len();
        vectors
            .push(encoder.embed_ids(&ids).map_err(|e| RouterError::new(ErrorKind::Internal, e.to_string()))?);
    }
    let embedded = now_ms();
    let mut phases = vec![Phase { name: "parse", ms: parsed - started }];
    if loaded - parsed > 0.0 {
        phases.push(Phase { name: "load", ms: loaded - parsed });
    }
    phases.push(Phase { name: "embed", ms: embedded - loaded });
    let mut response = http::json(200, &embeddings_json(&vectors, request.format, tokens));
    http::set_headers(&mut response, [(headers::SERVER_TIMING, server_timing(&phases))]);
    Ok(response)
}

/// A router that routes with the static student does not load MiniLM, so it serves no
/// embeddings: the student's vectors are for routing, not a substitute for MiniLM's.
fn not_serving_minilm() -> RouterError {
    RouterError::new(
        ErrorKind::ModelNotFound,
        "This router routes with a static encoder ([semantic] encoder), so it does not load \
         all-MiniLM-L6-v2 and /v1/embeddings is off.",
    )
    .with_param("model")
}

fn authorize(req: &Request, state: &State) -> Result<(), RouterError> {
    let header = req.headers().get("authorization").ok().flatten();
    state.keys.check(header.as_deref())
}

/// The admin endpoints' check: an admin key, never a router key.
fn authorize_admin(req: &Request, state: &State) -> Result<(), RouterError> {
    let header = req.headers().get("authorization").ok().flatten();
    state.admin_keys.check(header.as_deref(), &state.keys)
}

/// The request URL's query string (empty when it has none).
fn query_of(req: &Request) -> Result<String, RouterError> {
    let url = req.url().map_err(|e| RouterError::invalid_request(format!("bad URL: {e}")))?;
    Ok(url.query().unwrap_or("").to_string())
}

fn preflight(req: &Request, state: &State) -> Result<Response, RouterError> {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let origin = header("origin").unwrap_or_default();
    match state.cors.preflight_headers(&origin, header("access-control-request-headers").as_deref()) {
        Some(headers) => {
            let mut response = http::no_content();
            http::set_headers(&mut response, headers);
            Ok(response)
        }
        None => Err(RouterError::new(
            ErrorKind::Forbidden,
            format!("origin {origin:?} is not in server.cors_origins"),
        )),
    }
}

fn annotate(response: &mut Response, decision: &Decision, phases: &[Phase]) {
    http::set_headers(response, decision_headers(decision, phases));
}

/// Whether a `/healthz` caller may see the details: a router or admin key. The details (config
/// source, sizes, memory, version) help an attacker as much as an operator.
fn shows_details(req: &Request, state: &State) -> bool {
    let header = req.headers().get("authorization").ok().flatten();
    let key = header.as_deref();
    (state.keys.has_keys() && state.keys.check(key).is_ok())
        || state.admin_keys.check(key, &state.keys).is_ok()
}

/// `/healthz`: whether the router is up, for anyone; the details with a key.
fn health(state: &State, details: bool) -> Response {
    if !details {
        return http::json(200, &json!({"status": "ok"}));
    }
    let config = &state.config;
    http::json(
        200,
        &json!({
            "status": "ok",
            "version": env!("CARGO_PKG_VERSION"),
            "config": state.config_source,
            "routes": config.routes.len(),
            "models": config.models.len(),
            "auth": !matches!(state.keys, crate::core::auth::RouterKeys::Open),
            "encoder": semantic::status(),
            "encoder_load_ms": semantic::load_ms(),
            "encoder_load_phases_ms": semantic::load_phases(),
            "memory_bytes": wasm_memory_bytes(),
        }),
    )
}

/// The wasm linear memory size: what the isolate holds for this module.
fn wasm_memory_bytes() -> usize {
    core::arch::wasm32::memory_size(0) * 65536
}

/// Logs an error that ended no routed request (bad input, auth, a failure around routing).
fn log_error(error: &RouterError) {
    log_error_line(error, None);
}

/// One JSON line per failure (README, "Logs"): at the `error` level when Switchyard or an
/// upstream failed, at `log` for a client's own mistake.
fn log_error_line(error: &RouterError, decision_id: Option<&str>) {
    let line = error.log_line(decision_id);
    if error.origin() == Origin::Client {
        worker::console_log!("{line}");
    } else {
        worker::console_error!("{line}");
    }
}
