//! The JSON bodies and headers of Switchyard's own endpoints.
//!
//! Kept here, platform-free, so the CLI, the native tests and the Worker produce byte-for-byte the
//! same `/v1/route` decision and `/v1/models` list.

use crate::core::config::Config;
use crate::core::decide::AUTO;
use crate::core::decision::Decision;
use crate::core::fallback::Skip;
use crate::core::timing::Phase;
use serde_json::{json, Value};

/// The `POST /v1/route` body. `plan` is `fallback::plan`'s answer: the models that would be
/// called in order, and the ones that would be skipped, with why.
pub fn route_json(
    config: &Config,
    decision: &Decision,
    phases: &[Phase],
    plan: &[(String, Option<Skip>)],
) -> Value {
    let timing: serde_json::Map<String, Value> =
        phases.iter().map(|p| (p.name.to_string(), json!(three_decimals(p.ms)))).collect();
    json!({
        "route": decision.route,
        "model": decision.model,
        "candidates": decision.candidates,
        "level": decision.level,
        "scores": decision.scores,
        "signals": decision.signals,
        "reasons": decision.reasons,
        "plan": plan.iter().map(|(model, skip)| match skip {
            None => json!({"model": model, "skip": null}),
            Some(skip) => json!({"model": model, "skip": skip.code(), "detail": skip.to_string()}),
        }).collect::<Vec<_>>(),
        "timing_ms": timing,
        "settings": settings_json(config),
    })
}

/// `x` to three decimals: as a config file writes a threshold, and as timings are shown.
fn three_decimals(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What the decision was weighed against, from the config: each route's semantic threshold
/// (three decimals, as the config file keeps them), its token bounds, its cascade, and the
/// classifier's least confidence. With the signals, a reader (the playground) can show why each
/// level decided as it did without the config file.
fn settings_json(config: &Config) -> Value {
    let mut thresholds = serde_json::Map::new();
    let mut token_bounds = serde_json::Map::new();
    let mut cascades = serde_json::Map::new();
    for route in &config.routes {
        if let Some(semantic) = &route.semantic {
            thresholds.insert(route.name.clone(), json!(three_decimals(f64::from(semantic.threshold))));
        }
        let bounds = route.rules.tokens;
        if bounds.is_set() {
            token_bounds.insert(route.name.clone(), json!({"min": bounds.min, "max": bounds.max}));
        }
        if let Some(c) = &route.cascade {
            let cascade = json!({"chain": c.chain, "score": c.score.name(), "min_score": c.min_score});
            cascades.insert(route.name.clone(), cascade);
        }
    }
    let mut settings = json!({
        "default_route": config.default_route,
        "thresholds": thresholds,
        "token_bounds": token_bounds,
        "cascades": cascades,
    });
    if let Some(classifier) = &config.classifier {
        settings["classifier_min_confidence"] = json!(three_decimals(f64::from(classifier.min_confidence)));
    }
    settings
}

/// The `GET /v1/models` body: `auto`, then every route, then every model, in OpenAI list form.
pub fn models_json(config: &Config) -> Value {
    let mut data = vec![json!({
        "id": AUTO,
        "object": "model",
        "created": 0,
        "owned_by": "switchyard",
        "switchyard": {"kind": "router", "default_route": config.default_route},
    })];
    for route in &config.routes {
        let mut entry = json!({
            "id": route.name,
            "object": "model",
            "created": 0,
            "owned_by": "switchyard",
            "switchyard": {
                "kind": "route",
                "description": route.description,
                "models": route.models,
            },
        });
        if let Some(cascade) = &route.cascade {
            entry["switchyard"]["cascade"] = json!({"chain": cascade.chain, "score": cascade.score.name(), "min_score": cascade.min_score});
        }
        data.push(entry);
    }
    for (name, m) in &config.models {
        data.push(json!({
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": m.provider,
            "switchyard": {
                "kind": "model",
                "upstream": m.upstream,
                "context_window": m.context_window,
                "tier": m.tier,
                "price_per_million": {"input": m.price.input, "output": m.price.output},
            },
        }));
    }
    json!({"object": "list", "data": data})
}
