//! `GET /v1/admin/decisions`: the decision log read back, for operators and for
//! `switchyard export`. Sans-IO: this module reads the query string, writes the SQL, and shapes
//! the rows the Worker gets from D1 into JSON Lines.
//!
//! Pages are in time order, oldest first, so an export can be resumed: each page ends where the
//! `x-switchyard-next-cursor` header says, and that header is absent on the last page.

use crate::core::decision::Level;
use crate::core::error::RouterError;
use serde_json::{json, Map, Value};

/// Rows per page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1_000;

/// The columns that hold JSON as text, turned back into JSON in each line.
const JSON_COLUMNS: [&str; 5] = ["scores", "signals", "reasons", "timing", "usage"];

/// A checked `GET /v1/admin/decisions` query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecisionQuery {
    /// Rows made at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    pub level: Option<String>,
    pub route: Option<String>,
    /// Only rows that make training rows: stored text, and an LLM decision or a corrected route.
    pub labelled: bool,
    pub limit: u32,
    /// Where the previous page ended: its last row's time and id.
    pub after: Option<(u64, String)>,
}

impl DecisionQuery {
    /// Reads a query string (without `?`); a 400 names the parameter at fault.
    pub fn parse(query: &str) -> Result<DecisionQuery, RouterError> {
        let mut parsed = DecisionQuery { limit: DEFAULT_LIMIT, ..DecisionQuery::default() };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let bad =
                |why: &str| RouterError::invalid_request(format!("{key}: {why}")).with_param(key.to_string());
            match key.as_ref() {
                "since" => {
                    parsed.since_ms =
                        Some(value.parse().map_err(|_| bad("milliseconds since the Unix epoch"))?)
                }
                "level" => match Level::ALL.into_iter().find(|level| level.as_str() == value) {
                    Some(level) => parsed.level = Some(level.as_str().to_string()),
                    None => {
                        let levels: Vec<&str> = Level::ALL.iter().map(|level| level.as_str()).collect();
                        return Err(bad(&format!("one of {}", levels.join(", "))));
                    }
                },
                "route" if !value.is_empty() && value.len() <= 200 => parsed.route = Some(value.into_owned()),
                "route" => return Err(bad("a route name")),
                "labelled" => {
                    parsed.labelled = match value.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad("true or false")),
                    }
                }
                "limit" => {
                    parsed.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| bad(&format!("a number from 1 to {MAX_LIMIT}")))?
                }
                "cursor" => {
                    parsed.after = Some(
                        parse_cursor(&value)
                            .ok_or_else(|| bad("the x-switchyard-next-cursor of the previous page"))?,
                    )
                }
                _ => {
                    return Err(RouterError::invalid_request(format!(
                        "unknown parameter {key:?}: use since, level, route, labelled, limit, cursor"
                    ))
                    .with_param(key.to_string()))
                }
            }
        }
        Ok(parsed)
    }

    /// The statement and its values: one row more than `limit`, to know whether a page follows.
    pub fn sql(&self) -> (String, Vec<Value>) {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        let mut bind = |condition: &str, value: Value, values: &mut Vec<Value>| {
            values.push(value);
            conditions.push(condition.replace('?', &format!("?{}", values.len())));
        };
        if let Some(since) = self.since_ms {
            bind("created_at >= ?", json!(since), &mut values);
        }
        if let Some(level) = &self.level {
            bind("level = ?", json!(level), &mut values);
        }
        if let Some(route) = &self.route {
            bind("route = ?", json!(route), &mut values);
        }
        if self.labelled {
            conditions.push("text IS NOT NULL AND (level = 'llm' OR feedback_route IS NOT NULL)".to_string());
        }
        if let Some((at, id)) = &self.after {
            values.push(json!(at));
            values.push(json!(id));
            let (t, i) = (values.len() - 1, values.len());
            conditions.push(format!("(created_at > ?{t} OR (created_at = ?{t} AND id > ?{i}))"));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        values.push(json!(self.limit + 1));
        let sql = format!("SELECT * FROM decisions{filter} ORDER BY created_at, id LIMIT ?{}", values.len());
        (sql, values)
    }
}

/// The page for `rows` (as D1 returns them, at most `limit + 1`): JSON Lines, and the cursor of
/// the next page when there is one.
pub fn page(mut rows: Vec<Map<String, Value>>, limit: u32) -> (String, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(cursor_of) } else { None };
    let mut body = String::new();
    for row in rows {
        body.push_str(&Value::Object(line_of(row)).to_string());
        body.push('\n');
    }
    (body, next)
}

/// A row as one JSON line: JSON columns as JSON, `stream` as a boolean.
fn line_of(mut row: Map<String, Value>) -> Map<String, Value> {
    for column in JSON_COLUMNS {
        if let Some(Value::String(text)) = row.get(column) {
            let parsed = serde_json::from_str(text).unwrap_or(Value::Null);
            row.insert(column.to_string(), parsed);
        }
    }
    if let Some(stream) = row.get("stream").and_then(Value::as_f64) {
        row.insert("stream".into(), json!(stream != 0.0));
    }
    row
}

fn cursor_of(row: &Map<String, Value>) -> String {
    // D1 hands numbers over as JavaScript numbers: integral, but perhaps typed as floats.
    let at =
        row.get("created_at").and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64))).unwrap_or(0);
    let id = row.get("id").and_then(Value::as_str).unwrap_or("");
    format!("{at}_{id}")
}

fn parse_cursor(cursor: &str) -> Option<(u64, String)> {
    let (at, id) = cursor.split_once('_')?;
    Some((at.parse().ok()?, id.to_string())).filter(|(_, id)| crate::core::decision_log::is_decision_id(id))
}

/// The training row a logged decision gives, `{"text", "label", "source"}`: a corrected route
/// from feedback (`source: "feedback"`) first, else the LLM router's choice (`"llm"`); none
/// without stored text.
pub fn training_row(line: &Map<String, Value>) -> Option<Value> {
    let text = line.get("text")?.as_str().filter(|t| !t.trim().is_empty())?;
    if let Some(label) = line.get("feedback_route").and_then(Value::as_str) {
        return Some(json!({"text": text, "label": label, "source": "feedback"}));
    }
    let route = line.get("route").and_then(Value::as_str)?;
    (line.get("level").and_then(Value::as_str) == Some("llm"))
        .then(|| json!({"text": text, "label": route, "source": "llm"}))
}
