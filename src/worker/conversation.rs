//! Conversation state in Durable Objects (level 4 across turns): one object per conversation,
//! SQLite-backed (`new_sqlite_classes` in wrangler.toml), named by its id. The judging, counting
//! and escalating are `core::conversation`'s; the object only keeps the state.
//!
//! Why an object per conversation: it runs one request at a time for its conversation, so two
//! turns sent at once are both counted (each turn's read, count and write run without an await
//! between them, so nothing interleaves), and its storage outlives isolates and restarts. An
//! alarm deletes it once it has been idle `[conversation] idle_seconds`.
//!
//! The router asks the object with a short internal request: `POST /turn` (record a judged turn,
//! answer the new state) or `GET /state` (the admin view). A lookup that fails or takes longer
//! than [`LOOKUP_TIMEOUT_MS`] is not an error for the client: the turn is routed statelessly and
//! the reason logged.

use crate::core::config::ConversationSettings;
use crate::core::conversation::{ConversationState, Judgement};
use crate::core::error::{ErrorKind, RouterError};
use crate::worker::http::now_ms;
use crate::worker::state;
use futures_util::future::{select, Either};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use wasm_bindgen::JsValue;
use worker::{
    durable_object, Delay, DurableObject, Env, Method, Request, RequestInit, Response, SqlStorage,
    SqlStorageValue,
};

/// The binding of the conversations' namespace (wrangler.toml `[[durable_objects.bindings]]`).
pub const BINDING: &str = "CONVERSATIONS";

/// Longest the router waits for a conversation's object before routing without it.
pub const LOOKUP_TIMEOUT_MS: u64 = 2_000;

/// How many turns an object lists for the admin view (older ones are deleted).
const KEPT_TURNS: i64 = 100;

/// A turn as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnRow {
    pub turn: i64,
    pub at_ms: i64,
    /// The judgement, as JSON.
    pub judgement: String,
    /// 1 when the turn went to the escalation model.
    pub escalated: i64,
}

/// `POST /turn`'s body.
#[derive(Serialize, Deserialize)]
struct TurnRequest {
    id: String,
    /// `core::conversation::fingerprint`: `None` for a turn not to be counted.
    fingerprint: Option<String>,
    judgement: Judgement,
}

#[durable_object]
pub struct Conversation {
    object: worker::State,
    env: Env,
}

impl DurableObject for Conversation {
    fn new(object: worker::State, env: Env) -> Self {
        Conversation { object, env }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let settings = match self.settings() {
            Ok(settings) => settings,
            Err(why) => return Response::error(why, 503),
        };
        let sql = self.object.storage().sql();
        match (req.method(), req.path().as_str()) {
            (Method::Post, "/turn") => {
                let turn: TurnRequest = req.json().await?;
                // Only a turn makes the tables (and so the object's storage): a lookup of a
                // conversation that does not exist leaves nothing behind.
                create_tables(&sql)?;
                // Read, count and write with no await between: concurrent turns serialise here.
                let mut state = read_state(&sql)?.map_or_else(ConversationState::default, |(_, s)| s);
                let now = js_sys::Date::now() as u64;
                if state.record_turn(&settings, turn.fingerprint.as_deref(), turn.judgement.clone(), now) {
                    write_state(&sql, &turn.id, &state, &turn.judgement)?;
                    let idle_ms = settings.idle_seconds.saturating_mul(1000);
                    if let Err(e) = self.object.storage().set_alarm(idle_ms.min(i64::MAX as u64) as i64).await
                    {
                        // The turn is counted; only its expiry is late (the next turn sets it again).
                        worker::console_log!(
                            "{}",
                            json!({"event": "conversation_alarm_failed", "error": e.to_string()})
                        );
                    }
                }
                Response::from_json(&state)
            }
            (Method::Post, "/feedback") => match read_state(&sql)? {
                None => Response::error("no such conversation", 404),
                Some((id, mut state)) => {
                    state.record_bad_feedback(&settings);
                    save_state(&sql, &id, &state)?;
                    Response::from_json(&state)
                }
            },
            (Method::Get, "/state") => match read_state(&sql)? {
                None => Response::error("no such conversation", 404),
                Some((id, state)) => {
                    let turns: Vec<TurnRow> = sql
                        .exec("SELECT turn, at_ms, judgement, escalated FROM turns ORDER BY turn", None)?
                        .to_array()?;
                    let turns: Vec<serde_json::Value> = turns
                        .into_iter()
                        .map(|t| {
                            let judgement: serde_json::Value =
                                serde_json::from_str(&t.judgement).unwrap_or(serde_json::Value::Null);
                            json!({"turn": t.turn, "at_ms": t.at_ms, "judgement": judgement, "escalated": t.escalated == 1})
                        })
                        .collect();
                    Response::from_json(
                        &json!({"id": id, "state": state, "escalate_to": settings.escalate_to, "turns": turns}),
                    )
                }
            },
            _ => Response::error("not found", 404),
        }
    }

    /// Idle long enough: everything is deleted. A turn since the alarm was set moved it on.
    async fn alarm(&self) -> worker::Result<Response> {
        let sql = self.object.storage().sql();
        let settings = self.settings().ok();
        let state = read_state(&sql)?;
        let now = js_sys::Date::now() as u64;
        match (state, settings) {
            (Some((_, state)), Some(settings)) if !state.idle(&settings, now) => {
                let left = (state.last_turn_at_ms + settings.idle_seconds * 1000).saturating_sub(now);
                self.object.storage().set_alarm(left.max(1) as i64).await?;
            }
            _ => self.object.storage().delete_all().await?,
        }
        Response::ok("")
    }
}

impl Conversation {
    fn settings(&self) -> Result<ConversationSettings, String> {
        let state = state::get(&self.env).map_err(|e| e.message)?;
        state.config.conversation.clone().ok_or_else(|| "the config has no [conversation] section".into())
    }
}

fn create_tables(sql: &SqlStorage) -> worker::Result<()> {
    sql.exec(
        "CREATE TABLE IF NOT EXISTS conversation (one INTEGER PRIMARY KEY CHECK (one = 1), id TEXT NOT NULL, state TEXT NOT NULL)",
        None,
    )?;
    sql.exec(
        "CREATE TABLE IF NOT EXISTS turns (turn INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, judgement TEXT NOT NULL, escalated INTEGER NOT NULL)",
        None,
    )?;
    Ok(())
}

/// Whether a turn has made the tables.
fn has_tables(sql: &SqlStorage) -> worker::Result<bool> {
    #[derive(Deserialize)]
    struct Count {
        n: i64,
    }
    let rows: Vec<Count> = sql
        .exec("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'conversation'", None)?
        .to_array()?;
    Ok(rows.first().is_some_and(|c| c.n > 0))
}

#[derive(Deserialize)]
struct StateRow {
    id: String,
    state: String,
}

fn read_state(sql: &SqlStorage) -> worker::Result<Option<(String, ConversationState)>> {
    if !has_tables(sql)? {
        return Ok(None);
    }
    let rows: Vec<StateRow> =
        sql.exec("SELECT id, state FROM conversation WHERE one = 1", None)?.to_array()?;
    Ok(rows.into_iter().next().and_then(|row| Some((row.id, serde_json::from_str(&row.state).ok()?))))
}

fn save_state(sql: &SqlStorage, id: &str, state: &ConversationState) -> worker::Result<()> {
    sql.exec(
        "INSERT INTO conversation (one, id, state) VALUES (1, ?, ?) ON CONFLICT (one) DO UPDATE SET state = excluded.state",
        vec![id.into(), json_text(state)],
    )?;
    Ok(())
}

/// Saves the state after a turn, and the turn.
fn write_state(
    sql: &SqlStorage,
    id: &str,
    state: &ConversationState,
    judgement: &Judgement,
) -> worker::Result<()> {
    save_state(sql, id, state)?;
    let turn = state.turns as i64;
    sql.exec(
        "INSERT OR REPLACE INTO turns (turn, at_ms, judgement, escalated) VALUES (?, ?, ?, ?)",
        vec![
            turn.into(),
            (state.last_turn_at_ms as i64).into(),
            json_text(judgement),
            i64::from(state.escalated()).into(),
        ],
    )?;
    sql.exec("DELETE FROM turns WHERE turn <= ?", vec![(turn - KEPT_TURNS).into()])?;
    Ok(())
}

/// A value for a JSON text column.
fn json_text<T: Serialize>(value: &T) -> SqlStorageValue {
    SqlStorageValue::String(serde_json::to_string(value).unwrap_or_default())
}

/// The object of conversation `id`.
fn stub(env: &Env, id: &str) -> Result<worker::Stub, String> {
    let namespace = env.durable_object(BINDING).map_err(|e| format!("no {BINDING} binding: {e}"))?;
    namespace.id_from_name(id).and_then(|object| object.get_stub()).map_err(|e| e.to_string())
}

/// Records a turn of conversation `id` judged `judgement` (unless its `fingerprint` is `None` or
/// the last one's: a tool round, a retry): the conversation's state, or why it could not be
/// reached (the caller routes without it).
pub async fn record_turn(
    env: &Env,
    id: &str,
    fingerprint: Option<String>,
    judgement: &Judgement,
) -> Result<ConversationState, String> {
    let turn = TurnRequest { id: id.to_string(), fingerprint, judgement: judgement.clone() };
    let body = serde_json::to_string(&turn).map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(JsValue::from_str(&body)));
    let request = Request::new_with_init("https://conversation/turn", &init).map_err(|e| e.to_string())?;
    let mut response = ask(env, id, request).await?;
    response.json().await.map_err(|e| format!("the conversation's answer is unreadable: {e}"))
}

/// Conversation `id`'s state, not counting a turn (`/v1/route`); a conversation not begun is a
/// fresh state.
pub async fn peek(env: &Env, id: &str) -> Result<ConversationState, String> {
    let request = Request::new("https://conversation/state", Method::Get).map_err(|e| e.to_string())?;
    let mut response = ask(env, id, request).await?;
    if response.status_code() == 404 {
        return Ok(ConversationState::default());
    }
    #[derive(Deserialize)]
    struct View {
        state: ConversationState,
    }
    let view: View =
        response.json().await.map_err(|e| format!("the conversation's answer is unreadable: {e}"))?;
    Ok(view.state)
}

/// Records a client's bad rating in conversation `id` (`POST /v1/feedback`).
pub async fn record_bad_feedback(env: &Env, id: &str) -> Result<ConversationState, String> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post);
    let request =
        Request::new_with_init("https://conversation/feedback", &init).map_err(|e| e.to_string())?;
    let mut response = ask(env, id, request).await?;
    if response.status_code() == 404 {
        return Err("no such conversation (or it expired)".into());
    }
    response.json().await.map_err(|e| format!("the conversation's answer is unreadable: {e}"))
}

/// The admin view of conversation `id`: its state and its last turns.
pub async fn read(env: &Env, id: &str) -> Result<serde_json::Value, RouterError> {
    let request = Request::new("https://conversation/state", Method::Get)
        .map_err(|e| RouterError::new(ErrorKind::Internal, e.to_string()))?;
    let unavailable = |why: String| RouterError::new(ErrorKind::Unavailable, why);
    let mut response = ask(env, id, request).await.map_err(unavailable)?;
    if response.status_code() == 404 {
        return Err(RouterError::new(ErrorKind::NotFound, format!("no conversation {id:?} (or it expired)")));
    }
    response.json().await.map_err(|e| unavailable(e.to_string()))
}

/// Sends `request` to conversation `id`'s object, within [`LOOKUP_TIMEOUT_MS`].
async fn ask(env: &Env, id: &str, request: Request) -> Result<Response, String> {
    let stub = stub(env, id)?;
    let started = now_ms();
    let call = Box::pin(stub.fetch_with_request(request));
    let timeout = Box::pin(Delay::from(Duration::from_millis(LOOKUP_TIMEOUT_MS)));
    let response = match select(call, timeout).await {
        Either::Left((response, _)) => response.map_err(|e| e.to_string())?,
        Either::Right(_) => {
            return Err(format!(
                "no answer within {LOOKUP_TIMEOUT_MS} ms (waited {:.0} ms)",
                now_ms() - started
            ))
        }
    };
    match response.status_code() {
        200 | 404 => Ok(response),
        status => Err(format!("the conversation's object answered {status}")),
    }
}
