//! The decision log's IO: a row per routed chat request, written to D1 (binding `DECISION_LOG`)
//! after the response, through `wait_until`. A failed write is logged and nothing else: the
//! client already has its answer.

use crate::core::admin_api::{self, DecisionQuery};
use crate::core::config::{Config, StoreText};
use crate::core::decision::Decision;
use crate::core::decision_log::{
    decision_id, expiry_cutoff_ms, insert_sql, Answer, DecisionRow, DELETE_EXPIRED_SQL,
};
use crate::core::error::{ErrorKind, RouterError};
use crate::core::feedback::{self, Feedback};
use crate::core::request::ChatRequest;
use crate::core::semantic::routing_text;
use crate::core::stats::{self, StatsQuery, StatsRow};
use crate::core::timing::Phase;
use crate::worker::state::State;
use serde_json::{json, Value};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, Env};

/// The D1 binding's name in wrangler.toml.
pub const BINDING: &str = "DECISION_LOG";

/// A logged request before its answer: its id (sent in `x-switchyard-decision-id`), when it came
/// and the routing text, when the config keeps any of it.
pub struct Entry {
    pub id: String,
    created_at_ms: u64,
    text: String,
    store: StoreText,
}

impl Entry {
    pub fn start(state: &State, request: &ChatRequest) -> Entry {
        let mut random = [0u8; 16];
        if getrandom::fill(&mut random).is_err() {
            // Never in Workers (crypto.getRandomValues); an id must not be guessable, so fall back
            // to the runtime's generator rather than to zeros.
            random.iter_mut().for_each(|b| *b = (js_sys::Math::random() * 256.0) as u8);
        }
        let store = state.config.log.store_text;
        let text = match store {
            StoreText::None => String::new(),
            _ => routing_text(request, state.config.semantic.follow_up_words),
        };
        Entry { id: decision_id(random), created_at_ms: js_sys::Date::now() as u64, text, store }
    }

    pub fn row(&self, decision: &Decision, phases: &[Phase], answer: Answer) -> DecisionRow {
        DecisionRow::new(
            self.id.clone(),
            self.created_at_ms,
            decision,
            phases,
            &self.text,
            self.store,
            answer,
        )
    }
}

/// Logs the decision's line (with the error event a stream ended with, if any), then writes its
/// row.
pub async fn finish(env: Env, row: DecisionRow, stream_error: Option<String>) {
    match serde_json::to_string(&row.log_line(stream_error.as_deref())) {
        Ok(line) => worker::console_log!("{line}"),
        Err(e) => {
            let error = RouterError::new(ErrorKind::Internal, format!("decision line: {e}"));
            worker::console_error!("{}", error.log_line(Some(&row.id)))
        }
    }
    write(env, row).await;
}

/// Writes `row`; a failure is logged with the row's id.
pub async fn write(env: Env, row: DecisionRow) {
    if let Err(error) = insert(&env, &row).await {
        worker::console_log!(
            "{}",
            json!({"event": "decision_log_failed", "decision_id": row.id, "error": error.to_string()})
        );
    }
}

async fn insert(env: &Env, row: &DecisionRow) -> worker::Result<()> {
    statement(env, insert_sql(), &row.values())?.run().await?;
    Ok(())
}

/// `sql` on the decision log, with its `?N` values bound.
fn statement(env: &Env, sql: impl Into<String>, values: &[Value]) -> worker::Result<D1PreparedStatement> {
    let db: D1Database = env.d1(BINDING)?;
    let values: Vec<JsValue> = values.iter().map(js_value).collect();
    db.prepare(sql).bind(&values)
}

fn js_value(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => n.as_f64().map_or(JsValue::NULL, JsValue::from_f64),
        Value::String(s) => JsValue::from_str(s),
        other => JsValue::from_str(&other.to_string()),
    }
}

/// Deletes the rows older than `[log] retention_days`; run by the cron trigger (wrangler.toml).
pub async fn delete_expired(env: &Env, retention_days: u32) {
    let cutoff = expiry_cutoff_ms(js_sys::Date::now() as u64, retention_days);
    let deleted = async {
        let result = statement(env, DELETE_EXPIRED_SQL, &[json!(cutoff)])?.run().await?;
        worker::Result::Ok(result.meta()?.and_then(|m| m.changes).unwrap_or(0))
    };
    let deleted: worker::Result<usize> = deleted.await;
    let line = match deleted {
        Ok(rows) => json!({"event": "decision_log_expired", "deleted": rows, "before_ms": cutoff}),
        Err(error) => json!({"event": "decision_log_failed", "error": error.to_string()}),
    };
    worker::console_log!("{line}");
}

/// A page of `GET /v1/admin/decisions`: JSON Lines and the next page's cursor.
pub async fn read_page(env: &Env, query: &DecisionQuery) -> Result<(String, Option<String>), RouterError> {
    let (sql, values) = query.sql();
    let result = statement(env, sql, &values).map_err(unreadable)?.all().await.map_err(unreadable)?;
    let rows = result.results::<serde_json::Map<String, Value>>().map_err(unreadable)?;
    Ok(admin_api::page(rows, query.limit))
}

/// The 503 of a log that cannot be read.
fn unreadable(e: worker::Error) -> RouterError {
    RouterError::new(ErrorKind::Unavailable, format!("the decision log cannot be read: {e}"))
}

/// The 503 of a log that cannot be written.
fn unwritable(e: worker::Error) -> RouterError {
    RouterError::new(ErrorKind::Unavailable, format!("the decision log cannot be written: {e}"))
}

/// `GET /v1/stats`: the window's rows read from the log, counted.
pub async fn stats(env: &Env, config: &Config, query: &StatsQuery) -> Result<Value, RouterError> {
    let (from_ms, to_ms) = query.window(js_sys::Date::now() as u64);
    let result = statement(env, stats::rows_sql(), &[json!(from_ms)])
        .map_err(unreadable)?
        .all()
        .await
        .map_err(unreadable)?;
    let rows = result.results::<Value>().map_err(unreadable)?;
    let rows = rows.iter().filter_map(StatsRow::from_d1).collect();
    Ok(stats::window_stats(config, rows, from_ms, to_ms))
}

/// The conversation a logged decision was counted under, if any, and whether it was already
/// rated bad (a bad rating counts against a conversation once per answer).
pub async fn conversation_of(env: &Env, decision_id: &str) -> Result<(Option<String>, bool), RouterError> {
    let sql = "SELECT conversation, feedback_rating FROM decisions WHERE id = ?1";
    let row: Option<Value> = statement(env, sql, &[json!(decision_id)])
        .map_err(unreadable)?
        .first(None)
        .await
        .map_err(unreadable)?;
    let field =
        |name: &str| row.as_ref().and_then(|r| r.get(name)).and_then(Value::as_str).map(str::to_string);
    Ok((field("conversation"), field("feedback_rating").as_deref() == Some("bad")))
}

/// Stores `feedback` on its row: a 404 when the log has no such decision, a 503 when the log
/// cannot be reached (here the write is the request).
pub async fn store_feedback(env: &Env, feedback: &Feedback) -> Result<(), RouterError> {
    let values = feedback.values(js_sys::Date::now() as u64);
    let result =
        statement(env, feedback::STORE_SQL, &values).map_err(unwritable)?.run().await.map_err(unwritable)?;
    match result.meta().map_err(unwritable)?.and_then(|m| m.changes) {
        Some(0) => Err(feedback::unknown_decision(&feedback.decision_id)),
        _ => Ok(()),
    }
}
