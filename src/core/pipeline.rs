//! Routing, the one way every entry point does it: gather the signals of each level that applies,
//! then [`decide`]. The Worker's chat and `/v1/route`, and the CLI's `route`, `eval` and `fit`, all
//! call [`route`], so the same request and config get the same decision everywhere.
//!
//! Levels that need the platform get it through a small trait the platform implements: level 2's
//! encoder is an [`Embedder`] (the Worker fetches the model from its assets on first use; the CLI
//! reads the model folder); level 3a's model call is an [`LlmCaller`] (the Worker calls the
//! upstream; the CLI has none yet: [`NoLlm`]). A new level adds one signal source here (a field of [`Signals`],
//! filled in [`gather`]) and one rule in [`decide`]; the Worker's handler does not change.

use crate::core::config::{Config, ConversationSettings, LlmRouterSettings, LlmWhen};
use crate::core::conversation::{self, Judgement, Measured};
use crate::core::decide::{decide, llm_needed, llm_options, Requested};
use crate::core::decision::{ClassifierSignal, Decision, LlmSignal, SemanticSignal, Signals};
use crate::core::error::{ErrorKind, RouterError};
use crate::core::llm_router::{self, ChoiceCache};
use crate::core::providers::Completion;
use crate::core::request::{routing_window, ChatRequest};
use crate::core::rules::RuleOutcome;
use crate::core::semantic::{dot, routing_text, Encode, SemanticModel};
use crate::core::timing::Stopwatch;
use crate::core::tokens::estimate_request_tokens;
use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Level 2's encoder and exemplar index, as the platform provides them.
#[allow(async_fn_in_trait)] // Futures stay on one thread: the Worker's isolate, or the CLI's.
pub trait Embedder {
    type Encoder: Encode;

    /// The encoder and index, loaded on first use and kept; an error says why level 2 cannot run
    /// (the request is then routed by the other levels).
    async fn load(&self) -> Result<Rc<SemanticModel<Self::Encoder>>, String>;
}

/// A model already loaded, or the reason there is none: the tests' embedder.
impl<E: Encode> Embedder for Result<Rc<SemanticModel<E>>, String> {
    type Encoder = E;

    async fn load(&self) -> Result<Rc<SemanticModel<E>>, String> {
        self.clone()
    }
}

/// Level 3a's model call, as the platform makes it.
#[allow(async_fn_in_trait)]
pub trait LlmCaller {
    /// Sends `request` (not streamed) to `model` (a key of `[models]`) and returns its answer in
    /// OpenAI `chat.completion` form, within `timeout_ms`. The error says why not, in words fit
    /// for the decision's reasons: no URL, no key value.
    async fn complete(
        &self,
        model: &str,
        request: &ChatRequest,
        timeout_ms: u64,
    ) -> Result<Completion, String>;

    /// The choices this platform remembers across requests (the Worker: per isolate).
    fn remembered(&self) -> Option<&RefCell<ChoiceCache>> {
        None
    }
}

/// No way to call a model: the LLM router, if configured, declines with this reason.
pub struct NoLlm(pub &'static str);

impl LlmCaller for NoLlm {
    async fn complete(&self, _: &str, _: &ChatRequest, _: u64) -> Result<Completion, String> {
        Err(self.0.to_string())
    }
}

/// Runs a pipeline future to its end when its embedder never waits (a model already loaded, or
/// loaded synchronously, as the CLI reads its model folder): no async runtime needed. `None` if
/// it would wait.
pub fn run_ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// What the pipeline gets from the platform: level 2's encoder, level 3a's model call.
pub struct Platform<'p, E, L> {
    pub embedder: &'p E,
    pub llm: &'p L,
}

/// Routes `request`: resolves its `model` field (404 when it names nothing), gathers the signals,
/// decides. Phases `load` (first use of the encoder), `tokenize`, `embed`, `classify`, `llm` and
/// `route` are timed on `watch`.
pub async fn route<E: Embedder, L: LlmCaller>(
    config: &Config,
    request: &ChatRequest,
    platform: &Platform<'_, E, L>,
    watch: &mut Stopwatch<'_>,
) -> Result<Decision, RouterError> {
    let requested =
        Requested::resolve(config, &request.model).ok_or_else(|| model_not_found(&request.model))?;
    let signals = gather(config, request, requested, platform, watch).await;
    let decision = decide(config, requested, signals);
    watch.lap("route");
    Ok(decision)
}

/// Every level's observations. Only a routed request (`"auto"`) is looked at beyond its size.
pub async fn gather<E: Embedder, L: LlmCaller>(
    config: &Config,
    request: &ChatRequest,
    requested: Requested<'_>,
    platform: &Platform<'_, E, L>,
    watch: &mut Stopwatch<'_>,
) -> Signals {
    let mut signals = Signals {
        prompt_tokens: estimate_request_tokens(request),
        max_output_tokens: request.max_output_tokens,
        ..Signals::default()
    };
    let routed = match requested {
        Requested::Auto => routing_signals(config, request, platform, watch, &mut signals).await,
        _ => None,
    };
    // A request that named its model keeps it: there is no conversation to judge for it.
    if let (Some(settings), false) = (&config.conversation, matches!(requested, Requested::Model(_))) {
        let judged = judge_turn(config, settings, request, platform.embedder, routed.as_ref(), watch).await;
        signals.conversation = Some(judged);
    }
    signals
}

/// Levels 1 to 3a for a routed request, into `signals`; the routing text and its embedding, when
/// one was made (the conversation's judgement reuses it).
async fn routing_signals<E: Embedder, L: LlmCaller>(
    config: &Config,
    request: &ChatRequest,
    platform: &Platform<'_, E, L>,
    watch: &mut Stopwatch<'_>,
    signals: &mut Signals,
) -> Option<(String, Vec<f32>)> {
    signals.rules = rule_outcomes(config, request, signals.prompt_tokens);
    let llm_router = config.llm_router.as_ref().filter(|s| s.when != LlmWhen::Never);
    if !config.uses_embeddings() && llm_router.is_none() {
        return None;
    }
    // What levels 2, 3 and 3a read: made once, for all of them.
    let text = routing_text(request, config.semantic.follow_up_words);
    let mut query = None;
    if config.uses_embeddings() {
        (signals.semantic, signals.classifier, query) =
            embedding_signals(config, &text, platform.embedder, watch).await;
    }
    if let Some(settings) = llm_router {
        signals.llm = llm_signal(config, settings, &text, signals, platform.llm, watch).await;
    }
    query.map(|query| (text, query))
}

/// Level 3a: asks the LLM router when the levels below are unsure (or always), unless the same
/// text was answered recently.
async fn llm_signal(
    config: &Config,
    settings: &LlmRouterSettings,
    routing_text: &str,
    signals: &Signals,
    llm: &impl LlmCaller,
    watch: &mut Stopwatch<'_>,
) -> LlmSignal {
    if !llm_needed(config, settings, signals) {
        return LlmSignal::NotAsked;
    }
    let options = llm_options(config, settings, signals);
    if options.is_empty() {
        let reason = "no route it may choose is within the prompt's token bounds".to_string();
        return LlmSignal::Declined { reason, cost_usd: None };
    }
    let text = llm_router::clip(routing_text);
    let remembered = llm.remembered();
    let key = remembered.map(|cache| cache.borrow().key(text, &options));
    if let Some(route) = remembered.zip(key).and_then(|(cache, key)| cache.borrow_mut().get(key, watch.now()))
    {
        return LlmSignal::Chose { route, cost_usd: None, cached: true };
    }
    let declined = |reason: String, cost_usd| LlmSignal::Declined { reason, cost_usd };
    let configured = config.model(&settings.model).and_then(|m| Some((m, config.provider(&m.provider)?)));
    let Some((model, provider)) = configured else {
        return declined("its model is not configured".into(), None);
    };
    let routing_request =
        match llm_router::routing_request(provider.kind, &options, text, settings.prompt.as_deref()) {
            Ok(request) => request,
            Err(e) => return declined(e.message, None),
        };
    let answer = llm.complete(&settings.model, &routing_request, settings.timeout_ms).await;
    watch.lap("llm");
    let completion = match answer {
        Ok(completion) => completion,
        Err(reason) => return declined(reason, None),
    };
    let cost_usd = completion.usage.map(|u| model.price.cost_usd(u.prompt_tokens, u.completion_tokens));
    match llm_router::read_choice(&completion.body, &options) {
        Ok(route) => {
            if let Some((cache, key)) = remembered.zip(key) {
                cache.borrow_mut().insert(key, &route, watch.now());
            }
            LlmSignal::Chose { route, cost_usd, cached: false }
        }
        Err(why) => declined(why.to_string(), cost_usd),
    }
}

/// Level 4 across turns: how the latest user message answers the previous answer. Similarities
/// come from the routing encoder when the config already runs one (exemplars or a classifier);
/// without it, phrases and same-words decide. `routed` is the routing text and its embedding,
/// reused when that text is the latest message alone.
async fn judge_turn<E: Embedder>(
    config: &Config,
    settings: &ConversationSettings,
    request: &ChatRequest,
    embedder: &E,
    routed: Option<&(String, Vec<f32>)>,
    watch: &mut Stopwatch<'_>,
) -> Judgement {
    let mut measured = Measured::default();
    let (latest, previous) = request.last_two_user_windows();
    if let (true, Some(latest), Some(previous)) = (config.uses_embeddings(), &latest, &previous) {
        if let Ok(model) = embedder.load().await {
            watch.lap_if_any("load");
            let latest = match routed {
                Some((text, embedding)) if *text == **latest => Ok(embedding.clone()),
                _ => model.encoder.embed(latest),
            };
            if let (Ok(latest), Ok(previous)) = (latest, model.encoder.embed(previous)) {
                measured.to_previous = Some(dot(&latest, &previous));
                measured.to_frustration = model.frustration_similarity(&latest);
            }
            watch.lap("judge");
        }
    }
    conversation::judge(settings, (latest.as_deref(), previous.as_deref()), measured)
}

/// Level 1: every route that has rules, applied to the latest user message.
fn rule_outcomes(config: &Config, request: &ChatRequest, prompt_tokens: u64) -> Vec<RuleOutcome> {
    let text = routing_window(request.latest_user_text());
    config
        .routes
        .iter()
        .filter(|r| r.rules.has_rules())
        .map(|r| r.rules.evaluate(&r.name, &text, prompt_tokens))
        .collect()
}

/// Levels 2 and 3, from one embedding of the routing text: the scores against every route's
/// exemplars, and the trained head's pick.
async fn embedding_signals(
    config: &Config,
    routing_text: &str,
    embedder: &impl Embedder,
    watch: &mut Stopwatch<'_>,
) -> (SemanticSignal, ClassifierSignal, Option<Vec<f32>>) {
    let both_unavailable = |reason: String| {
        let semantic = if config.uses_semantics() {
            SemanticSignal::Unavailable(reason.clone())
        } else {
            SemanticSignal::NotUsed
        };
        let classifier = if config.classifier.is_some() {
            ClassifierSignal::Unavailable(reason)
        } else {
            ClassifierSignal::NotUsed
        };
        (semantic, classifier, None)
    };
    let loaded = embedder.load().await;
    watch.lap_if_any("load");
    let model = match loaded {
        Ok(model) => model,
        Err(reason) => return both_unavailable(reason),
    };
    let ids = model.encoder.token_ids(routing_text);
    watch.lap("tokenize");
    let embedding = ids.and_then(|ids| model.encoder.embed_ids(&ids));
    watch.lap("embed");
    let query = match embedding {
        Ok(query) => query,
        Err(reason) => return both_unavailable(reason),
    };
    let semantic = if config.uses_semantics() {
        SemanticSignal::Scored(model.index.scores(&query, config.semantic.aggregation, config.semantic.top_k))
    } else {
        SemanticSignal::NotUsed
    };
    let classifier = match &model.classifier {
        None => ClassifierSignal::NotUsed,
        Some(Err(reason)) => ClassifierSignal::Unavailable(reason.clone()),
        Some(Ok(head)) => {
            let prediction = head.predict(&query);
            watch.lap("classify");
            ClassifierSignal::Predicted { route: prediction.route, confidence: prediction.confidence }
        }
    };
    (semantic, classifier, Some(query))
}

fn model_not_found(model: &str) -> RouterError {
    RouterError::new(
        ErrorKind::ModelNotFound,
        format!("The model `{model}` does not exist. Use \"auto\", a route name or a model id from GET /v1/models."),
    )
    .with_param("model")
}
