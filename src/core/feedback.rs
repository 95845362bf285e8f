//! `POST /v1/feedback`: a client says whether a routed answer was good, and which route it should
//! have taken. Sans-IO: this module reads and checks the body and writes the SQL; the Worker
//! runs it against the decision log. Feedback naming a route is a labelled row for training
//! (`switchyard export`).

use crate::core::config::Config;
use crate::core::decision_log::is_decision_id;
use crate::core::error::{ErrorKind, RouterError};
use serde::Deserialize;
use serde_json::{json, Value};

/// Stores feedback on the row `?4`: rating, corrected route, time. Later feedback replaces it.
pub const STORE_SQL: &str =
    "UPDATE decisions SET feedback_rating = ?1, feedback_route = ?2, feedback_at = ?3 WHERE id = ?4";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Good,
    Bad,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Good => "good",
            Rating::Bad => "bad",
        }
    }
}

/// A checked feedback body.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub decision_id: String,
    pub rating: Rating,
    /// The route the request should have gone to: a route of the config.
    pub route: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    decision_id: String,
    rating: Rating,
    #[serde(default)]
    route: Option<String>,
}

impl Feedback {
    /// Reads `bytes`; a 400 names the field at fault.
    pub fn parse(bytes: &[u8], config: &Config) -> Result<Feedback, RouterError> {
        crate::core::body_limits::check(bytes)?;
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| RouterError::invalid_request(format!("request body is not valid JSON: {e}")))?;
        let wire: Wire = serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = e.path().to_string();
            let param = if path == "." { String::new() } else { path.clone() };
            RouterError::invalid_request(format!(
                "invalid feedback at {path}: {} (expected {{\"decision_id\", \"rating\": \"good\" | \"bad\", \"route\"?}})",
                e.into_inner()
            ))
            .with_param(param)
        })?;
        if !is_decision_id(&wire.decision_id) {
            return Err(RouterError::invalid_request(
                "decision_id must be the x-switchyard-decision-id of a chat completion",
            )
            .with_param("decision_id"));
        }
        if let Some(route) = wire.route.as_deref().filter(|r| config.route(r).is_none()) {
            return Err(RouterError::invalid_request(format!(
                "route {route:?} is not a route of this router"
            ))
            .with_param("route"));
        }
        Ok(Feedback { decision_id: wire.decision_id, rating: wire.rating, route: wire.route })
    }

    /// The values for [`STORE_SQL`], given the time in ms since the epoch.
    pub fn values(&self, now_ms: u64) -> Vec<Value> {
        vec![json!(self.rating.as_str()), json!(self.route), json!(now_ms), json!(self.decision_id)]
    }

    /// The answer to a stored feedback.
    pub fn stored_json(&self) -> Value {
        json!({"object": "feedback", "decision_id": self.decision_id, "rating": self.rating.as_str(), "route": self.route})
    }
}

/// The 404 for feedback on an id the log does not hold.
pub fn unknown_decision(id: &str) -> RouterError {
    RouterError::new(
        ErrorKind::NotFound,
        format!("no decision {id} in the log (it may have expired, or its answer has not ended yet)"),
    )
    .with_param("decision_id")
}
