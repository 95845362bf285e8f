//! Level 1: rules that need no model.
//!
//! A route may bound the prompt's counted tokens (`min_tokens`/`max_tokens`) and may list keyword
//! regexes with `unless` exclusions. A route with rules matches when every rule it has holds:
//! the token count is within bounds, some keyword matches the latest user message, and no
//! exclusion does. Exclusions are how level 1 avoids the obvious traps ("Tell me a joke about
//! Python" is not a coding request); level 2 confirms by meaning what regexes cannot.

use crate::core::config::RouteConfig;
use regex::Regex;
use serde::Serialize;

/// A route's level-1 rules, with regexes compiled once per isolate.
#[derive(Debug, Clone)]
pub struct RouteRules {
    pub route: String,
    keywords: Vec<Regex>,
    unless: Vec<Regex>,
    min_tokens: Option<u64>,
    max_tokens: Option<u64>,
}

/// What the rules of one route said about one request; reported in `/v1/route` signals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleOutcome {
    pub route: String,
    pub matched: bool,
    /// The keyword pattern that matched and the text it matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword: Option<KeywordHit>,
    /// The `unless` pattern that vetoed the match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub excluded_by: Option<KeywordHit>,
    /// False when the token count is outside the route's bounds.
    pub tokens_in_bounds: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeywordHit {
    pub pattern: String,
    pub text: String,
}

impl RouteRules {
    /// Compiles a validated route's rules. Config validation has already compiled each regex
    /// once, so an error here means the config was not validated.
    pub fn compile(route: &RouteConfig) -> Result<RouteRules, regex::Error> {
        let compile = |patterns: &[toml::Spanned<String>]| {
            patterns.iter().map(|p| Regex::new(p.get_ref())).collect::<Result<Vec<_>, _>>()
        };
        Ok(RouteRules {
            route: route.name.get_ref().clone(),
            keywords: compile(&route.keywords)?,
            unless: compile(&route.unless)?,
            min_tokens: route.min_tokens.as_ref().map(|t| *t.get_ref()),
            max_tokens: route.max_tokens,
        })
    }

    /// Whether the route has any level-1 rule at all; a route without one never matches here.
    pub fn has_rules(&self) -> bool {
        !self.keywords.is_empty() || self.min_tokens.is_some() || self.max_tokens.is_some()
    }

    pub fn has_keywords(&self) -> bool {
        !self.keywords.is_empty()
    }

    pub fn evaluate(&self, latest_user_text: &str, prompt_tokens: u64) -> RuleOutcome {
        let tokens_in_bounds = self.min_tokens.is_none_or(|min| prompt_tokens >= min)
            && self.max_tokens.is_none_or(|max| prompt_tokens <= max);
        let keyword = first_hit(&self.keywords, latest_user_text);
        let excluded_by = if keyword.is_some() { first_hit(&self.unless, latest_user_text) } else { None };
        let keywords_ok = self.keywords.is_empty() || (keyword.is_some() && excluded_by.is_none());
        RuleOutcome {
            route: self.route.clone(),
            matched: self.has_rules() && tokens_in_bounds && keywords_ok,
            keyword,
            excluded_by,
            tokens_in_bounds,
        }
    }
}

fn first_hit(patterns: &[Regex], text: &str) -> Option<KeywordHit> {
    patterns.iter().find_map(|re| {
        re.find(text).map(|m| KeywordHit { pattern: re.as_str().to_string(), text: m.as_str().to_string() })
    })
}
