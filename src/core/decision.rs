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
    /// Every level, in the order above.
    pub const ALL: [Level; 8] = [
        Level::Rules,
        Level::Semantic,
        Level::Classifier,
        Level::Llm,
        Level::Cascade,
        Level::Conversation,
        Level::Explicit,
        Level::Default,
    ];

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

/// Everything the levels observed about a request: gathered by the pipeline
/// ([`crate::core::pipeline`]), read by [`crate::core::decide`], and shown in `/v1/route`.
/// A new level adds its own field here.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Signals {
    pub prompt_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Level 1: the outcome of every route that has rules, in config order.
    pub rules: Vec<RuleOutcome>,
    /// Level 2, shown as `semantic_available` (absent when no route has exemplars); the scores
    /// themselves are the decision's `scores`.
    #[serde(rename = "semantic_available", skip_serializing_if = "SemanticSignal::not_used")]
    pub semantic: SemanticSignal,
    /// Level 3's trained head (absent without a `[classifier]` section).
    #[serde(skip_serializing_if = "ClassifierSignal::not_used")]
    pub classifier: ClassifierSignal,
    /// Level 3a, the LLM router (absent without an `[llm_router]` section or when it is off).
    #[serde(skip_serializing_if = "LlmSignal::not_used")]
    pub llm: LlmSignal,
    /// Level 4 across turns: how this turn landed (absent without a `[conversation]` section).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<crate::core::conversation::Judgement>,
}

/// What the LLM router made of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum LlmSignal {
    /// No `[llm_router]` section, `when = "never"`, or the request named its model.
    #[default]
    NotUsed,
    /// `when = "uncertain"` and a rule or a sure pick by meaning decided: no call was made.
    NotAsked,
    /// It chose `route`; `cached` when an earlier answer for the same text was reused (no call,
    /// no cost).
    Chose { route: String, cost_usd: Option<f64>, cached: bool },
    /// It was asked and gave no usable answer (timeout, error, refusal, invalid output): routing
    /// went on as if it were off.
    Declined { reason: String, cost_usd: Option<f64> },
}

impl LlmSignal {
    pub fn not_used(&self) -> bool {
        matches!(self, LlmSignal::NotUsed)
    }

    /// What the call cost, when one was made and the model reported its usage.
    pub fn cost_usd(&self) -> Option<f64> {
        match self {
            LlmSignal::Chose { cost_usd, .. } | LlmSignal::Declined { cost_usd, .. } => *cost_usd,
            _ => None,
        }
    }
}

impl Serialize for LlmSignal {
    /// `{"asked": false}`; `{"asked": true, "route", "cached", "cost_usd"}`;
    /// `{"asked": true, "declined": reason, "cost_usd"}`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("asked", &matches!(self, LlmSignal::Chose { .. } | LlmSignal::Declined { .. }))?;
        match self {
            LlmSignal::Chose { route, cost_usd, cached } => {
                map.serialize_entry("route", route)?;
                map.serialize_entry("cached", cached)?;
                map.serialize_entry("cost_usd", cost_usd)?;
            }
            LlmSignal::Declined { reason, cost_usd } => {
                map.serialize_entry("declined", reason)?;
                map.serialize_entry("cost_usd", cost_usd)?;
            }
            _ => {}
        }
        map.end()
    }
}

/// What level 3's trained head made of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ClassifierSignal {
    /// No `[classifier]` section, or the request named its model.
    #[default]
    NotUsed,
    /// Configured but not usable: its artifact is missing or was refused, or the encoder failed.
    /// The reason is for the log.
    Unavailable(String),
    /// Its pick and the calibrated probability of it.
    Predicted { route: String, confidence: f32 },
}

impl ClassifierSignal {
    pub fn not_used(&self) -> bool {
        matches!(self, ClassifierSignal::NotUsed)
    }
}

impl Serialize for ClassifierSignal {
    /// `{"route", "confidence"}` when it predicted, `{"available": false}` when it could not.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match self {
            ClassifierSignal::Predicted { route, confidence } => {
                map.serialize_entry("route", route)?;
                map.serialize_entry("confidence", confidence)?;
            }
            _ => map.serialize_entry("available", &false)?,
        }
        map.end()
    }
}

/// What level 2 made of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SemanticSignal {
    /// Level 2 does not apply: no route has exemplars, or the request named its model.
    #[default]
    NotUsed,
    /// Level 2 applies but could not run (the encoder could not be loaded or failed); the reason
    /// is for the log, not for clients.
    Unavailable(String),
    /// Every route with exemplars, and its score.
    Scored(BTreeMap<String, f32>),
}

impl SemanticSignal {
    pub fn not_used(&self) -> bool {
        matches!(self, SemanticSignal::NotUsed)
    }

    pub fn scores(&self) -> Option<&BTreeMap<String, f32>> {
        match self {
            SemanticSignal::Scored(scores) => Some(scores),
            _ => None,
        }
    }
}

impl Serialize for SemanticSignal {
    /// `true` when scored, `false` when unavailable (`NotUsed` is skipped).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(matches!(self, SemanticSignal::Scored(_)))
    }
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
