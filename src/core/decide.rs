//! The decision: gathered [`Signals`] in, one [`Decision`] out. Pure, so every entry point that
//! gathers the same signals makes the same decision.
//!
//! Order of precedence, first hit wins:
//! 1. `model` names a configured model: that model answers, no routing (level `explicit`).
//! 2. `model` names a route: that route's models answer (level `explicit`).
//! 3. `model` is `"auto"`: routes are tried in config order and the first that matches wins;
//!    config order is priority, so put narrow routes first. A route matches when
//!    - it has keywords: its rules hold (token bounds, a keyword, no `unless`) and, with
//!      `semantic_confirm`, its semantic score clears its threshold and no other route scores
//!      higher (level `rules`);
//!    - it has exemplars but no keywords: it is the meaning winner, the best-scoring such route
//!      within its token bounds that clears its threshold (level `semantic`);
//!    - it has only token bounds: the prompt is within them (level `rules`).
//!    - a confident trained classifier (level 3) picked it: the classifier speaks for meaning
//!      instead of the exemplar scores (level `classifier`).
//! 4. The LLM router's choice (level `llm`), when it was asked and answered: it replaces any pick
//!    by meaning (semantic or classifier), never a rule's match.
//! 5. Nothing matched: the default route (level `default`).
//!
//! When level 2 could not run, semantic conditions are skipped: exemplar-only routes do not match
//! and keyword routes need no confirmation. Each level reads its own field of [`Signals`].

use crate::core::config::{Config, LlmRouterSettings, LlmWhen, Route};
use crate::core::decision::{ClassifierSignal, Decision, Level, LlmSignal, SemanticSignal, Signals};
use crate::core::llm_router::RouteOption;
use crate::core::rules::RuleOutcome;
use std::collections::BTreeMap;

/// What the request's `model` field asked for, resolved against the config.
#[derive(Debug, Clone, Copy)]
pub enum Requested<'c> {
    /// `"auto"` (or no `model`): route it.
    Auto,
    /// A route name: use that route's models.
    Route(&'c Route),
    /// A model name from `[models]`: use that model alone.
    Model(&'c str),
}

/// The `model` value that asks Switchyard to route.
pub const AUTO: &str = "auto";

/// The decision's route when the request named a model rather than a route.
pub const EXPLICIT_ROUTE: &str = "explicit";

impl<'c> Requested<'c> {
    /// `None` when `model` names nothing the config knows.
    pub fn resolve(config: &'c Config, model: &str) -> Option<Requested<'c>> {
        if model == AUTO {
            Some(Requested::Auto)
        } else if let Some((name, _)) = config.models.get_key_value(model) {
            Some(Requested::Model(name))
        } else {
            config.route(model).map(Requested::Route)
        }
    }
}

/// The decision for a request that asked for `requested`, from what the levels observed.
pub fn decide(config: &Config, requested: Requested, signals: Signals) -> Decision {
    match requested {
        Requested::Model(model) => Decision {
            route: EXPLICIT_ROUTE.into(),
            model: model.to_string(),
            candidates: vec![model.to_string()],
            level: Level::Explicit,
            scores: BTreeMap::new(),
            signals,
            reasons: vec![format!("the request named model {model:?}")],
        },
        Requested::Route(route) => Verdict {
            route,
            level: Level::Explicit,
            reasons: vec![format!("the request named route {:?}", route.name)],
        }
        .into_decision(signals, BTreeMap::new()),
        Requested::Auto => decide_auto(config, signals),
    }
}

/// A route chosen, at a level, with the reasons.
struct Verdict<'c> {
    route: &'c Route,
    level: Level,
    reasons: Vec<String>,
}

impl Verdict<'_> {
    fn into_decision(self, signals: Signals, scores: BTreeMap<String, f32>) -> Decision {
        Decision {
            route: self.route.name.clone(),
            model: self.route.candidates().first().cloned().unwrap_or_default(),
            candidates: self.route.candidates(),
            level: self.level,
            scores,
            signals,
            reasons: self.reasons,
        }
    }
}

fn decide_auto(config: &Config, signals: Signals) -> Decision {
    let chosen = choose(config, &signals);
    let mut reasons = match chosen {
        Some((route, level)) => match_reasons(route, level, outcome_of(&signals, route), &signals),
        None => vec!["no route matched".to_string()],
    };
    reasons.extend(unconfirmed_reasons(config, &signals, chosen.map(|(route, _)| route)));
    reasons.extend(exclusion_reasons(&signals));
    if matches!(signals.semantic, SemanticSignal::Unavailable(_)) {
        reasons.push("semantic routing was unavailable: routed by rules alone".to_string());
    }
    reasons.extend(unsure_classifier_reason(config, &signals, chosen.map(|(_, level)| level)));
    if let LlmSignal::Declined { reason, .. } = &signals.llm {
        reasons.push(format!("the LLM router gave no usable answer ({reason}): routed without it"));
    }
    let scores = route_scores(config, &signals);
    let verdict = match chosen {
        Some((route, level)) => Verdict { route, level, reasons },
        None => Verdict { route: default_route(config), level: Level::Default, reasons },
    };
    verdict.into_decision(signals, scores)
}

/// The route a routed (`"auto"`) request goes to: the first in config order that matches, and
/// the level it matched at; `None` when none does (the default route). The decision without its
/// explanation, cheap enough for `fit` to call for every row and every candidate threshold.
pub fn choose<'c>(config: &'c Config, signals: &Signals) -> Option<(&'c Route, Level)> {
    let below_llm = choose_below_llm(config, signals);
    match (&signals.llm, below_llm) {
        (_, Some((route, Level::Rules))) => Some((route, Level::Rules)),
        (LlmSignal::Chose { route, .. }, below) => config.route(route).map(|r| (r, Level::Llm)).or(below),
        (_, below) => below,
    }
}

/// [`choose`] by rules and meaning alone: what decides when the LLM router gives no answer.
fn choose_below_llm<'c>(config: &'c Config, signals: &Signals) -> Option<(&'c Route, Level)> {
    // A confident trained head speaks for meaning instead of the exemplar scores (level 3 before
    // level 2): its pick matches at the route's place in config order, whatever the route's kind
    // (a route whose keywords missed, or the default: "none of these"). Rules keep their place.
    let pick = classifier_pick(config, signals);
    let winner = if pick.is_some() { None } else { meaning_winner(config, signals) };
    config.routes.iter().find_map(|route| {
        if matches(route, signals, winner) {
            Some((route, if route.matched_by_meaning() { Level::Semantic } else { Level::Rules }))
        } else {
            pick.filter(|p| std::ptr::eq(*p, route)).map(|p| (p, Level::Classifier))
        }
    })
}

/// Whether the LLM router is to be asked, from what the levels below it observed: always, never,
/// or when uncertain: no rule matched, and no route was picked by meaning by at least `margin`
/// above its threshold (semantic) or `min_confidence` (classifier).
pub fn llm_needed(config: &Config, settings: &LlmRouterSettings, signals: &Signals) -> bool {
    match settings.when {
        LlmWhen::Always => true,
        LlmWhen::Never => false,
        LlmWhen::Uncertain => match choose_below_llm(config, signals) {
            None => true,
            Some((route, Level::Semantic)) => {
                let score = signals.semantic.scores().and_then(|s| s.get(&route.name)).copied();
                let threshold = route.semantic.as_ref().map_or(0.0, |s| s.threshold);
                score.is_none_or(|score| score < threshold + settings.margin)
            }
            Some((_, Level::Classifier)) => match (&signals.classifier, &config.classifier) {
                (ClassifierSignal::Predicted { confidence, .. }, Some(c)) => {
                    *confidence < c.min_confidence + settings.margin
                }
                _ => true,
            },
            Some(_) => false,
        },
    }
}

/// The routes the LLM router is offered: those `[llm_router] routes` allows whose token bounds
/// the prompt is within, in config order, with their descriptions.
pub fn llm_options<'c>(
    config: &'c Config,
    settings: &LlmRouterSettings,
    signals: &Signals,
) -> Vec<RouteOption<'c>> {
    config
        .routes
        .iter()
        .filter(|r| settings.routes.contains(&r.name))
        .filter(|r| outcome_of(signals, r).is_none_or(|o| o.tokens_in_bounds))
        .map(|r| RouteOption { name: &r.name, description: &r.description })
        .collect()
}

/// Level 3's pick when it clears `min_confidence` and the route's token bounds allow it.
fn classifier_pick<'c>(config: &'c Config, signals: &Signals) -> Option<&'c Route> {
    let ClassifierSignal::Predicted { route, confidence } = &signals.classifier else { return None };
    let settings = config.classifier.as_ref()?;
    let route = config.route(route)?;
    let in_bounds = outcome_of(signals, route).is_none_or(|o| o.tokens_in_bounds);
    (*confidence >= settings.min_confidence && in_bounds).then_some(route)
}

/// The name of the route [`choose`] picks, the default route when it picks none.
pub fn chosen_route<'c>(config: &'c Config, signals: &Signals) -> &'c str {
    choose(config, signals).map_or(config.default_route.as_str(), |(route, _)| route.name.as_str())
}

/// The level [`choose`] decides at, `default` when it picks no route.
pub fn chosen_level(config: &Config, signals: &Signals) -> Level {
    choose(config, signals).map_or(Level::Default, |(_, level)| level)
}

/// Whether `route` matches, given the signals and level 2's pick among meaning-only routes.
fn matches(route: &Route, signals: &Signals, meaning_winner: Option<&str>) -> bool {
    if route.rules.has_keywords() {
        rules_hold(route, signals) && keywords_confirmed(route, signals)
    } else if route.semantic.is_some() {
        meaning_winner == Some(route.name.as_str())
    } else {
        rules_hold(route, signals)
    }
}

/// Whether level 1 matched `route`: it has rules and they all hold.
fn rules_hold(route: &Route, signals: &Signals) -> bool {
    outcome_of(signals, route).is_some_and(|o| o.matched)
}

/// A keyword match stands unless the route asks for confirmation by meaning, level 2 ran, and
/// the meaning disagrees.
fn keywords_confirmed(route: &Route, signals: &Signals) -> bool {
    match (route.semantic.as_ref(), signals.semantic.scores()) {
        (Some(s), Some(scores)) if s.confirm_keywords => confirmed_by_meaning(route, s.threshold, scores),
        _ => true,
    }
}

/// Why the classifier did not decide, when it was configured and did not.
fn unsure_classifier_reason(config: &Config, signals: &Signals, level: Option<Level>) -> Option<String> {
    if level == Some(Level::Classifier) {
        return None;
    }
    let min = config.classifier.as_ref()?.min_confidence;
    match &signals.classifier {
        ClassifierSignal::Predicted { route, confidence } if *confidence < min => Some(format!(
            "the classifier's pick {route:?} at confidence {confidence:.3} is under min_confidence {min}"
        )),
        ClassifierSignal::Unavailable(_) => Some("the classifier was unavailable".to_string()),
        _ => None,
    }
}

/// For each route tried before the chosen one whose keywords matched but whose meaning did not
/// agree: why it was passed over.
fn unconfirmed_reasons<'a>(
    config: &'a Config,
    signals: &'a Signals,
    chosen: Option<&'a Route>,
) -> impl Iterator<Item = String> + 'a {
    config
        .routes
        .iter()
        .take_while(move |route| chosen.is_none_or(|c| !std::ptr::eq(*route, c)))
        .filter(|route| route.rules.has_keywords() && rules_hold(route, signals))
        .filter(|route| !keywords_confirmed(route, signals))
        .map(|route| {
            format!(
                "route {:?}: keyword matched but by meaning the request is not a {:?} request \
                 (score below {:.2} or another route more similar)",
                route.name,
                route.name,
                route.semantic.as_ref().map_or(0.0, |s| s.threshold)
            )
        })
}

/// The rules' outcome for `route`, when it has rules.
fn outcome_of<'s>(signals: &'s Signals, route: &Route) -> Option<&'s RuleOutcome> {
    signals.rules.iter().find(|o| o.route == route.name)
}

/// Level 2's pick among the routes matched by meaning alone: the best-scoring one within its
/// token bounds, if it clears its threshold.
fn meaning_winner<'c>(config: &'c Config, signals: &Signals) -> Option<&'c str> {
    let scores = signals.semantic.scores()?;
    config
        .routes
        .iter()
        .filter(|r| r.matched_by_meaning() && outcome_of(signals, r).is_none_or(|o| o.tokens_in_bounds))
        .filter_map(|r| Some((r, *scores.get(&r.name)?, r.semantic.as_ref()?.threshold)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .filter(|(_, score, threshold)| score >= threshold)
        .map(|(r, _, _)| r.name.as_str())
}

/// Semantic confirmation of a keyword match: the route clears its threshold and no other route is
/// more similar ("a joke about Python" is closer to `creative` than to `code`).
fn confirmed_by_meaning(route: &Route, threshold: f32, scores: &BTreeMap<String, f32>) -> bool {
    let Some(&own) = scores.get(&route.name) else { return false };
    own >= threshold && scores.iter().all(|(other, &score)| *other == route.name || score <= own)
}

/// Why the chosen route matched, most telling first.
fn match_reasons(
    route: &Route,
    level: Level,
    outcome: Option<&RuleOutcome>,
    signals: &Signals,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let keyword = outcome.and_then(|o| o.keyword.as_ref());
    if let Some(hit) = keyword {
        reasons.push(format!("keyword /{}/ matched {:?}", hit.pattern, hit.text));
    }
    if let (Level::Classifier, ClassifierSignal::Predicted { confidence, .. }) = (level, &signals.classifier)
    {
        reasons.push(format!("the classifier picked route {:?} with confidence {confidence:.3}", route.name));
    }
    if let (Level::Llm, LlmSignal::Chose { cached, .. }) = (level, &signals.llm) {
        let remembered = if *cached { " (remembered from the same text earlier)" } else { "" };
        reasons.push(format!("the LLM router chose route {:?}{remembered}", route.name));
    }
    if let Some(score) = signals.semantic.scores().and_then(|s| s.get(&route.name)) {
        reasons.push(format!("semantic score {score:.3} for route {:?}", route.name));
    }
    if level == Level::Rules && keyword.is_none() {
        reasons.push(format!("prompt of ~{} tokens is within the route's bounds", signals.prompt_tokens));
    }
    reasons
}

fn exclusion_reasons(signals: &Signals) -> impl Iterator<Item = String> + '_ {
    signals.rules.iter().filter_map(|o| {
        let hit = o.excluded_by.as_ref()?;
        Some(format!("route {:?} was excluded by /{}/ matching {:?}", o.route, hit.pattern, hit.text))
    })
}

/// Every route's score: the semantic score for routes with exemplars (when level 2 ran), 1.0/0.0
/// for whether a rules-only route matched.
fn route_scores(config: &Config, signals: &Signals) -> BTreeMap<String, f32> {
    let semantic = signals.semantic.scores();
    let mut scores: BTreeMap<String, f32> = signals
        .rules
        .iter()
        .filter(|o| config.route(&o.route).is_some_and(|r| r.semantic.is_none()))
        .map(|o| (o.route.clone(), if o.matched { 1.0 } else { 0.0 }))
        .collect();
    if let Some(semantic) = semantic {
        scores.extend(semantic.iter().map(|(k, v)| (k.clone(), *v)));
    }
    scores
}

fn default_route(config: &Config) -> &Route {
    // Config compilation guarantees the default route exists.
    config.route(&config.default_route).unwrap_or(&config.routes[0])
}
