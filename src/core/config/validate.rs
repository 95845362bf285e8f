//! Validation: the parsed file checked and turned into the plain types of [`super`].
//!
//! A router with a typo in its config must not half-work, so the whole file is checked up front:
//! unknown keys, dangling model and provider references, regexes that do not compile, impossible
//! bounds. Each problem is reported as `FILE:LINE:COLUMN: reason`. This is also where defaults
//! are applied, names resolved and regexes compiled, once, so nothing downstream re-checks or
//! re-reads a raw value.

use super::raw::{
    CascadeSection, ClassifierSection, ConfigFile, ConversationSection, LlmRouterSection, LogSection,
    ModelSection, ProviderSection, RouteSection, SemanticSection, ServerSection, UpstreamSection,
};
use super::{
    Cascade, ClassifierSettings, Config, ConfigError, ConversationSettings, LlmRouterSettings, LlmWhen,
    LogSettings, Model, Provider, ProviderKind, Route, RouteSemantic, RoutingEncoderChoice, ScoreMethod,
    SemanticSettings, Server, UpstreamPolicy, MAX_WAIT_MS, RESERVED_NAMES,
};
use crate::core::conversation::{
    DEFAULT_FRUSTRATION_EXEMPLARS, DEFAULT_FRUSTRATION_PHRASES, DEFAULT_RESOLVED_PHRASES,
};
use crate::core::rules::{RouteRules, TokenBounds};
use regex::Regex;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

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

/// A problem and the bytes of the file it is about.
type Problem = (Range<usize>, String);

impl Default for UpstreamPolicy {
    /// The policy of a config without `[upstream]`.
    fn default() -> Self {
        upstream_policy(&UpstreamSection::default())
    }
}

/// Parses, checks and compiles `text`; `file` names it in errors.
pub(super) fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
    let at = |span: Range<usize>, message: String| {
        let (line, column) = line_column(text, span.start);
        ConfigError { file: file.to_string(), line, column, message }
    };
    let parsed: ConfigFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        at(span, without_values(e.message().trim()))
    })?;
    compile(parsed).map_err(|(span, message)| at(span, message))
}

/// A TOML or type error without the values it quotes (`invalid type: string "sk-…", expected a
/// sequence`): the value at fault may be a key pasted where its secret's name belongs, and the
/// line and column already point at it. Key names, in backticks, stay.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let (mut quoted, mut escaped) = (false, false);
    for c in message.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                out.push_str("\"…");
            }
            (_, true) if escaped => escaped = false,
            ('\\', true) => escaped = true,
            ('"', true) => {
                quoted = false;
                out.push('"');
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    // An enum's unknown value is in backticks: `unknown variant `x`, expected one of …`.
    match out.find("unknown variant `") {
        Some(at) => {
            let value = at + "unknown variant `".len();
            match out[value..].find('`') {
                Some(end) => format!("{}unknown variant{}", &out[..at], &out[value + end + 1..]),
                None => out,
            }
        }
        None => out,
    }
}

/// Checks every section, then builds the [`Config`].
fn compile(file: ConfigFile) -> Result<Config, Problem> {
    let server = server(&file.server)?;
    let providers = file
        .providers
        .iter()
        .map(|(name, p)| Ok((name.clone(), provider(name, p.get_ref())?)))
        .collect::<Result<BTreeMap<_, _>, Problem>>()?;
    let upstream = upstream(&file.upstream)?;
    let models = file
        .models
        .iter()
        .map(|(name, m)| Ok((name.clone(), model(name, m, &file.providers, &upstream)?)))
        .collect::<Result<BTreeMap<_, _>, Problem>>()?;
    let semantic = semantic(&file.semantic)?;
    if file.routes.is_empty() {
        return Err((0..0, "at least one [[routes]] entry is required".into()));
    }
    let mut routes: Vec<Route> = Vec::with_capacity(file.routes.len());
    for section in &file.routes {
        let route = route(section, &models, &providers, *file.semantic.threshold.get_ref())?;
        if routes.iter().any(|r| r.name == route.name) {
            return Err((section.get_ref().name.span(), format!("route {:?} is defined twice", route.name)));
        }
        routes.push(route);
    }
    let default_route = file.default.route.get_ref().clone();
    if !routes.iter().any(|r| r.name == default_route) {
        return Err((file.default.route.span(), format!("default.route: unknown route {default_route:?}")));
    }
    let classifier = file.classifier.as_ref().map(classifier).transpose()?;
    let llm_router = file.llm_router.as_ref().map(|s| llm_router(s, &models, &file.routes)).transpose()?;
    let log = log(&file.log)?;
    let conversation = file.conversation.as_ref().map(|c| conversation(c, &models)).transpose()?;
    Ok(Config {
        server,
        providers,
        models,
        routes,
        default_route,
        semantic,
        upstream,
        classifier,
        llm_router,
        log,
        conversation,
    })
}

/// Longest `[conversation] idle_seconds`: a year.
const MAX_IDLE_SECONDS: u64 = 31_536_000;

/// Level 4 across turns: a known model to escalate to, limits of at least one turn, similarity
/// thresholds in [-1, 1] with a new topic below a rephrasing, phrases that compile.
fn conversation(
    c: &ConversationSection,
    models: &BTreeMap<String, Model>,
) -> Result<ConversationSettings, Problem> {
    let escalate_to = c.escalate_to.get_ref();
    if !models.contains_key(escalate_to) {
        return Err((
            c.escalate_to.span(),
            format!("conversation.escalate_to: unknown model {escalate_to:?}"),
        ));
    }
    let turns = |value: &Option<Spanned<u32>>, key: &str, default: u32| match value {
        Some(v) if !(1..=1000).contains(v.get_ref()) => {
            Err((v.span(), format!("conversation.{key} must be between 1 and 1000")))
        }
        Some(v) => Ok(*v.get_ref()),
        None => Ok(default),
    };
    let similarity = |value: &Option<Spanned<f32>>, key: &str, default: f32| match value {
        Some(v) if !(-1.0..=1.0).contains(v.get_ref()) => {
            Err((v.span(), format!("conversation.{key} must be in [-1, 1] (a cosine similarity)")))
        }
        Some(v) => Ok(*v.get_ref()),
        None => Ok(default),
    };
    let phrases = |listed: &Option<Vec<Spanned<String>>>, key: &str, defaults: &[&str]| match listed {
        Some(listed) => listed
            .iter()
            .map(|p| {
                Regex::new(p.get_ref()).map_err(|e| {
                    (p.span(), format!("conversation.{key}: invalid regex: {}", one_line(&e.to_string())))
                })
            })
            .collect::<Result<Vec<_>, Problem>>(),
        // The built-in phrases compile (a native test parses them); were one not to, the config
        // would be refused at the section, not panic.
        None => defaults
            .iter()
            .map(|p| Regex::new(p).map_err(|e| (0..0, format!("conversation.{key}: built-in phrase: {e}"))))
            .collect::<Result<Vec<_>, Problem>>(),
    };
    let rephrase_threshold = similarity(&c.rephrase_threshold, "rephrase_threshold", 0.6)?;
    let new_topic_threshold = similarity(&c.new_topic_threshold, "new_topic_threshold", 0.1)?;
    if new_topic_threshold >= rephrase_threshold {
        let at = c.new_topic_threshold.as_ref().or(c.rephrase_threshold.as_ref()).map_or(0..0, Spanned::span);
        return Err((at, "conversation.new_topic_threshold must be below rephrase_threshold".into()));
    }
    let idle_seconds = match &c.idle_seconds {
        Some(v) if !(1..=MAX_IDLE_SECONDS).contains(v.get_ref()) => {
            return Err((
                v.span(),
                format!("conversation.idle_seconds must be between 1 and {MAX_IDLE_SECONDS}"),
            ))
        }
        Some(v) => *v.get_ref(),
        None => 86_400,
    };
    let step_down_after = match &c.step_down_after {
        Some(v) if *v.get_ref() > 1000 => {
            return Err((v.span(), "conversation.step_down_after must be at most 1000 (0: never)".into()))
        }
        Some(v) => *v.get_ref(),
        None => 0,
    };
    Ok(ConversationSettings {
        escalate_to: escalate_to.clone(),
        unresolved_turns: turns(&c.unresolved_turns, "unresolved_turns", 5)?,
        frustrated_turns: turns(&c.frustrated_turns, "frustrated_turns", 2)?,
        frustration_phrases: phrases(
            &c.frustration_phrases,
            "frustration_phrases",
            &DEFAULT_FRUSTRATION_PHRASES,
        )?,
        frustration_exemplars: c
            .frustration_exemplars
            .clone()
            .unwrap_or_else(|| DEFAULT_FRUSTRATION_EXEMPLARS.iter().map(|e| e.to_string()).collect()),
        frustration_threshold: similarity(&c.frustration_threshold, "frustration_threshold", 0.55)?,
        resolved_phrases: phrases(&c.resolved_phrases, "resolved_phrases", &DEFAULT_RESOLVED_PHRASES)?,
        rephrase_threshold,
        new_topic_threshold,
        idle_seconds,
        step_down_after,
    })
}

/// Longest `[log] retention_days`: ten years.
const MAX_RETENTION_DAYS: u32 = 3_650;

fn log(section: &LogSection) -> Result<LogSettings, Problem> {
    let days = *section.retention_days.get_ref();
    if !(1..=MAX_RETENTION_DAYS).contains(&days) {
        return Err((
            section.retention_days.span(),
            format!("log.retention_days must be between 1 and {MAX_RETENTION_DAYS}"),
        ));
    }
    Ok(LogSettings { store_text: section.store_text, retention_days: days })
}

/// Longest time `[llm_router] timeout_ms` may give the call: it is spent before the answer starts.
const MAX_LLM_ROUTER_TIMEOUT_MS: u64 = 60_000;

/// Longest `[llm_router] cache_seconds`: a day.
const MAX_CACHE_SECONDS: u64 = 86_400;

fn llm_router(
    section: &LlmRouterSection,
    models: &BTreeMap<String, Model>,
    routes: &[Spanned<RouteSection>],
) -> Result<LlmRouterSettings, Problem> {
    let model = section.model.get_ref();
    if !models.contains_key(model) {
        return Err((section.model.span(), format!("llm_router.model: unknown model {model:?}")));
    }
    let timeout = *section.timeout_ms.get_ref();
    if !(1..=MAX_LLM_ROUTER_TIMEOUT_MS).contains(&timeout) {
        return Err((
            section.timeout_ms.span(),
            format!("llm_router.timeout_ms must be between 1 and {MAX_LLM_ROUTER_TIMEOUT_MS}"),
        ));
    }
    if let Some(prompt) = section.prompt.as_ref().filter(|p| p.get_ref().trim().is_empty()) {
        return Err((
            prompt.span(),
            "llm_router.prompt must not be empty (leave it out for the built-in one)".into(),
        ));
    }
    let margin = *section.margin.get_ref();
    if !(0.0..=1.0).contains(&margin) {
        return Err((section.margin.span(), "llm_router.margin must be in [0, 1]".into()));
    }
    if *section.cache_seconds.get_ref() > MAX_CACHE_SECONDS {
        return Err((
            section.cache_seconds.span(),
            format!("llm_router.cache_seconds must be at most {MAX_CACHE_SECONDS}"),
        ));
    }
    let chosen = llm_router_routes(section, routes)?;
    Ok(LlmRouterSettings {
        model: model.clone(),
        when: section.when,
        timeout_ms: timeout,
        prompt: section.prompt.as_ref().map(|p| p.get_ref().clone()),
        margin,
        cache_seconds: *section.cache_seconds.get_ref(),
        routes: chosen,
    })
}

/// The routes the LLM may choose (`routes`, else all), in config order. The LLM reads their
/// descriptions, so each must have one, unless the router is off (`when = "never"`).
fn llm_router_routes(
    section: &LlmRouterSection,
    routes: &[Spanned<RouteSection>],
) -> Result<Vec<String>, Problem> {
    let named = |name: &str| routes.iter().find(|r| r.get_ref().name.get_ref() == name);
    if let Some(listed) = &section.routes {
        if let Some(unknown) = listed.iter().find(|n| named(n.get_ref()).is_none()) {
            return Err((
                unknown.span(),
                format!("llm_router.routes: unknown route {:?}", unknown.get_ref()),
            ));
        }
        if listed.len() < 2 {
            return Err((0..0, "llm_router.routes must name at least two routes to choose from".into()));
        }
    }
    let allowed = |name: &str| section.routes.as_ref().is_none_or(|l| l.iter().any(|n| n.get_ref() == name));
    let chosen: Vec<&RouteSection> =
        routes.iter().map(|r| r.get_ref()).filter(|r| allowed(r.name.get_ref())).collect();
    if section.when != LlmWhen::Never {
        if let Some(r) = chosen.iter().find(|r| r.description.trim().is_empty()) {
            return Err((
                r.name.span(),
                format!(
                    "route {:?} needs a description: the LLM router chooses by the routes' descriptions \
                     (or leave the route out of llm_router.routes)",
                    r.name.get_ref()
                ),
            ));
        }
    }
    Ok(chosen.iter().map(|r| r.name.get_ref().clone()).collect())
}

/// True for a relative path that stays inside the model folder.
pub fn inside_model_folder(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && path.split(['/', '\\']).all(|part| !part.is_empty() && part != ".." && part != ".")
}

fn classifier(section: &ClassifierSection) -> Result<ClassifierSettings, Problem> {
    let path = section.path.get_ref();
    if !inside_model_folder(path) {
        return Err((
            section.path.span(),
            format!("classifier.path {path:?} must be a file name inside the model folder, like \"classifier.json\""),
        ));
    }
    let min = *section.min_confidence.get_ref();
    if !(min > 0.0 && min <= 1.0) {
        return Err((section.min_confidence.span(), "classifier.min_confidence must be in (0, 1]".into()));
    }
    Ok(ClassifierSettings { path: path.clone(), min_confidence: min })
}

fn server(section: &ServerSection) -> Result<Server, Problem> {
    for key in &section.auth_keys {
        check_secret_name(key, "server.auth_keys")?;
    }
    let allow_unauthenticated = section.allow_unauthenticated.as_ref().is_some_and(|a| *a.get_ref());
    if let Some(allow) = section.allow_unauthenticated.as_ref().filter(|_| allow_unauthenticated) {
        if !section.auth_keys.is_empty() {
            return Err((
                allow.span(),
                "server.allow_unauthenticated = true opens the router, but server.auth_keys lists keys: choose one".into(),
            ));
        }
    }
    for key in &section.admin_keys {
        check_secret_name(key, "server.admin_keys")?;
        if section.auth_keys.iter().any(|k| k.get_ref() == key.get_ref()) {
            return Err((
                key.span(),
                format!(
                    "server.admin_keys: {:?} is also a router key; an admin key must be a secret of its own",
                    key.get_ref()
                ),
            ));
        }
    }
    for origin in &section.cors_origins {
        let o = origin.get_ref();
        if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
            return Err((
                origin.span(),
                format!("cors origin {o:?} must be \"*\" or start with http:// or https://"),
            ));
        }
    }
    if *section.max_body_bytes.get_ref() < 1024 {
        return Err((section.max_body_bytes.span(), "server.max_body_bytes must be at least 1024".into()));
    }
    Ok(Server {
        auth_keys: section.auth_keys.iter().map(|k| k.get_ref().clone()).collect(),
        admin_keys: section.admin_keys.iter().map(|k| k.get_ref().clone()).collect(),
        allow_unauthenticated,
        cors_origins: section.cors_origins.iter().map(|o| o.get_ref().clone()).collect(),
        max_body_bytes: *section.max_body_bytes.get_ref(),
    })
}

fn provider(name: &str, section: &ProviderSection) -> Result<Provider, Problem> {
    let url = section.base_url.get_ref();
    let parsed = url::Url::parse(url)
        .map_err(|e| (section.base_url.span(), format!("providers.{name}.base_url is not a URL: {e}")))?;
    check_base_url(name, &parsed, section.allow_plain_http).map_err(|m| (section.base_url.span(), m))?;
    if let Some(key) = &section.api_key {
        check_secret_name(key, &format!("providers.{name}.api_key"))?;
    }
    for (header, secret) in &section.headers {
        let lower = header.to_ascii_lowercase();
        let token =
            !header.is_empty() && header.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !token || RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err((
                secret.span(),
                format!("providers.{name}.headers: {header:?} is not a header name the router lets you set"),
            ));
        }
        check_secret_name(secret, &format!("providers.{name}.headers.{header}"))?;
    }
    Ok(Provider {
        kind: section.kind,
        base_url: url.trim_end_matches('/').to_string(),
        api_key: section.api_key.as_ref().map(|k| k.get_ref().clone()),
        headers: section.headers.iter().map(|(h, s)| (h.clone(), s.get_ref().clone())).collect(),
    })
}

/// A base URL carries no credentials (they belong in secrets, named by `api_key` or `headers`, and
/// a URL is printed in places a secret is not), has no query to append paths after, and is
/// `https://` unless it points at this machine or the operator opted into plain `http://`.
/// Messages never quote the URL: it may hold exactly what must not be printed.
fn check_base_url(name: &str, url: &url::Url, allow_plain_http: bool) -> Result<(), String> {
    let field = format!("providers.{name}.base_url");
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{field} must be http:// or https://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{field} carries credentials (user:password@); put the key in a secret named by api_key or headers"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{field} must not have a query or fragment; a key belongs in a secret named by api_key"
        ));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host == "localhost" || host.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback && !allow_plain_http {
        return Err(format!(
            "{field} is plain http:// to a host that is not loopback, so its key and prompts would cross the network unencrypted; use https://, or set providers.{name}.allow_plain_http = true for a network you trust"
        ));
    }
    Ok(())
}

fn model(
    name: &str,
    spanned: &Spanned<ModelSection>,
    providers: &BTreeMap<String, Spanned<ProviderSection>>,
    upstream: &UpstreamPolicy,
) -> Result<Model, Problem> {
    let m = spanned.get_ref();
    let here = |message: String| Err((spanned.span(), message));
    if !providers.contains_key(m.provider.get_ref()) {
        return Err((
            m.provider.span(),
            format!("models.{name}.provider: unknown provider {:?}", m.provider.get_ref()),
        ));
    }
    if m.context_window == 0 {
        return here(format!("models.{name}.context_window must be positive"));
    }
    if !(m.price.input >= 0.0 && m.price.output >= 0.0) {
        return here(format!("models.{name}.price must not be negative"));
    }
    if RESERVED_NAMES.contains(&name) || !is_header_safe(name) {
        return here(format!(
            "model name {name:?} is reserved or has characters other than letters, digits and ._:/@+-"
        ));
    }
    if m.timeout_ms.is_some_and(|ms| ms > MAX_WAIT_MS) {
        return here(too_long());
    }
    if m.timeout_ms == Some(0) || m.max_output_tokens == 0 {
        return here(format!("models.{name}: timeout_ms and max_output_tokens must be positive"));
    }
    Ok(Model {
        provider: m.provider.get_ref().clone(),
        upstream: m.upstream.clone().unwrap_or_else(|| name.to_string()),
        context_window: m.context_window,
        price: m.price,
        tier: m.tier,
        timeout_ms: m.timeout_ms.unwrap_or(upstream.timeout_ms),
        max_output_tokens: m.max_output_tokens,
    })
}

fn route(
    spanned: &Spanned<RouteSection>,
    models: &BTreeMap<String, Model>,
    providers: &BTreeMap<String, Provider>,
    default_threshold: f32,
) -> Result<Route, Problem> {
    let r = spanned.get_ref();
    let name = r.name.get_ref();
    if RESERVED_NAMES.contains(&name.as_str()) || !is_header_safe(name) {
        return Err((
            r.name.span(),
            format!(
                "route name {name:?} is reserved or has characters other than letters, digits and ._:/@+-"
            ),
        ));
    }
    if models.contains_key(name) {
        return Err((
            r.name.span(),
            format!(
                "route {name:?} has the same name as a model; the `model` field could not tell them apart"
            ),
        ));
    }
    if r.models.is_empty() && r.cascade.is_none() {
        return Err((spanned.span(), format!("route {name:?} lists no models")));
    }
    for model in &r.models {
        if !models.contains_key(model.get_ref()) {
            return Err((model.span(), format!("route {name:?}: unknown model {:?}", model.get_ref())));
        }
    }
    let rules = route_rules(name, r)?;
    let semantic = route_semantic(name, r, default_threshold)?;
    let cascade = r.cascade.as_ref().map(|c| cascade(name, c, models, providers)).transpose()?;
    Ok(Route {
        name: name.clone(),
        description: r.description.clone(),
        models: r.models.iter().map(|m| m.get_ref().clone()).collect(),
        rules,
        semantic,
        cascade,
    })
}

/// The score a cascade keeps an answer at when the config does not say.
const DEFAULT_MIN_SCORE: f64 = 0.7;

/// Level 4, one turn: the chain's models exist, none twice; the method is known; the minimum is
/// a normalised score; log-probabilities are asked only of APIs that return them.
fn cascade(
    route: &str,
    c: &CascadeSection,
    models: &BTreeMap<String, Model>,
    providers: &BTreeMap<String, Provider>,
) -> Result<Cascade, Problem> {
    let (chain_span, listed) = (c.chain.span(), c.chain.get_ref());
    if listed.len() < 2 {
        return Err((
            chain_span,
            format!("route {route:?}: cascade.chain needs at least two models, cheapest first"),
        ));
    }
    for (i, model) in listed.iter().enumerate() {
        if !models.contains_key(model.get_ref()) {
            return Err((
                model.span(),
                format!("route {route:?}: cascade.chain: unknown model {:?}", model.get_ref()),
            ));
        }
        if listed[..i].iter().any(|m| m.get_ref() == model.get_ref()) {
            return Err((
                model.span(),
                format!("route {route:?}: cascade.chain lists {:?} twice", model.get_ref()),
            ));
        }
    }
    let chain: Vec<String> = listed.iter().map(|m| m.get_ref().clone()).collect();
    let score = match &c.score {
        None => ScoreMethod::SelfRating,
        Some(spanned) => score_method(route, spanned, models)?,
    };
    if score == ScoreMethod::Logprobs {
        let kind_of = |m: &String| models.get(m).and_then(|m| providers.get(&m.provider)).map(|p| p.kind);
        if let Some(model) =
            chain[..chain.len() - 1].iter().find(|m| kind_of(m) != Some(ProviderKind::Openai))
        {
            let at = c.score.as_ref().map_or(chain_span.clone(), Spanned::span);
            return Err((at, format!("route {route:?}: score = \"logprobs\" needs OpenAI-compatible APIs, which return them; model {model:?} is not on one (use \"self\" or \"judge:MODEL\")")));
        }
    }
    let min_score = c.min_score.as_ref().map_or(DEFAULT_MIN_SCORE, |m| *m.get_ref());
    if !(0.0..=1.0).contains(&min_score) {
        let at = c.min_score.as_ref().map_or(chain_span, Spanned::span);
        return Err((
            at,
            format!("route {route:?}: cascade.min_score must be in [0, 1] (scores are normalised)"),
        ));
    }
    Ok(Cascade { chain, score, min_score })
}

fn score_method(
    route: &str,
    spanned: &Spanned<String>,
    models: &BTreeMap<String, Model>,
) -> Result<ScoreMethod, Problem> {
    match spanned.get_ref().as_str() {
        "self" => Ok(ScoreMethod::SelfRating),
        "logprobs" => Ok(ScoreMethod::Logprobs),
        other => match other.strip_prefix("judge:") {
            Some(judge) if models.contains_key(judge) => Ok(ScoreMethod::Judge(judge.to_string())),
            Some(judge) => Err((spanned.span(), format!("route {route:?}: cascade.score: unknown judge model {judge:?}"))),
            None => Err((
                spanned.span(),
                format!("route {route:?}: cascade.score must be \"self\", \"judge:MODEL\" or \"logprobs\", not {other:?}"),
            )),
        },
    }
}

/// Level 1: regexes compiled here, once.
fn route_rules(name: &str, r: &RouteSection) -> Result<RouteRules, Problem> {
    let compile = |patterns: &[Spanned<String>]| {
        patterns
            .iter()
            .map(|p| {
                Regex::new(p.get_ref()).map_err(|e| {
                    (p.span(), format!("route {name:?}: invalid regex: {}", one_line(&e.to_string())))
                })
            })
            .collect::<Result<Vec<_>, Problem>>()
    };
    let tokens = TokenBounds {
        min: r.min_tokens.as_ref().map(|t| *t.get_ref()),
        max: r.max_tokens.as_ref().map(|t| *t.get_ref()),
    };
    if let (Some(min), Some(max)) = (&r.min_tokens, tokens.max) {
        if *min.get_ref() > max {
            return Err((min.span(), format!("route {name:?}: min_tokens is above max_tokens")));
        }
    }
    Ok(RouteRules { keywords: compile(&r.keywords)?, unless: compile(&r.unless)?, tokens })
}

/// Level 2: `None` for a route without exemplars.
fn route_semantic(
    name: &str,
    r: &RouteSection,
    default_threshold: f32,
) -> Result<Option<RouteSemantic>, Problem> {
    if let Some(threshold) = &r.threshold {
        if !(-1.0..=1.0).contains(threshold.get_ref()) {
            return Err((threshold.span(), format!("route {name:?}: threshold must be in [-1, 1]")));
        }
    }
    if r.semantic_confirm && (r.exemplars.is_empty() || r.keywords.is_empty()) {
        return Err((
            r.name.span(),
            format!("route {name:?}: semantic_confirm needs both keywords and exemplars"),
        ));
    }
    if r.exemplars.iter().any(|e| e.trim().is_empty()) {
        return Err((r.name.span(), format!("route {name:?}: an exemplar is empty")));
    }
    Ok((!r.exemplars.is_empty()).then(|| RouteSemantic {
        exemplars: r.exemplars.clone(),
        threshold: r.threshold.as_ref().map_or(default_threshold, |t| *t.get_ref()),
        confirm_keywords: r.semantic_confirm,
    }))
}

fn semantic(section: &SemanticSection) -> Result<SemanticSettings, Problem> {
    if *section.top_k.get_ref() == 0 {
        return Err((section.top_k.span(), "semantic.top_k must be at least 1".into()));
    }
    if !(-1.0..=1.0).contains(section.threshold.get_ref()) {
        return Err((section.threshold.span(), "semantic.threshold must be in [-1, 1]".into()));
    }
    let encoder = match &section.encoder {
        Some(path) if !inside_model_folder(path.get_ref()) || !path.get_ref().ends_with(".static") => {
            return Err((
                path.span(),
                format!(
                    "semantic.encoder {:?} must name a static encoder file inside the model folder, \
                     like \"router.static\" (made by `switchyard distill-encoder`)",
                    path.get_ref()
                ),
            ))
        }
        Some(path) => RoutingEncoderChoice::Static { path: path.get_ref().clone() },
        None => RoutingEncoderChoice::MiniLm,
    };
    Ok(SemanticSettings {
        aggregation: section.aggregation,
        top_k: *section.top_k.get_ref(),
        follow_up_words: section.follow_up_words,
        encoder,
    })
}

fn upstream(u: &UpstreamSection) -> Result<UpstreamPolicy, Problem> {
    // Timers take milliseconds as a 32-bit int: anything near that would fire at once.
    let waits =
        [&u.timeout_ms, &u.idle_timeout_ms, &u.backoff_max_ms, &u.max_retry_after_ms, &u.request_deadline_ms];
    if let Some(wait) = waits.iter().find(|ms| *ms.get_ref() > MAX_WAIT_MS) {
        return Err((wait.span(), too_long()));
    }
    if let Some(timeout) =
        [&u.timeout_ms, &u.idle_timeout_ms, &u.request_deadline_ms].iter().find(|ms| *ms.get_ref() == 0)
    {
        return Err((
            timeout.span(),
            "upstream.timeout_ms, idle_timeout_ms and request_deadline_ms must be positive".into(),
        ));
    }
    if *u.max_retries.get_ref() > 10 {
        return Err((u.max_retries.span(), "upstream.max_retries must be at most 10".into()));
    }
    if u.backoff_base_ms.get_ref() > u.backoff_max_ms.get_ref() {
        return Err((
            u.backoff_base_ms.span(),
            "upstream.backoff_base_ms must not exceed upstream.backoff_max_ms".into(),
        ));
    }
    Ok(upstream_policy(u))
}

fn upstream_policy(u: &UpstreamSection) -> UpstreamPolicy {
    UpstreamPolicy {
        timeout_ms: *u.timeout_ms.get_ref(),
        idle_timeout_ms: *u.idle_timeout_ms.get_ref(),
        max_retries: *u.max_retries.get_ref(),
        backoff_base_ms: *u.backoff_base_ms.get_ref(),
        backoff_max_ms: *u.backoff_max_ms.get_ref(),
        max_retry_after_ms: *u.max_retry_after_ms.get_ref(),
        request_deadline_ms: *u.request_deadline_ms.get_ref(),
    }
}

fn too_long() -> String {
    format!("upstream waits and timeouts must be at most {MAX_WAIT_MS} ms (one hour)")
}

/// Secret names look like environment variables; anything else is probably a pasted key.
fn check_secret_name(name: &Spanned<String>, field: &str) -> Result<(), Problem> {
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
