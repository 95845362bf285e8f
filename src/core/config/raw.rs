//! `switchyard.toml` as written: the serde structs, with source spans and the file's defaults.
//!
//! Private to the config module. Fields whose problems are found after parsing keep their span
//! (`Spanned`) so that [`super::validate`] can point an error at the line (defaults have no place:
//! an error about one points at the top of the file); nothing here leaves
//! the module: validation turns these into the plain types of [`super`].

use super::{Aggregation, LlmWhen, Price, ProviderKind, StoreText, Tier, DEFAULT_MAX_BODY_BYTES};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub(super) server: ServerSection,
    pub(super) providers: BTreeMap<String, Spanned<ProviderSection>>,
    pub(super) models: BTreeMap<String, Spanned<ModelSection>>,
    pub(super) routes: Vec<Spanned<RouteSection>>,
    pub(super) default: DefaultSection,
    #[serde(default)]
    pub(super) semantic: SemanticSection,
    #[serde(default)]
    pub(super) upstream: UpstreamSection,
    pub(super) classifier: Option<ClassifierSection>,
    pub(super) llm_router: Option<LlmRouterSection>,
    #[serde(default)]
    pub(super) log: LogSection,
    pub(super) conversation: Option<ConversationSection>,
}

/// `[conversation]`: escalation across turns. Absent keys take the defaults of
/// `validate::conversation`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConversationSection {
    pub(super) escalate_to: Spanned<String>,
    pub(super) unresolved_turns: Option<Spanned<u32>>,
    pub(super) frustrated_turns: Option<Spanned<u32>>,
    pub(super) frustration_phrases: Option<Vec<Spanned<String>>>,
    pub(super) frustration_exemplars: Option<Vec<String>>,
    pub(super) frustration_threshold: Option<Spanned<f32>>,
    pub(super) resolved_phrases: Option<Vec<Spanned<String>>>,
    pub(super) rephrase_threshold: Option<Spanned<f32>>,
    pub(super) new_topic_threshold: Option<Spanned<f32>>,
    pub(super) idle_seconds: Option<Spanned<u64>>,
    pub(super) step_down_after: Option<Spanned<u32>>,
}

/// `[log]`: the decision log in D1.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogSection {
    #[serde(default = "default_store_text")]
    pub(super) store_text: StoreText,
    #[serde(default = "default_retention_days")]
    pub(super) retention_days: Spanned<u32>,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { store_text: default_store_text(), retention_days: default_retention_days() }
    }
}

fn default_store_text() -> StoreText {
    StoreText::None
}

fn default_retention_days() -> Spanned<u32> {
    unspanned(30)
}

/// `[llm_router]`: level 3a, a cheap model picks the route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LlmRouterSection {
    pub(super) model: Spanned<String>,
    #[serde(default = "default_when")]
    pub(super) when: LlmWhen,
    #[serde(default = "default_llm_timeout_ms")]
    pub(super) timeout_ms: Spanned<u64>,
    pub(super) prompt: Option<Spanned<String>>,
    #[serde(default = "default_margin")]
    pub(super) margin: Spanned<f32>,
    #[serde(default = "default_cache_seconds")]
    pub(super) cache_seconds: Spanned<u64>,
    pub(super) routes: Option<Vec<Spanned<String>>>,
}

fn default_when() -> LlmWhen {
    LlmWhen::Uncertain
}

fn default_llm_timeout_ms() -> Spanned<u64> {
    unspanned(1500)
}

fn default_margin() -> Spanned<f32> {
    unspanned(0.0)
}

fn default_cache_seconds() -> Spanned<u64> {
    unspanned(300)
}

/// `[classifier]`: level 3's trained head.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ClassifierSection {
    pub(super) path: Spanned<String>,
    #[serde(default = "default_min_confidence")]
    pub(super) min_confidence: Spanned<f32>,
}

fn default_min_confidence() -> Spanned<f32> {
    unspanned(0.6)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerSection {
    #[serde(default)]
    pub(super) auth_keys: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) admin_keys: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) allow_unauthenticated: Option<Spanned<bool>>,
    #[serde(default = "default_cors_origins")]
    pub(super) cors_origins: Vec<Spanned<String>>,
    #[serde(default = "default_max_body_bytes")]
    pub(super) max_body_bytes: Spanned<usize>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            auth_keys: Vec::new(),
            admin_keys: Vec::new(),
            allow_unauthenticated: None,
            cors_origins: default_cors_origins(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

fn default_cors_origins() -> Vec<Spanned<String>> {
    vec![unspanned("*".to_string())]
}

/// A default: a value the file does not hold, so it has no place in it.
fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

fn default_max_body_bytes() -> Spanned<usize> {
    unspanned(DEFAULT_MAX_BODY_BYTES)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderSection {
    pub(super) kind: ProviderKind,
    pub(super) base_url: Spanned<String>,
    pub(super) api_key: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, Spanned<String>>,
    /// Plain `http://` to a host that is not loopback: only when the operator opts in.
    #[serde(default)]
    pub(super) allow_plain_http: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ModelSection {
    pub(super) provider: Spanned<String>,
    pub(super) upstream: Option<String>,
    pub(super) context_window: u32,
    #[serde(default = "free")]
    pub(super) price: Price,
    #[serde(default = "default_tier")]
    pub(super) tier: Tier,
    pub(super) timeout_ms: Option<u64>,
    #[serde(default = "default_max_output_tokens")]
    pub(super) max_output_tokens: u32,
}

fn default_max_output_tokens() -> u32 {
    4096
}

fn free() -> Price {
    Price { input: 0.0, output: 0.0 }
}

fn default_tier() -> Tier {
    Tier::Medium
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteSection {
    pub(super) name: Spanned<String>,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) models: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) keywords: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) unless: Vec<Spanned<String>>,
    pub(super) min_tokens: Option<Spanned<u64>>,
    pub(super) max_tokens: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) exemplars: Vec<String>,
    pub(super) threshold: Option<Spanned<f32>>,
    #[serde(default)]
    pub(super) semantic_confirm: bool,
    pub(super) cascade: Option<CascadeSection>,
}

/// A route's `cascade = { chain, score, min_score }` (level 4, one turn).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CascadeSection {
    pub(super) chain: Spanned<Vec<Spanned<String>>>,
    pub(super) score: Option<Spanned<String>>,
    pub(super) min_score: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DefaultSection {
    pub(super) route: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SemanticSection {
    #[serde(default = "default_aggregation")]
    pub(super) aggregation: Aggregation,
    #[serde(default = "default_top_k")]
    pub(super) top_k: Spanned<usize>,
    #[serde(default = "default_threshold")]
    pub(super) threshold: Spanned<f32>,
    #[serde(default = "default_follow_up_words")]
    pub(super) follow_up_words: usize,
    pub(super) encoder: Option<Spanned<String>>,
}

impl Default for SemanticSection {
    fn default() -> Self {
        SemanticSection {
            aggregation: default_aggregation(),
            top_k: default_top_k(),
            threshold: default_threshold(),
            follow_up_words: default_follow_up_words(),
            encoder: None,
        }
    }
}

fn default_aggregation() -> Aggregation {
    Aggregation::TopKMean
}

fn default_top_k() -> Spanned<usize> {
    unspanned(2)
}

fn default_threshold() -> Spanned<f32> {
    unspanned(0.5)
}

fn default_follow_up_words() -> usize {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamSection {
    #[serde(default = "default_timeout_ms")]
    pub(super) timeout_ms: Spanned<u64>,
    #[serde(default = "default_idle_timeout_ms")]
    pub(super) idle_timeout_ms: Spanned<u64>,
    #[serde(default = "default_max_retries")]
    pub(super) max_retries: Spanned<u32>,
    #[serde(default = "default_backoff_base_ms")]
    pub(super) backoff_base_ms: Spanned<u64>,
    #[serde(default = "default_backoff_max_ms")]
    pub(super) backoff_max_ms: Spanned<u64>,
    #[serde(default = "default_max_retry_after_ms")]
    pub(super) max_retry_after_ms: Spanned<u64>,
    #[serde(default = "default_request_deadline_ms")]
    pub(super) request_deadline_ms: Spanned<u64>,
}

impl Default for UpstreamSection {
    fn default() -> Self {
        UpstreamSection {
            timeout_ms: default_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_retries: default_max_retries(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            max_retry_after_ms: default_max_retry_after_ms(),
            request_deadline_ms: default_request_deadline_ms(),
        }
    }
}

fn default_timeout_ms() -> Spanned<u64> {
    unspanned(60_000)
}

fn default_idle_timeout_ms() -> Spanned<u64> {
    unspanned(60_000)
}

fn default_max_retries() -> Spanned<u32> {
    unspanned(1)
}

fn default_backoff_base_ms() -> Spanned<u64> {
    unspanned(250)
}

fn default_backoff_max_ms() -> Spanned<u64> {
    unspanned(4_000)
}

fn default_request_deadline_ms() -> Spanned<u64> {
    unspanned(120_000)
}

fn default_max_retry_after_ms() -> Spanned<u64> {
    unspanned(10_000)
}
