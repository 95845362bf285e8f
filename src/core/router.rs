//! Turning a validated request into a [`Decision`].
//!
//! Order of precedence, first hit wins:
//! 1. `model` names a configured model: that model answers, no routing (level `explicit`).
//! 2. `model` names a route: that route's models answer (level `explicit`).
//! 3. `model` is `"auto"`: routes are tried in config order and the first that matches wins;
//!    config order is priority, so put narrow routes first. A route matches when
//!    - it has keywords: its rules hold (token bounds, a keyword, no `unless`) and, with
//!      `semantic_confirm`, its semantic score clears its threshold and no other route scores
//!      higher (level `rules`);
//!    - it has exemplars but no keywords: it is the best-scoring such route and clears its
//!      threshold (level `semantic`);
//!    - it has only token bounds: the prompt is within them (level `rules`).
//! 4. Nothing matched: the default route (level `default`).
//!
//! When no embedding is available (no encoder, or no index), semantic conditions are skipped:
//! exemplar-only routes do not match and keyword routes need no confirmation.
//!
//! Any other `model` is a 404 `model_not_found`, as OpenAI answers it.

use crate::core::config::{Config, ConfigError, Route};
use crate::core::decision::{Decision, Level, Signals};
use crate::core::error::{ErrorKind, RouterError};
use crate::core::request::ChatRequest;
use crate::core::semantic::{routing_text, ExemplarIndex};
use crate::core::tokens::estimate_request_tokens;
use std::collections::BTreeMap;

/// A config ready for serving: built once per isolate, then shared by every request.
#[derive(Debug)]
pub struct Router {
    pub config: Config,
}

/// What level 2 needs to score a request: the embedding of [`Router::routing_text`] and the
/// exemplar index (checked against the config with [`ExemplarIndex::check`]).
#[derive(Debug, Clone, Copy)]
pub struct Semantic<'a> {
    pub query: &'a [f32],
    pub index: &'a ExemplarIndex,
}

impl Router {
    /// Parses, validates and resolves a config; `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Router, ConfigError> {
        Ok(Router { config: Config::parse(file, text)? })
    }

    /// Whether any route has exemplars, i.e. whether level 2 needs an encoder and an index.
    pub fn uses_semantics(&self) -> bool {
        self.config.uses_semantics()
    }

    /// Whether deciding `request` involves embedding its text (`model` is `auto` and some route
    /// has exemplars).
    pub fn needs_embedding(&self, request: &ChatRequest) -> bool {
        request.model == "auto" && self.uses_semantics()
    }

    /// The text to embed for `request` (see [`routing_text`]).
    pub fn routing_text(&self, request: &ChatRequest) -> String {
        routing_text(request, self.config.semantic.follow_up_words)
    }

    /// Decides a request. `semantic` is given when level 2 is in use and an encoder is
    /// available; without it, semantic conditions are skipped and the signals say so.
    pub fn decide(&self, request: &ChatRequest, semantic: Option<Semantic>) -> Result<Decision, RouterError> {
        let signals = Signals {
            prompt_tokens: estimate_request_tokens(request),
            max_output_tokens: request.max_output_tokens,
            ..Signals::default()
        };
        let requested = request.model.as_str();
        if requested != "auto" {
            if self.config.model(requested).is_some() {
                return Ok(Decision {
                    route: "explicit".into(),
                    model: requested.to_string(),
                    candidates: vec![requested.to_string()],
                    level: Level::Explicit,
                    scores: BTreeMap::new(),
                    signals,
                    reasons: vec![format!("the request named model {requested:?}")],
                });
            }
            if self.config.route(requested).is_some() {
                return Ok(self.route_to(
                    requested,
                    Level::Explicit,
                    signals,
                    BTreeMap::new(),
                    vec![format!("the request named route {requested:?}")],
                ));
            }
            return Err(RouterError::new(
                ErrorKind::ModelNotFound,
                format!(
                    "The model `{requested}` does not exist. Use \"auto\", a route name or a model id from GET /v1/models."
                ),
            )
            .with_param("model"));
        }
        Ok(self.route_auto(request, signals, semantic))
    }

    fn route_auto(
        &self,
        request: &ChatRequest,
        mut signals: Signals,
        semantic: Option<Semantic>,
    ) -> Decision {
        let config = &self.config;
        let text = request.latest_user_text();
        let semantic = semantic
            .filter(|_| self.uses_semantics())
            .map(|s| s.index.scores(s.query, config.semantic.aggregation, config.semantic.top_k));
        let outcomes: Vec<_> =
            config.routes.iter().map(|r| r.rules.evaluate(&r.name, text, signals.prompt_tokens)).collect();
        // Semantic confirmation of a keyword match: the route clears its threshold and no other
        // route is more similar ("a joke about Python" is closer to `creative` than to `code`).
        let confirmed_by_meaning = |route: &Route| {
            let (Some(scores), Some(settings)) = (semantic.as_ref(), route.semantic.as_ref()) else {
                return false;
            };
            let Some(&own) = scores.get(&route.name) else { return false };
            own >= settings.threshold
                && scores.iter().all(|(other, &score)| *other == route.name || score <= own)
        };
        // The semantic winner: the best-scoring route that has exemplars and no keywords, within
        // its token bounds, if it clears its threshold.
        let winner = semantic.as_ref().and_then(|scores| {
            config
                .routes
                .iter()
                .zip(&outcomes)
                .filter(|(r, o)| r.matched_by_meaning() && o.tokens_in_bounds)
                .filter_map(|(r, _)| Some((r, *scores.get(&r.name)?, r.semantic.as_ref()?.threshold)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .filter(|(_, score, threshold)| score >= threshold)
                .map(|(r, _, _)| r.name.clone())
        });
        let mut reasons = Vec::new();
        let mut chosen = None;
        for (route, outcome) in config.routes.iter().zip(&outcomes) {
            let name = &route.name;
            let matched = if route.rules.has_keywords() {
                let confirm = route.semantic.as_ref().filter(|s| s.confirm_keywords);
                let confirmed = confirm.is_none() || semantic.is_none() || confirmed_by_meaning(route);
                if let (true, false, Some(settings)) = (outcome.matched, confirmed, confirm) {
                    reasons.push(format!(
                        "route {name:?}: keyword matched but by meaning the request is not a {name:?} request \
                         (score below {:.2} or another route more similar)",
                        settings.threshold
                    ));
                }
                outcome.matched && confirmed
            } else if route.semantic.is_some() {
                winner.as_deref() == Some(name.as_str())
            } else {
                outcome.matched
            };
            if matched {
                let level = if route.matched_by_meaning() { Level::Semantic } else { Level::Rules };
                chosen = Some((name.clone(), level, outcome.clone()));
                break;
            }
        }
        let exclusions: Vec<String> = outcomes
            .iter()
            .filter_map(|o| {
                let hit = o.excluded_by.as_ref()?;
                Some(format!("route {:?} was excluded by /{}/ matching {:?}", o.route, hit.pattern, hit.text))
            })
            .collect();
        let (route, level) = match chosen {
            Some((route, level, outcome)) => {
                let mut first = Vec::new();
                if let Some(hit) = &outcome.keyword {
                    first.push(format!("keyword /{}/ matched {:?}", hit.pattern, hit.text));
                }
                if let Some(score) = semantic.as_ref().and_then(|s| s.get(&route)) {
                    first.push(format!("semantic score {score:.3} for route {route:?}"));
                }
                if level == Level::Rules && outcome.keyword.is_none() {
                    first.push(format!(
                        "prompt of ~{} tokens is within the route's bounds",
                        signals.prompt_tokens
                    ));
                }
                reasons.splice(0..0, first);
                (route, level)
            }
            None => {
                reasons.insert(0, "no route matched".to_string());
                (config.default_route.clone(), Level::Default)
            }
        };
        reasons.extend(exclusions);
        if self.uses_semantics() && semantic.is_none() {
            reasons.push("semantic routing was unavailable: routed by rules alone".to_string());
        }
        // Rules-only routes score 1.0/0.0 for matched; routes with exemplars get their semantic score.
        let mut scores: BTreeMap<String, f32> = BTreeMap::new();
        let mut rule_outcomes = Vec::new();
        for (outcome, route) in outcomes.into_iter().zip(&config.routes) {
            if !route.rules.has_rules() {
                continue;
            }
            if route.semantic.is_none() {
                scores.insert(outcome.route.clone(), if outcome.matched { 1.0 } else { 0.0 });
            }
            rule_outcomes.push(outcome);
        }
        if let Some(semantic) = &semantic {
            scores.extend(semantic.iter().map(|(k, v)| (k.clone(), *v)));
        }
        signals.rules = rule_outcomes;
        signals.semantic_available = self.uses_semantics().then_some(semantic.is_some());
        self.route_to(&route, level, signals, scores, reasons)
    }

    fn route_to(
        &self,
        route: &str,
        level: Level,
        signals: Signals,
        scores: BTreeMap<String, f32>,
        reasons: Vec<String>,
    ) -> Decision {
        // Validation guarantees the route exists and lists at least one model.
        let candidates: Vec<String> = self.config.route(route).map(|r| r.models.clone()).unwrap_or_default();
        Decision {
            route: route.to_string(),
            model: candidates.first().cloned().unwrap_or_default(),
            candidates,
            level,
            scores,
            signals,
            reasons,
        }
    }
}
