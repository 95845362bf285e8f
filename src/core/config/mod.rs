//! The routing config, resolved: what every other part of Switchyard reads.
//!
//! `switchyard.toml` is parsed into private serde structs ([`raw`]) that keep source spans, so
//! that [`validate`] can report each problem as `FILE:LINE:COLUMN`; validation then resolves it
//! once into the plain types below: names checked, defaults applied, regexes compiled, `base_url`
//! trimmed, each route's settings grouped by the level that reads them. No span or raw type
//! leaves this module, so routing and execution code reads values, never re-checks them.
//!
//! A new level adds its own group to [`Route`] (and its section to `raw.rs`), leaving the others
//! alone: level 1 is [`RouteRules`], level 2 is [`RouteSemantic`].

mod raw;
mod validate;

pub use validate::inside_model_folder;

use crate::core::decide::{AUTO, EXPLICIT_ROUTE};
use crate::core::rules::RouteRules;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Default request-body limit: room for a ~1M-character prompt plus JSON overhead.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Longest timeout or wait the config may set: one hour.
pub const MAX_WAIT_MS: u64 = 3_600_000;

/// Route names with a fixed meaning in the `model` field.
pub const RESERVED_NAMES: [&str; 2] = [AUTO, EXPLICIT_ROUTE];

/// A config problem with the place it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A validated, compiled config, built once per isolate (or CLI run) and shared by every request.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub providers: BTreeMap<String, Provider>,
    pub models: BTreeMap<String, Model>,
    /// In config order, which is routing priority.
    pub routes: Vec<Route>,
    /// The route a request goes to when no route matches.
    pub default_route: String,
    pub semantic: SemanticSettings,
    pub upstream: UpstreamPolicy,
    /// Level 3's trained head, when the config has a `[classifier]` section.
    pub classifier: Option<ClassifierSettings>,
    /// Level 3a, when the config has an `[llm_router]` section.
    pub llm_router: Option<LlmRouterSettings>,
    pub log: LogSettings,
    /// Level 4 across turns: `None` without a `[conversation]` section.
    pub conversation: Option<ConversationSettings>,
}

/// `[conversation]`: when a conversation escalates, and to what.
/// Level 4 across turns, judged and counted by [`crate::core::conversation`].
#[derive(Debug, Clone)]
pub struct ConversationSettings {
    /// The model (a key of `[models]`) an escalated conversation goes to.
    pub escalate_to: String,
    /// Unresolved turns in a row that escalate.
    pub unresolved_turns: u32,
    /// Frustrated turns since the last resolved one that escalate.
    pub frustrated_turns: u32,
    pub frustration_phrases: Vec<regex::Regex>,
    /// Sentences that say "you did not get it"; compared by meaning, when an encoder runs.
    pub frustration_exemplars: Vec<String>,
    pub frustration_threshold: f32,
    pub resolved_phrases: Vec<regex::Regex>,
    pub rephrase_threshold: f32,
    pub new_topic_threshold: f32,
    /// A conversation idle this long is deleted.
    pub idle_seconds: u64,
    /// Resolved turns in a row after which an escalated conversation returns to routing; 0:
    /// never (escalation is sticky).
    pub step_down_after: u32,
}

/// `[log]`: what the decision log keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub store_text: StoreText,
    /// Rows older than this are deleted by the scheduled clean-up.
    pub retention_days: u32,
}

/// How much of the routing text a logged decision keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreText {
    /// Nothing of it.
    None,
    /// Its SHA-256: identical texts can be grouped, none can be read.
    Hash,
    /// The text (cut to a bound) and its hash: what `switchyard export` turns into training rows.
    Full,
}

/// `[llm_router]`: which model picks the route, when it is asked, and how long it may take.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmRouterSettings {
    /// A key of [`Config::models`]; its provider's API constrains the answer.
    pub model: String,
    pub when: LlmWhen,
    /// Time for the whole call; past it, routing goes on without the LLM.
    pub timeout_ms: u64,
    /// Replaces the built-in instructions ([`crate::core::llm_router::DEFAULT_PROMPT`]).
    pub prompt: Option<String>,
    /// With `when = "uncertain"`, a pick by meaning that clears its threshold by less than this
    /// is still uncertain.
    pub margin: f32,
    /// How long an isolate reuses the answer for the same routing text; 0: never.
    pub cache_seconds: u64,
    /// The routes the LLM may choose, in config order; every one has a description.
    pub routes: Vec<String>,
}

/// When the LLM router is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LlmWhen {
    /// For every routed request that no rule decided.
    Always,
    /// Only when no rule matched and the meaning-based pick, if any, is unsure.
    Uncertain,
    /// Configured but off.
    Never,
}

/// `[classifier]`: where `switchyard train` writes the head and the router reads it, and how
/// sure it must be to decide.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierSettings {
    /// Relative to the model folder (`--model-dir`; the Worker's model assets).
    pub path: String,
    /// Above this calibrated probability the classifier decides; below it, routing goes on.
    pub min_confidence: f32,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Names of secrets holding accepted bearer keys. Empty: no model call is served, unless
    /// `allow_unauthenticated` opens the router.
    pub auth_keys: Vec<String>,
    /// `allow_unauthenticated = true`: serve anyone without a key (the operator asked for it;
    /// the Worker says so in its log). Never together with `auth_keys`.
    pub allow_unauthenticated: bool,
    /// Names of secrets holding the keys of `/v1/admin/*`; none of them is a router key. Empty:
    /// the admin endpoints are off.
    pub admin_keys: Vec<String>,
    /// Origins allowed to call from a browser; `"*"` allows any.
    pub cors_origins: Vec<String>,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI or any server speaking its Chat Completions API (Ollama, llama.cpp, vLLM).
    Openai,
    /// Anthropic's Messages API (`POST {base_url}/messages`).
    Anthropic,
    /// Google's Gemini API (`{base_url}/models/{model}:generateContent`).
    Gemini,
}

/// `[providers.NAME]`.
#[derive(Debug, Clone)]
pub struct Provider {
    pub kind: ProviderKind,
    /// Without a trailing slash.
    pub base_url: String,
    /// Name of the secret holding the upstream key; none for keyless local servers.
    pub api_key: Option<String>,
    /// Extra request headers, each naming the secret that holds its value.
    pub headers: BTreeMap<String, String>,
}

impl Provider {
    /// Names of every secret this provider's requests need.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.api_key.iter().chain(self.headers.values()).map(String::as_str)
    }
}

/// How capable (and costly) a model is. Ordered: level 4 escalates to a higher tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Small,
    Medium,
    Large,
    Frontier,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million output tokens.
    pub output: f64,
}

impl Price {
    /// USD for a call with these token counts.
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input + completion_tokens as f64 * self.output) / 1_000_000.0
    }
}

/// `[models.NAME]`, with the upstream id and timeout resolved.
#[derive(Debug, Clone)]
pub struct Model {
    /// A key of [`Config::providers`].
    pub provider: String,
    /// The model id sent upstream (the table key when the config sets none).
    pub upstream: String,
    pub context_window: u32,
    pub price: Price,
    pub tier: Tier,
    /// Time allowed for this model to start answering (its own, else `[upstream] timeout_ms`).
    pub timeout_ms: u64,
    /// `max_tokens` sent when the client sets none and the upstream requires one (Anthropic).
    pub max_output_tokens: u32,
}

/// One `[[routes]]` entry, its settings grouped by the level that reads them.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub description: String,
    /// Preferred model first, then fallbacks in order; empty only when a cascade names the
    /// models ([`Route::candidates`] is never empty).
    pub models: Vec<String>,
    /// Level 1: token bounds and keyword rules.
    pub rules: RouteRules,
    /// Level 2: exemplars and threshold, when the route has exemplars.
    pub semantic: Option<RouteSemantic>,
    /// Level 4: answers rated, and replaced by a stronger model's when weak.
    pub cascade: Option<Cascade>,
}

/// A route's cascade: its chain's models answer in turn, cheapest first, until one's answer is
/// rated at least `min_score` (see [`crate::core::cascade`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Cascade {
    /// Keys of `[models]`, cheapest first; at least two, none twice. The last one's answer is
    /// not rated: there is nothing stronger to ask.
    pub chain: Vec<String>,
    pub score: ScoreMethod,
    /// The least score, in [0, 1], for an answer to be kept.
    pub min_score: f64,
}

/// How a cascade rates an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScoreMethod {
    /// `"self"`: the model that answered rates its own answer, in a second short call.
    SelfRating,
    /// `"judge:MODEL"`: another model rates it.
    Judge(String),
    /// `"logprobs"`: the mean probability of the answer's tokens, from the same call.
    Logprobs,
}

impl ScoreMethod {
    /// Its name in the config.
    pub fn name(&self) -> String {
        match self {
            ScoreMethod::SelfRating => "self".into(),
            ScoreMethod::Judge(model) => format!("judge:{model}"),
            ScoreMethod::Logprobs => "logprobs".into(),
        }
    }
}

/// A route's level-2 settings.
#[derive(Debug, Clone)]
pub struct RouteSemantic {
    /// Sentences typical of the route; never empty.
    pub exemplars: Vec<String>,
    /// The least score for the route to match (its own, else `[semantic] threshold`).
    pub threshold: f32,
    /// Keyword matches count only when, by meaning too, this is the route.
    pub confirm_keywords: bool,
}

impl Route {
    /// The models to call, in order: a cascade's chain first, then the route's other models
    /// (fallbacks, should the chain's models fail).
    pub fn candidates(&self) -> Vec<String> {
        let chain = self.cascade.iter().flat_map(|c| c.chain.iter());
        let rest = self.models.iter().filter(|m| self.cascade.as_ref().is_none_or(|c| !c.chain.contains(m)));
        chain.chain(rest).cloned().collect()
    }

    /// Routes with exemplars and no keywords are matched by meaning alone (level 2).
    pub fn matched_by_meaning(&self) -> bool {
        self.semantic.is_some() && !self.rules.has_keywords()
    }
}

/// How level 2 scores a route from the similarities of the request to its exemplars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The best single exemplar.
    Max,
    /// The mean of the `top_k` best exemplars: one lucky exemplar counts for less.
    TopKMean,
}

/// `[semantic]`, less the default threshold (resolved into each route).
#[derive(Debug, Clone)]
pub struct SemanticSettings {
    pub aggregation: Aggregation,
    pub top_k: usize,
    /// A latest user message with fewer words than this is embedded with the previous one.
    pub follow_up_words: usize,
    /// What embeds prompts for levels 2 and 3 (`encoder = "…"`).
    pub encoder: RoutingEncoderChoice,
}

/// The encoder behind levels 2 and 3. MiniLM is the default; a static student of it
/// (`switchyard distill-encoder`) embeds in a table lookup, for routing within a few ms of CPU.
/// Thresholds and heads are per encoder: after switching, run `fit` and `train` again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingEncoderChoice {
    /// all-MiniLM-L6-v2, `encoder.onnx` in the model folder.
    MiniLm,
    /// A static student's table, at `path` relative to the model folder.
    Static { path: String },
}

/// `[upstream]`: how upstream calls are timed, retried and backed off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// Default time for a model to start answering (models may set their own).
    pub timeout_ms: u64,
    /// Longest silence once a model has started answering.
    pub idle_timeout_ms: u64,
    /// Extra tries of the same model after a retryable failure, before falling back.
    pub max_retries: u32,
    /// Backoff before retry n (0-based) is drawn from [cap/2, cap], cap = min(max, base * 2^n).
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// An upstream asking for a longer wait than this is not retried: the next model is tried.
    pub max_retry_after_ms: u64,
    /// Total time for the attempts of one request, from the first call: every call's time to
    /// start answering and every wait before a retry is clipped to what is left of it.
    pub request_deadline_ms: u64,
}

/// The sum of two costs, whichever are known; `None` when neither is.
pub fn add_costs(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    }
}

impl Config {
    /// Parses, validates and compiles `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        validate::parse(file, text)
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.name == name)
    }

    pub fn model(&self, name: &str) -> Option<&Model> {
        self.models.get(name)
    }

    /// What `usage` of model `name` cost, when both are known.
    pub fn cost_usd(&self, name: &str, usage: Option<crate::core::providers::Usage>) -> Option<f64> {
        let price = self.model(name)?.price;
        usage.map(|u| price.cost_usd(u.prompt_tokens, u.completion_tokens))
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name)
    }

    /// Whether any route has exemplars, i.e. whether level 2 needs an encoder and an index.
    pub fn uses_semantics(&self) -> bool {
        self.routes.iter().any(|r| r.semantic.is_some())
    }

    /// Whether routing embeds the request: for level 2, or for level 3's head.
    pub fn uses_embeddings(&self) -> bool {
        self.uses_semantics() || self.classifier.is_some()
    }

    /// Names of every secret the config refers to (router keys and upstream keys).
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> =
            self.server.auth_keys.iter().chain(&self.server.admin_keys).map(String::as_str).collect();
        names.extend(self.providers.values().flat_map(Provider::secret_names));
        names
    }
}
