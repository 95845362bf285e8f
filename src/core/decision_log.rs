//! The decision log: one row per routed chat request, kept in D1 (`migrations/` holds its table).
//! Sans-IO: this module builds the row and the SQL; the Worker runs it after the response
//! (`wait_until`), so a slow or failing database never slows or fails a request.
//!
//! A row holds what was decided and why (route, level, confidence, scores, signals, reasons), what
//! it cost and how long each phase took, every upstream attempt, and how the answer ended. The
//! routing text is kept only as `[log] store_text` allows: by default nothing of it; `"hash"` its
//! SHA-256 (identical texts can be grouped, none read back); `"full"` the text too (cut to
//! [`MAX_STORED_TEXT_CHARS`]), which is what turns the log into training rows.

use crate::core::config::StoreText;
use crate::core::decision::{ClassifierSignal, Decision, Level};
use crate::core::providers::Usage;
use crate::core::timing::Phase;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A stored routing text is cut to this many characters (the encoder reads 256 tokens at most).
pub const MAX_STORED_TEXT_CHARS: usize = 4_000;

/// The line the Worker logs once per routed chat request, when its answer is over
/// (`"event": "decision"`): the row's decision and outcome, never the prompt.
#[derive(Debug, Serialize)]
pub struct DecisionLine<'r> {
    pub event: &'static str,
    pub decision_id: &'r str,
    pub route: &'r str,
    /// The model that answered (else the route's first).
    pub model: &'r str,
    pub level: &'static str,
    pub prompt_tokens: u64,
    pub timing_ms: &'r Value,
    /// As `/v1/route`'s `signals.llm`, when the config has an LLM router.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_router: Option<&'r Value>,
    pub attempts: Option<&'r str>,
    pub skipped: Option<&'r str>,
    /// As `x-switchyard-cascade`, when the route has a cascade.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cascade: Option<&'r str>,
    /// As `x-switchyard-conversation`, with a `[conversation]` section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<&'r str>,
    pub stream: bool,
    pub status: u16,
    pub usage: Option<Usage>,
    pub cost_usd: Option<f64>,
    /// Streams only: `complete`, `error` or `client_closed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_outcome: Option<&'static str>,
    /// Streams that ended with an error event: its message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_error: Option<&'r str>,
}

/// The table's columns, in the order of [`DecisionRow::values`].
pub const COLUMNS: [&str; 22] = [
    "id",
    "created_at",
    "route",
    "model",
    "level",
    "confidence",
    "scores",
    "signals",
    "reasons",
    "prompt_tokens",
    "usage",
    "cost_usd",
    "timing",
    "attempts",
    "skipped",
    "cascade",
    "conversation",
    "stream",
    "status",
    "outcome",
    "text",
    "text_sha256",
];

/// `INSERT INTO decisions (...) VALUES (?1, ...)`, for [`DecisionRow::values`].
pub fn insert_sql() -> String {
    let places: Vec<String> = (1..=COLUMNS.len()).map(|i| format!("?{i}")).collect();
    format!("INSERT INTO decisions ({}) VALUES ({})", COLUMNS.join(", "), places.join(", "))
}

/// A decision id: 16 random bytes as a UUID (version 4), from the platform's random source.
pub fn decision_id(random: [u8; 16]) -> String {
    let mut b = random;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Whether `id` has the form [`decision_id`] gives (checked before any lookup).
pub fn is_decision_id(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

/// How the answer ended, for the row.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The model that answered (else the route's first).
    pub model: String,
    pub status: u16,
    /// `complete`, `error` or `client_closed`.
    pub outcome: &'static str,
    pub usage: Option<Usage>,
    /// Everything the request paid for: the answer, the LLM router's call, a cascade's rated
    /// answers and their ratings.
    pub cost_usd: Option<f64>,
    pub attempts: Option<String>,
    pub skipped: Option<String>,
    /// As `x-switchyard-cascade`.
    pub cascade: Option<String>,
    /// As `x-switchyard-conversation`: what `POST /v1/feedback` reaches with a bad rating.
    pub conversation: Option<String>,
    pub stream: bool,
}

/// One row of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    pub id: String,
    pub created_at_ms: u64,
    pub route: String,
    pub level: Level,
    pub confidence: Option<f32>,
    pub scores: Value,
    pub signals: Value,
    pub reasons: Value,
    pub prompt_tokens: u64,
    pub timing: Value,
    pub text: Option<String>,
    pub text_sha256: Option<String>,
    pub answer: Answer,
}

impl DecisionRow {
    /// The row for `decision`, made at `created_at_ms`, its text kept as `store` allows.
    pub fn new(
        id: String,
        created_at_ms: u64,
        decision: &Decision,
        phases: &[Phase],
        routing_text: &str,
        store: StoreText,
        answer: Answer,
    ) -> DecisionRow {
        let timing: serde_json::Map<String, Value> =
            phases.iter().map(|p| (p.name.to_string(), json!((p.ms * 100.0).round() / 100.0))).collect();
        let (text, text_sha256) = stored_text(routing_text, store);
        DecisionRow {
            id,
            created_at_ms,
            route: decision.route.clone(),
            level: decision.level,
            confidence: confidence(decision),
            scores: json!(decision.scores),
            signals: json!(decision.signals),
            reasons: json!(decision.reasons),
            prompt_tokens: decision.signals.prompt_tokens,
            timing: Value::Object(timing),
            text,
            text_sha256,
            answer,
        }
    }

    /// The line to log for this row; `stream_error` is the error event a stream ended with.
    pub fn log_line<'r>(&'r self, stream_error: Option<&'r str>) -> DecisionLine<'r> {
        let a = &self.answer;
        DecisionLine {
            event: "decision",
            decision_id: &self.id,
            route: &self.route,
            model: &a.model,
            level: self.level.as_str(),
            prompt_tokens: self.prompt_tokens,
            timing_ms: &self.timing,
            llm_router: self.signals.get("llm"),
            attempts: a.attempts.as_deref(),
            skipped: a.skipped.as_deref(),
            cascade: a.cascade.as_deref(),
            conversation: a.conversation.as_deref(),
            stream: a.stream,
            status: a.status,
            usage: a.usage,
            cost_usd: a.cost_usd,
            stream_outcome: a.stream.then_some(a.outcome),
            stream_error,
        }
    }

    /// The values for [`insert_sql`], in [`COLUMNS`] order: JSON columns as text, `None` as null.
    pub fn values(&self) -> Vec<Value> {
        let a = &self.answer;
        vec![
            json!(self.id),
            json!(self.created_at_ms),
            json!(self.route),
            json!(a.model),
            json!(self.level.as_str()),
            json!(self.confidence),
            json!(self.scores.to_string()),
            json!(self.signals.to_string()),
            json!(self.reasons.to_string()),
            json!(self.prompt_tokens),
            json!(a.usage.map(|u| json!(u).to_string())),
            json!(a.cost_usd),
            json!(self.timing.to_string()),
            json!(a.attempts),
            json!(a.skipped),
            json!(a.cascade),
            json!(a.conversation),
            json!(u8::from(a.stream)),
            json!(a.status),
            json!(a.outcome),
            json!(self.text),
            json!(self.text_sha256),
        ]
    }
}

/// The text and hash to keep: nothing, the hash, or both.
fn stored_text(text: &str, store: StoreText) -> (Option<String>, Option<String>) {
    let hash = || Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect::<String>();
    match store {
        StoreText::None => (None, None),
        StoreText::Hash => (None, Some(hash())),
        StoreText::Full => {
            let cut = crate::core::request::clip_chars(text, MAX_STORED_TEXT_CHARS);
            (Some(cut.to_string()), Some(hash()))
        }
    }
}

/// How sure the deciding level was: the winning route's semantic score, the classifier's
/// confidence; none for the others (a rule holds or not; the LLM gives no probability).
fn confidence(decision: &Decision) -> Option<f32> {
    match (decision.level, &decision.signals.classifier) {
        (Level::Semantic, _) => decision.scores.get(&decision.route).copied(),
        (Level::Classifier, ClassifierSignal::Predicted { confidence, .. }) => Some(*confidence),
        _ => None,
    }
}

/// Deletes the rows made before `?1` (ms since the epoch): the scheduled clean-up.
pub const DELETE_EXPIRED_SQL: &str = "DELETE FROM decisions WHERE created_at < ?1";

/// The time before which rows are past `retention_days`, at `now_ms`.
pub fn expiry_cutoff_ms(now_ms: u64, retention_days: u32) -> u64 {
    now_ms.saturating_sub(u64::from(retention_days) * 86_400_000)
}
