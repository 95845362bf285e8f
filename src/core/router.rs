//! Turning a validated request into a [`Decision`].
//!
//! Order of precedence, first hit wins:
//! 1. `model` names a configured model: that model answers, no routing (level `explicit`).
//! 2. `model` names a route: that route's models answer (level `explicit`).
//! 3. `model` is `"auto"`: routes are tried in config order and the first whose level-1 rules
//!    all hold wins (level `rules`); config order is priority, so put narrow routes first.
//! 4. Nothing matched: the default route (level `default`).
//!
//! Any other `model` is a 404 `model_not_found`, as OpenAI answers it.

use crate::core::config::{Config, ConfigError};
use crate::core::decision::{Decision, Level, Signals};
use crate::core::error::{ErrorKind, RouterError};
use crate::core::request::ChatRequest;
use crate::core::rules::RouteRules;
use crate::core::tokens::estimate_request_tokens;
use std::collections::BTreeMap;

/// A config compiled for serving: built once per isolate, then shared by every request.
#[derive(Debug)]
pub struct Router {
    pub config: Config,
    rules: Vec<RouteRules>,
}

impl Router {
    /// Parses, validates and compiles a config; `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Router, ConfigError> {
        let config = Config::parse(file, text)?;
        let rules = config
            .routes
            .iter()
            .map(|r| {
                RouteRules::compile(r.get_ref()).map_err(|e| ConfigError {
                    file: file.to_string(),
                    line: 0,
                    column: 0,
                    message: format!("route {:?}: {e}", r.get_ref().name.get_ref()),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Router { config, rules })
    }

    pub fn decide(&self, request: &ChatRequest) -> Result<Decision, RouterError> {
        let signals = Signals {
            prompt_tokens: estimate_request_tokens(request),
            max_output_tokens: request.max_output_tokens,
            rules: Vec::new(),
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
        self.route_auto(request, signals)
    }

    fn route_auto(&self, request: &ChatRequest, mut signals: Signals) -> Result<Decision, RouterError> {
        let text = request.latest_user_text();
        let outcomes: Vec<_> = self
            .rules
            .iter()
            .filter(|r| r.has_rules())
            .map(|r| r.evaluate(text, signals.prompt_tokens))
            .collect();
        let scores: BTreeMap<String, f32> =
            outcomes.iter().map(|o| (o.route.clone(), if o.matched { 1.0 } else { 0.0 })).collect();
        let winner = outcomes.iter().find(|o| o.matched).map(|o| (o.route.clone(), o.keyword.clone()));
        let exclusions = outcomes.iter().filter_map(|o| {
            let hit = o.excluded_by.as_ref()?;
            Some(format!("route {:?} was excluded by /{}/ matching {:?}", o.route, hit.pattern, hit.text))
        });
        let mut reasons = Vec::new();
        let (route, level) = match winner {
            Some((route, keyword)) => {
                if let Some(hit) = keyword {
                    reasons.push(format!("keyword /{}/ matched {:?}", hit.pattern, hit.text));
                }
                reasons.push(format!(
                    "prompt of ~{} tokens is within the route's bounds",
                    signals.prompt_tokens
                ));
                (route, Level::Rules)
            }
            None => {
                reasons.push("no route's rules matched".to_string());
                (self.config.default_route().to_string(), Level::Default)
            }
        };
        reasons.extend(exclusions);
        signals.rules = outcomes;
        Ok(self.route_to(&route, level, signals, scores, reasons))
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
        let candidates: Vec<String> = self
            .config
            .route(route)
            .map(|r| r.models.iter().map(|m| m.get_ref().clone()).collect())
            .unwrap_or_default();
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
