//! Switchyard's own response headers: their names in one place, and the values a routed answer
//! carries, built here so that the Worker only copies them onto the response and CORS exposes
//! exactly these.

use crate::core::decision::Decision;
use crate::core::timing::{server_timing, Phase};

pub const ROUTE: &str = "x-switchyard-route";
pub const MODEL: &str = "x-switchyard-model";
pub const LEVEL: &str = "x-switchyard-level";
pub const ATTEMPTS: &str = "x-switchyard-attempts";
pub const SKIPPED: &str = "x-switchyard-skipped";
pub const COST_USD: &str = "x-switchyard-cost-usd";
/// A cascade's answers: each model, its score, its verdict and its cost ([`crate::core::cascade`]).
pub const CASCADE: &str = "x-switchyard-cascade";
/// Request: the client's conversation id; response: the id the turn was counted under.
pub const CONVERSATION: &str = "x-switchyard-conversation";
/// On a page of `/v1/admin/decisions`: the `cursor` of the next page (absent on the last).
pub const NEXT_CURSOR: &str = "x-switchyard-next-cursor";
/// The id of the chat request's row in the decision log (for `POST /v1/feedback`).
pub const DECISION_ID: &str = "x-switchyard-decision-id";
pub const SERVER_TIMING: &str = "server-timing";

/// The headers a browser on another origin may read (`Access-Control-Expose-Headers`).
pub const EXPOSED: [&str; 10] =
    [ROUTE, MODEL, LEVEL, ATTEMPTS, SKIPPED, CASCADE, CONVERSATION, COST_USD, DECISION_ID, SERVER_TIMING];

/// The decision headers every routed response carries, and its timing.
pub fn decision_headers(decision: &Decision, phases: &[Phase]) -> Vec<(&'static str, String)> {
    vec![
        (ROUTE, decision.route.clone()),
        (MODEL, decision.model.clone()),
        (LEVEL, decision.level.as_str().to_string()),
        (SERVER_TIMING, server_timing(phases)),
    ]
}

/// The headers of a chat answer or of its error: the decision's, with `model` the one that
/// answered (the route's first when none did), and every call and skip.
pub fn answer_headers(
    decision: &Decision,
    answered_by: Option<&str>,
    attempts: Option<String>,
    skipped: Option<String>,
    phases: &[Phase],
) -> Vec<(&'static str, String)> {
    let mut headers = decision_headers(decision, phases);
    if let Some(model) = answered_by {
        headers.retain(|(name, _)| *name != MODEL);
        headers.push((MODEL, model.to_string()));
    }
    headers.extend(attempts.map(|v| (ATTEMPTS, v)));
    headers.extend(skipped.map(|v| (SKIPPED, v)));
    headers
}

/// Cost in USD as a header value: plain decimal, enough digits for one token of a cheap model.
pub fn format_cost(cost: f64) -> String {
    let text = format!("{cost:.10}");
    let text = text.trim_end_matches('0');
    text.strip_suffix('.').map_or_else(|| text.to_string(), |t| format!("{t}.0"))
}
