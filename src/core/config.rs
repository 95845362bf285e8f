//! `switchyard.toml`: parsing and validation.
//!
//! A router with a typo in its config must not half-work, so the whole file is checked up front —
//! unknown keys, dangling model and provider references, regexes that do not compile, impossible
//! bounds — and each problem is reported as `FILE:LINE:COLUMN: reason`. The same code runs in the
//! CLI (`switchyard check-config`) and at Worker start, where a bad config becomes a clear 500.
//!
//! Fields whose problems are found after parsing keep their source span (`Spanned`) so that the
//! error can still point at the line.

use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use toml::Spanned;

/// Default request-body limit: room for a ~1M-character prompt plus JSON overhead.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    pub providers: BTreeMap<String, Spanned<ProviderConfig>>,
    pub models: BTreeMap<String, Spanned<ModelConfig>>,
    pub routes: Vec<Spanned<RouteConfig>>,
    pub default: DefaultConfig,
    #[serde(default)]
    pub semantic: SemanticConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
}

/// How upstream calls are timed, retried and backed off (`[upstream]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Time allowed for a model to start answering: its response headers and, when streaming,
    /// its first event. Non-streamed answers usually come whole, headers last, so for them this
    /// bounds the whole generation. A model can set its own `timeout_ms`.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Longest silence allowed once a model has started answering: between two stream events,
    /// or while reading a whole answer's body.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Extra tries of the same model after a retryable failure, before falling back.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Backoff before retry n (0-based) is drawn from [cap/2, cap], cap = min(max, base * 2^n).
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// An upstream asking (by `retry-after`) for a longer wait than this is not retried: the next
    /// model is tried at once instead.
    #[serde(default = "default_max_retry_after_ms")]
    pub max_retry_after_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            timeout_ms: default_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            max_retries: default_max_retries(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            max_retry_after_ms: default_max_retry_after_ms(),
        }
    }
}

fn default_timeout_ms() -> u64 {
    60_000
}

fn default_idle_timeout_ms() -> u64 {
    60_000
}

fn default_max_retries() -> u32 {
    1
}

fn default_backoff_base_ms() -> u64 {
    250
}

fn default_backoff_max_ms() -> u64 {
    4_000
}

fn default_max_retry_after_ms() -> u64 {
    10_000
}

/// How level 2 scores a route from the similarities of the request to its exemplars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The best single exemplar.
    Max,
    /// The mean of the `top_k` best exemplars: one lucky exemplar counts for less.
    TopKMean,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticConfig {
    #[serde(default = "default_aggregation")]
    pub aggregation: Aggregation,
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Threshold of routes that set none.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// A latest user message with fewer words than this is a follow-up ("and in Python?"): the
    /// previous user message is embedded with it.
    #[serde(default = "default_follow_up_words")]
    pub follow_up_words: usize,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig {
            aggregation: default_aggregation(),
            top_k: default_top_k(),
            threshold: default_threshold(),
            follow_up_words: default_follow_up_words(),
        }
    }
}

fn default_aggregation() -> Aggregation {
    Aggregation::TopKMean
}

fn default_top_k() -> usize {
    2
}

fn default_threshold() -> f32 {
    0.5
}

fn default_follow_up_words() -> usize {
    5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Names of secrets holding accepted bearer keys. Empty: no auth (local development only).
    #[serde(default)]
    pub auth_keys: Vec<Spanned<String>>,
    /// Origins allowed to call from a browser; `"*"` allows any.
    #[serde(default = "default_cors_origins")]
    pub cors_origins: Vec<Spanned<String>>,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            auth_keys: Vec::new(),
            cors_origins: default_cors_origins(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

fn default_cors_origins() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "*".to_string())]
}

fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub base_url: Spanned<String>,
    /// Name of the secret holding the upstream key; none for keyless local servers.
    pub api_key: Option<Spanned<String>>,
    /// Extra request headers, each naming the secret that holds its value: e.g. the Cloudflare
    /// Access service token guarding a tunnel to a model server at home.
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<String>>,
}

impl ProviderConfig {
    /// Names of every secret this provider's requests need.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.api_key.iter().chain(self.headers.values()).map(|k| k.get_ref().as_str())
    }
}

/// Longest timeout or wait the config may set: one hour.
pub const MAX_WAIT_MS: u64 = 3_600_000;

/// Headers the router sets itself, which a provider's `headers` may not replace.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "content-type",
    "accept",
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "anthropic-version",
    "transfer-encoding",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: Spanned<String>,
    /// The model id sent upstream; defaults to the table key.
    pub upstream: Option<String>,
    pub context_window: u32,
    #[serde(default = "free")]
    pub price: Price,
    #[serde(default = "default_tier")]
    pub tier: Tier,
    /// Overrides `[upstream] timeout_ms` for this model.
    pub timeout_ms: Option<u64>,
    /// `max_tokens` sent when the client sets none and the upstream requires one (Anthropic).
    #[serde(default = "default_max_output_tokens")]
    pub max_output_tokens: u32,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    /// Preferred model first, then fallbacks in order.
    pub models: Vec<Spanned<String>>,
    /// Level 1: the route matches when any of these regexes matches the latest user message…
    #[serde(default)]
    pub keywords: Vec<Spanned<String>>,
    /// …and none of these does.
    #[serde(default)]
    pub unless: Vec<Spanned<String>>,
    /// Level 1: bounds on the counted prompt tokens (inclusive).
    pub min_tokens: Option<Spanned<u64>>,
    pub max_tokens: Option<u64>,
    /// Level 2 (semantic routing): sentences typical of this route.
    #[serde(default)]
    pub exemplars: Vec<String>,
    /// Level 2: the least score (cosine similarity, aggregated) for the route to match;
    /// `[semantic] threshold` when unset.
    pub threshold: Option<Spanned<f32>>,
    /// Keyword matches count only when, by meaning too, this is the route: its semantic score
    /// clears its threshold and no other route's is higher.
    #[serde(default)]
    pub semantic_confirm: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultConfig {
    pub route: Spanned<String>,
}

/// Route names with a fixed meaning in the `model` field.
pub const RESERVED_NAMES: [&str; 2] = ["auto", "explicit"];

impl Config {
    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = line_column(text, span.start);
            ConfigError { file: file.to_string(), line, column, message }
        };
        let config: Config = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            at(span, e.message().trim().to_string())
        })?;
        config.validate().map_err(|(span, message)| at(span, message))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), (std::ops::Range<usize>, String)> {
        for key in &self.server.auth_keys {
            check_secret_name(key, "server.auth_keys")?;
        }
        for origin in &self.server.cors_origins {
            let o = origin.get_ref();
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err((
                    origin.span(),
                    format!("cors origin {o:?} must be \"*\" or start with http:// or https://"),
                ));
            }
        }
        if self.server.max_body_bytes < 1024 {
            return Err((0..0, "server.max_body_bytes must be at least 1024".into()));
        }
        for (name, provider) in &self.providers {
            let url = provider.get_ref().base_url.get_ref();
            let parsed = url::Url::parse(url).map_err(|e| {
                (
                    provider.get_ref().base_url.span(),
                    format!("providers.{name}.base_url {url:?} is not a URL: {e}"),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err((
                    provider.get_ref().base_url.span(),
                    format!("providers.{name}.base_url must be http:// or https://"),
                ));
            }
            if let Some(key) = &provider.get_ref().api_key {
                check_secret_name(key, &format!("providers.{name}.api_key"))?;
            }
            for (header, secret) in &provider.get_ref().headers {
                let lower = header.to_ascii_lowercase();
                let token = !header.is_empty()
                    && header.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !token || RESERVED_HEADERS.contains(&lower.as_str()) {
                    return Err((
                        secret.span(),
                        format!("providers.{name}.headers: {header:?} is not a header name the router lets you set"),
                    ));
                }
                check_secret_name(secret, &format!("providers.{name}.headers.{header}"))?;
            }
        }
        for (name, model) in &self.models {
            let m = model.get_ref();
            if !self.providers.contains_key(m.provider.get_ref()) {
                return Err((
                    m.provider.span(),
                    format!("models.{name}.provider: unknown provider {:?}", m.provider.get_ref()),
                ));
            }
            if m.context_window == 0 {
                return Err((model.span(), format!("models.{name}.context_window must be positive")));
            }
            if !(m.price.input >= 0.0 && m.price.output >= 0.0) {
                return Err((model.span(), format!("models.{name}.price must not be negative")));
            }
            if RESERVED_NAMES.contains(&name.as_str()) || !is_header_safe(name) {
                return Err((model.span(), format!("model name {name:?} is reserved or has characters other than letters, digits and ._:/@+-")));
            }
        }
        if self.routes.is_empty() {
            return Err((0..0, "at least one [[routes]] entry is required".into()));
        }
        let mut seen = BTreeMap::new();
        for route in &self.routes {
            let r = route.get_ref();
            let name = r.name.get_ref();
            if RESERVED_NAMES.contains(&name.as_str()) || !is_header_safe(name) {
                return Err((
                    r.name.span(),
                    format!("route name {name:?} is reserved or has characters other than letters, digits and ._:/@+-"),
                ));
            }
            if seen.insert(name.clone(), ()).is_some() {
                return Err((r.name.span(), format!("route {name:?} is defined twice")));
            }
            if self.models.contains_key(name) {
                return Err((
                    r.name.span(),
                    format!("route {name:?} has the same name as a model; the `model` field could not tell them apart"),
                ));
            }
            if r.models.is_empty() {
                return Err((route.span(), format!("route {name:?} lists no models")));
            }
            for model in &r.models {
                if !self.models.contains_key(model.get_ref()) {
                    return Err((
                        model.span(),
                        format!("route {name:?}: unknown model {:?}", model.get_ref()),
                    ));
                }
            }
            for pattern in r.keywords.iter().chain(&r.unless) {
                Regex::new(pattern.get_ref()).map_err(|e| {
                    (pattern.span(), format!("route {name:?}: invalid regex: {}", one_line(&e.to_string())))
                })?;
            }
            if let (Some(min), Some(max)) = (&r.min_tokens, r.max_tokens) {
                if *min.get_ref() > max {
                    return Err((min.span(), format!("route {name:?}: min_tokens is above max_tokens")));
                }
            }
            if let Some(threshold) = &r.threshold {
                if !(-1.0..=1.0).contains(threshold.get_ref()) {
                    return Err((threshold.span(), format!("route {name:?}: threshold must be in [-1, 1]")));
                }
            }
        }
        let u = &self.upstream;
        // Timers take milliseconds as a 32-bit int: anything near that would fire at once.
        let longest = [u.timeout_ms, u.idle_timeout_ms, u.backoff_max_ms, u.max_retry_after_ms];
        if longest.iter().any(|&ms| ms > MAX_WAIT_MS)
            || self.models.values().any(|m| m.get_ref().timeout_ms.is_some_and(|ms| ms > MAX_WAIT_MS))
        {
            return Err((
                0..0,
                format!("upstream waits and timeouts must be at most {MAX_WAIT_MS} ms (one hour)"),
            ));
        }
        if u.timeout_ms == 0 || u.idle_timeout_ms == 0 {
            return Err((0..0, "upstream.timeout_ms and upstream.idle_timeout_ms must be positive".into()));
        }
        if u.max_retries > 10 {
            return Err((0..0, "upstream.max_retries must be at most 10".into()));
        }
        if u.backoff_base_ms > u.backoff_max_ms {
            return Err((0..0, "upstream.backoff_base_ms must not exceed upstream.backoff_max_ms".into()));
        }
        for (name, model) in &self.models {
            if model.get_ref().timeout_ms == Some(0) || model.get_ref().max_output_tokens == 0 {
                return Err((
                    model.span(),
                    format!("models.{name}: timeout_ms and max_output_tokens must be positive"),
                ));
            }
        }
        if self.semantic.top_k == 0 {
            return Err((0..0, "semantic.top_k must be at least 1".into()));
        }
        if !(-1.0..=1.0).contains(&self.semantic.threshold) {
            return Err((0..0, "semantic.threshold must be in [-1, 1]".into()));
        }
        for route in &self.routes {
            let r = route.get_ref();
            if r.semantic_confirm && (r.exemplars.is_empty() || r.keywords.is_empty()) {
                return Err((
                    r.name.span(),
                    format!(
                        "route {:?}: semantic_confirm needs both keywords and exemplars",
                        r.name.get_ref()
                    ),
                ));
            }
            if r.exemplars.iter().any(|e| e.trim().is_empty()) {
                return Err((r.name.span(), format!("route {:?}: an exemplar is empty", r.name.get_ref())));
            }
        }
        let default = self.default.route.get_ref();
        if !seen.contains_key(default) {
            return Err((self.default.route.span(), format!("default.route: unknown route {default:?}")));
        }
        Ok(())
    }

    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        self.routes.iter().map(|r| r.get_ref()).find(|r| r.name.get_ref() == name)
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.get(name).map(|m| m.get_ref())
    }

    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.get(name).map(|p| p.get_ref())
    }

    /// The threshold in force for a route.
    pub fn threshold(&self, route: &RouteConfig) -> f32 {
        route.threshold.as_ref().map_or(self.semantic.threshold, |t| *t.get_ref())
    }

    pub fn default_route(&self) -> &str {
        self.default.route.get_ref()
    }

    /// Names of every secret the config refers to (router keys and upstream keys).
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.server.auth_keys.iter().map(|k| k.get_ref().as_str()).collect();
        names.extend(self.providers.values().flat_map(|p| p.get_ref().secret_names()));
        names
    }
}

impl ModelConfig {
    /// The id sent to the upstream.
    pub fn upstream_id<'a>(&'a self, key: &'a str) -> &'a str {
        self.upstream.as_deref().unwrap_or(key)
    }

    /// Time allowed for this model to start answering.
    pub fn timeout_ms(&self, upstream: &UpstreamConfig) -> u64 {
        self.timeout_ms.unwrap_or(upstream.timeout_ms)
    }
}

impl Price {
    /// USD for a call with these token counts.
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input + completion_tokens as f64 * self.output) / 1_000_000.0
    }
}

/// Secret names look like environment variables; anything else is probably a pasted key.
fn check_secret_name(name: &Spanned<String>, field: &str) -> Result<(), (std::ops::Range<usize>, String)> {
    let n = name.get_ref();
    let valid = !n.is_empty()
        && n.len() <= 64
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !n.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        // Never echo the value: it may be a real key pasted by mistake.
        Err((
            name.span(),
            format!("{field} must name a secret (letters, digits, _), not hold a key; store the key with `wrangler secret put NAME`"),
        ))
    }
}

/// Route and model names travel in response headers, so they are kept to a safe alphabet.
fn is_header_safe(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, column)
}
