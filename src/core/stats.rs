//! Routing stats over the decision log (`GET /v1/stats`): how traffic was routed in a window,
//! what failed, how long routing took and what it saved.
//!
//! Sans-IO: the Worker reads the window's rows from D1 and hands them here as [`StatsRow`]s;
//! this module counts. What routing saved is measured against the question an operator asks:
//! what would the same answers have cost had every request gone to its route's most expensive
//! model? Each row with usage is priced both ways with the config's prices (a row without usage
//! is counted, not priced), so the saving is in the same tokens, not an estimate of them.

use crate::core::config::Config;
use crate::core::decide::EXPLICIT_ROUTE;
use crate::core::error::RouterError;
use crate::core::providers::Usage;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The most recent rows a window's stats read: enough for weeks of a small deployment, and the
/// bound on what one stats request costs the Worker; past it the answer says `truncated`.
pub const MAX_ROWS: u32 = 20_000;
/// The window unless `hours` says otherwise, and the longest it may say (the log's retention).
pub const DEFAULT_HOURS: u64 = 24;
pub const MAX_HOURS: u64 = 24 * 366;

/// A checked `GET /v1/stats` query: the last `hours` hours.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatsQuery {
    pub hours: u64,
}

impl StatsQuery {
    /// Reads a query string (without `?`); a 400 names the parameter at fault.
    pub fn parse(query: &str) -> Result<StatsQuery, RouterError> {
        let mut parsed = StatsQuery { hours: DEFAULT_HOURS };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "hours" => {
                    parsed.hours =
                        value.parse().ok().filter(|h| (1..=MAX_HOURS).contains(h)).ok_or_else(|| {
                            RouterError::invalid_request(format!(
                                "hours: a whole number from 1 to {MAX_HOURS}"
                            ))
                            .with_param("hours")
                        })?
                }
                _ => {
                    return Err(RouterError::invalid_request(format!("unknown parameter {key:?}; use hours"))
                        .with_param(key.to_string()))
                }
            }
        }
        Ok(parsed)
    }

    /// The window at `now_ms`: from, to.
    pub fn window(&self, now_ms: u64) -> (u64, u64) {
        (now_ms.saturating_sub(self.hours * 3_600_000), now_ms)
    }
}

/// The rows of a window (`?1`: its start), newest first, at most [`MAX_ROWS`] + 1 (one more tells
/// that the window had more).
pub fn rows_sql() -> String {
    format!(
        "SELECT route, model, level, status, outcome, attempts, cost_usd, usage, timing FROM decisions \
         WHERE created_at >= ?1 ORDER BY created_at DESC LIMIT {}",
        MAX_ROWS + 1
    )
}

/// One decision, as much of it as the stats read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StatsRow {
    pub route: String,
    /// The model that answered (else the route's first).
    pub model: String,
    pub level: String,
    pub status: u16,
    /// `complete`, `error` or `client_closed`.
    pub outcome: String,
    /// As `x-switchyard-attempts`: `model=outcome` for each call, comma-separated.
    pub attempts: Option<String>,
    pub cost_usd: Option<f64>,
    pub usage: Option<Usage>,
    /// Each Server-Timing phase's milliseconds, by name.
    pub timing: BTreeMap<String, f64>,
}

impl StatsRow {
    /// A row of `SELECT route, model, level, status, outcome, attempts, cost_usd, usage, timing`
    /// as D1 returns it (JSON columns as text); `None` when it is not one.
    pub fn from_d1(row: &Value) -> Option<StatsRow> {
        let text = |name: &str| row.get(name).and_then(Value::as_str);
        let json_column = |name: &str| text(name).and_then(|t| serde_json::from_str::<Value>(t).ok());
        let usage = json_column("usage").and_then(|u| {
            Some(Usage {
                prompt_tokens: u.get("prompt_tokens")?.as_u64()?,
                completion_tokens: u.get("completion_tokens")?.as_u64()?,
            })
        });
        let timing = match json_column("timing") {
            Some(Value::Object(phases)) => {
                phases.iter().filter_map(|(name, ms)| Some((name.clone(), ms.as_f64()?))).collect()
            }
            _ => BTreeMap::new(),
        };
        Some(StatsRow {
            route: text("route")?.to_string(),
            model: text("model")?.to_string(),
            level: text("level")?.to_string(),
            status: u16::try_from(row.get("status")?.as_u64()?).ok()?,
            outcome: text("outcome").unwrap_or("complete").to_string(),
            attempts: text("attempts").map(str::to_string),
            cost_usd: row.get("cost_usd").and_then(Value::as_f64),
            usage,
            timing,
        })
    }

    /// Whether another model answered after the first failed: an answer came, and the call
    /// just before the answering model's first was another model's that failed. A retry the
    /// same model answered is not a fallback, nor a cascade that passed over an answer it
    /// rated too low (`primary=ok, secondary=ok`), nor a request every model failed.
    fn fell_back(&self) -> bool {
        let calls: Vec<(&str, &str)> = self
            .attempts
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter_map(|call| call.trim().split_once('='))
            .collect();
        let first_of_answering = calls.iter().position(|(model, _)| *model == self.model);
        let failed_before =
            first_of_answering.and_then(|i| i.checked_sub(1)).is_some_and(|before| calls[before].1 != "ok");
        !self.failed() && failed_before
    }

    fn failed(&self) -> bool {
        self.status >= 400 || self.outcome == "error"
    }

    /// The router's own time: every phase but the upstream's answer (and a cascade's wait on it).
    fn routing_ms(&self) -> f64 {
        self.timing
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "upstream" | "cascade"))
            .map(|(_, ms)| ms)
            .sum()
    }
}

/// The stats of `rows` as [`rows_sql`] read them for the window `from_ms` to `to_ms`: of the
/// newest [`MAX_ROWS`], and `truncated` when there were more.
pub fn window_stats(config: &Config, mut rows: Vec<StatsRow>, from_ms: u64, to_ms: u64) -> Value {
    let truncated = rows.len() > MAX_ROWS as usize;
    rows.truncate(MAX_ROWS as usize);
    let mut out = stats(config, &rows, from_ms, to_ms);
    out["truncated"] = json!(truncated);
    out
}

/// The stats of `rows`, the decisions made from `from_ms` to `to_ms`.
pub fn stats(config: &Config, rows: &[StatsRow], from_ms: u64, to_ms: u64) -> Value {
    let count_by = |key: fn(&StatsRow) -> &str| -> Map<String, Value> {
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for row in rows {
            *counts.entry(key(row)).or_default() += 1;
        }
        counts.into_iter().map(|(k, n)| (k.to_string(), json!(n))).collect()
    };
    let routing: Vec<f64> = rows.iter().map(StatsRow::routing_ms).collect();
    let (mut cost, mut priced, mut most_expensive) = (0.0, 0u64, 0.0);
    for row in rows {
        if let (Some(usage), Some(paid)) = (row.usage, row.cost_usd) {
            priced += 1;
            cost += paid;
            most_expensive += most_expensive_cost(config, row, usage);
        }
    }
    json!({
        "window": {"from_ms": from_ms, "to_ms": to_ms},
        "decisions": rows.len(),
        "by_route": count_by(|r| r.route.as_str()),
        "by_model": count_by(|r| r.model.as_str()),
        "by_level": count_by(|r| r.level.as_str()),
        "fallbacks": rows.iter().filter(|r| r.fell_back()).count(),
        "escalations": rows.iter().filter(|r| r.level == "conversation").count(),
        "errors": rows.iter().filter(|r| r.failed()).count(),
        "routing_ms": {"p50": quantile(&routing, 0.5), "p95": quantile(&routing, 0.95)},
        "cost": {
            "priced_decisions": priced,
            "cost_usd": round_usd(cost),
            "at_most_expensive_usd": round_usd(most_expensive),
            "saved_usd": round_usd(most_expensive - cost),
        },
    })
}

/// What `row`'s usage would have cost on its route's most expensive model (or on the model that
/// answered, if that one costs more: an escalation); on the answering model alone when the
/// request named its model, or its route is no longer in the config. What routing itself paid
/// (an LLM router's call, a cascade's rated answers) is in the row's cost, so a saving can be
/// negative, and is reported so.
fn most_expensive_cost(config: &Config, row: &StatsRow, usage: Usage) -> f64 {
    let priced = |name: &str| config.cost_usd(name, Some(usage));
    let route = config.route(&row.route).filter(|_| row.route != EXPLICIT_ROUTE);
    let candidates = route.map(|r| r.candidates()).unwrap_or_default();
    candidates.iter().chain([&row.model]).filter_map(|m| priced(m)).fold(0.0, f64::max)
}

/// The `q` quantile of `values` (nearest rank), rounded to 0.01 ms; `null` when there are none.
fn quantile(values: &[f64], q: f64) -> Value {
    if values.is_empty() {
        return Value::Null;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    json!((sorted[rank - 1] * 100.0).round() / 100.0)
}

/// Dollars to a millionth of a cent: sums of many small prices print without float noise.
fn round_usd(usd: f64) -> f64 {
    (usd * 1e8).round() / 1e8
}
