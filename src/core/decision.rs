//! The routing decision: which route, which model, decided at which level, and why.
//!
//! One `Decision` is produced per request whatever level decided it; the Worker turns it into the
//! `x-switchyard-*` headers and `/v1/route` turns it into JSON, so both always agree.

use crate::core::rules::RuleOutcome;
use serde::Serialize;
use std::collections::BTreeMap;

/// The level that made the decision (`x-switchyard-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Token bounds and keyword rules.
    Rules,
    Semantic,
    Classifier,
    Llm,
    Cascade,
    Conversation,
    /// The client named a route or a model in the `model` field.
    Explicit,
    /// Nothing matched: the default route.
    Default,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Rules => "rules",
            Level::Semantic => "semantic",
            Level::Classifier => "classifier",
            Level::Llm => "llm",
            Level::Cascade => "cascade",
            Level::Conversation => "conversation",
            Level::Explicit => "explicit",
            Level::Default => "default",
        }
    }
}

/// Everything the levels observed, for explaining a decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Signals {
    pub prompt_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    pub rules: Vec<RuleOutcome>,
    /// Whether level 2 scored the request (absent when no route has exemplars).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic_available: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The route chosen (`"explicit"` when the client named a model directly).
    pub route: String,
    /// The model that answers first (a key of `[models]`).
    pub model: String,
    /// The route's models in order: the first answers, the rest are its fallbacks.
    pub candidates: Vec<String>,
    pub level: Level,
    /// Per route: the semantic score for routes with exemplars (when level 2 ran), 1.0/0.0 for
    /// whether a rules-only route matched.
    pub scores: BTreeMap<String, f32>,
    pub signals: Signals,
    /// Human-readable reasons, most important first.
    pub reasons: Vec<String>,
}
