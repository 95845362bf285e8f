//! Level 1: rules that need no model.
//!
//! A route may bound the prompt's counted tokens (`min_tokens`/`max_tokens`) and may list keyword
//! regexes with `unless` exclusions. A route with rules matches when every rule it has holds:
//! the token count is within bounds, some keyword matches the latest user message, and no
//! exclusion does. Exclusions are how level 1 avoids the obvious traps ("Tell me a joke about
//! Python" is not a coding request); level 2 confirms by meaning what regexes cannot.

use crate::core::request::clip_chars;
use regex::Regex;
use serde::Serialize;

/// Inclusive bounds on a prompt's counted tokens; either side may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenBounds {
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl TokenBounds {
    pub fn is_set(&self) -> bool {
        self.min.is_some() || self.max.is_some()
    }

    pub fn contains(&self, tokens: u64) -> bool {
        self.min.is_none_or(|min| tokens >= min) && self.max.is_none_or(|max| tokens <= max)
    }
}

/// A route's level-1 rules, with regexes compiled once per isolate (by config compilation).
#[derive(Debug, Clone, Default)]
pub struct RouteRules {
    pub keywords: Vec<Regex>,
    pub unless: Vec<Regex>,
    pub tokens: TokenBounds,
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
    /// Whether the route has any level-1 rule at all; a route without one never matches here.
    pub fn has_rules(&self) -> bool {
        !self.keywords.is_empty() || self.tokens.is_set()
    }

    pub fn has_keywords(&self) -> bool {
        !self.keywords.is_empty()
    }

    /// The rules of route `route` applied to the latest user message (what routing reads of it:
    /// `request::routing_window`) and the prompt's tokens.
    pub fn evaluate(&self, route: &str, latest_user_text: &str, prompt_tokens: u64) -> RuleOutcome {
        let tokens_in_bounds = self.tokens.contains(prompt_tokens);
        let keyword = first_hit(&self.keywords, latest_user_text);
        let excluded_by = if keyword.is_some() { first_hit(&self.unless, latest_user_text) } else { None };
        let keywords_ok = self.keywords.is_empty() || (keyword.is_some() && excluded_by.is_none());
        RuleOutcome {
            route: route.to_string(),
            matched: self.has_rules() && tokens_in_bounds && keywords_ok,
            keyword,
            excluded_by,
            tokens_in_bounds,
        }
    }
}

/// An explanation quotes at most this many characters of what a keyword matched: a pattern like
/// `select.*from` can match a whole pasted file.
pub const MAX_QUOTED_CHARS: usize = 80;

fn first_hit(patterns: &[Regex], text: &str) -> Option<KeywordHit> {
    patterns.iter().find_map(|re| {
        re.find(text).map(|m| KeywordHit {
            pattern: re.as_str().to_string(),
            text: clip_chars(m.as_str(), MAX_QUOTED_CHARS).to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explanation_quotes_a_bounded_part_of_the_match() {
        let rules =
            RouteRules { keywords: vec![Regex::new("(?s)select.*from").unwrap()], ..Default::default() };
        let text = format!("select {} from t", "column, ".repeat(1000));
        let hit = rules.evaluate("code", &text, 10).keyword.unwrap();
        assert_eq!(hit.text.chars().count(), MAX_QUOTED_CHARS);
        assert!(hit.text.starts_with("select column, "));
    }
}
