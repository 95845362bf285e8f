//! Level 4, across turns: a conversation that a small model cannot resolve is handed, whole, to a
//! frontier model, which keeps it. Sans-IO: this module judges a turn, keeps the count and
//! decides the escalation; the Worker stores the state in one Durable Object per conversation,
//! which serialises the turns of a conversation and keeps them across restarts.
//!
//! Why judge the user's messages. An OpenAI-style client sends the whole history with every turn,
//! so the latest user message says how the previous answer landed: a user who rephrases the same
//! question, or says "No, that's not what I meant", did not get what they needed; one who says
//! thanks, or moves on to something else, did. Each turn after the first is judged
//! ([`judge`]) on the latest user message against the one before it, in this order:
//!
//! 1. **frustrated** (unresolved): it matches a frustration phrase (a regex), or is at least
//!    `frustration_threshold` similar to a frustration exemplar;
//! 2. **thanked** (resolved): it matches a resolved phrase ("thanks", "that works");
//! 3. **rephrased** (unresolved): it is at least `rephrase_threshold` similar to the previous user
//!    message (without an encoder: the same words, ignoring case and punctuation);
//! 4. **new topic** (resolved): it is less than `new_topic_threshold` similar to it;
//! 5. otherwise a **follow-up**: neither, the count does not move.
//!
//! A bad rating through `POST /v1/feedback` counts as an unresolved turn too. The state
//! ([`ConversationState`]) counts the unresolved turns in a row and the frustrated turns since
//! the last resolved one; when either reaches its limit the conversation escalates: from then on
//! every turn goes to `escalate_to` (level `conversation`), with the whole history the client
//! sends. It stays there unless `step_down_after` resolved turns in a row are configured and
//! seen.

use crate::core::config::ConversationSettings;
use crate::core::decide::EXPLICIT_ROUTE;
use crate::core::decision::{Decision, Level};
use crate::core::error::RouterError;
use crate::core::request::{ChatRequest, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The frustration phrases of a config that lists none: English, case-insensitive, matched
/// after typographic apostrophes become `'`. Each names the assistant's failure, not the
/// user's own trouble ("I just asked my DBA" is not frustration; "I already told you" is).
pub const DEFAULT_FRUSTRATION_PHRASES: [&str; 6] = [
    r"(?i)\b(no|nope),? (that'?s|this is|it'?s) not (what|it)\b",
    r"(?i)\bnot what i (meant|asked|wanted|said)\b",
    r"(?i)\byou('re| are) not (listening|understanding|getting it)\b",
    r"(?i)\b(still|again) (wrong|not working|doesn'?t work|broken)\b",
    r"(?i)\b(that|this|it)('s| is| was)(n't| not) (right|correct|helpful)([^\w-]|$)",
    r"(?i)\bi('ve| have)? (already|just) (told|asked) you\b|\bas i (already )?said\b",
];

/// The frustration exemplars of a config that lists none: short, generic complaints about an
/// answer, compared by meaning with the user's latest message.
pub const DEFAULT_FRUSTRATION_EXEMPLARS: [&str; 12] = [
    "No, that's not what I meant.",
    "You are not answering my question.",
    "That's wrong again, try again.",
    "This still doesn't work.",
    "I already told you that.",
    "You misunderstood what I asked.",
    "That answer is incorrect.",
    "I tried that and it didn't help.",
    "Did you even read what I wrote?",
    "You're contradicting yourself.",
    "This is useless.",
    "That makes no sense, I'm still stuck.",
];

/// The resolved phrases of a config that lists none: a message that opens or ends with thanks, or
/// says only that it works ("it works, thanks!", not "it works locally but not in CI"). They are
/// read after the frustration phrases, so "thanks, but it is still broken" stays frustrated.
pub const DEFAULT_RESOLVED_PHRASES: [&str; 3] = [
    r"(?i)^\W*(thanks|thank you|thx|ty|cheers|perfect|awesome|excellent|got it)\b",
    r"(?i)\b(thanks|thank (you|u)|thx|much appreciated|appreciate it|lifesaver)\b",
    r"(?i)^\W*(great,? )?(that|it|this) (works|worked|fixed it|solved it|did it|did the trick)\W*((thanks|thank you)\W*)?$",
];

/// A message shorter than this many words is never a rephrasing: "continue", "yes", "go on"
/// said twice are the conversation going on, not a question asked again.
pub const MIN_REPHRASE_WORDS: usize = 4;

/// How a turn landed, judged from the latest user message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "turn", rename_all = "snake_case")]
pub enum Judgement {
    /// The conversation's first user message: nothing to judge yet.
    Opening,
    /// A frustration phrase or exemplar: `why` says which.
    Frustrated { why: String },
    /// A thanks, a "that works".
    Thanked,
    /// The same question again, this similar to the previous one.
    Rephrased { similarity: f32 },
    /// Something else, this little similar to the previous one.
    NewTopic { similarity: f32 },
    /// On the same topic, neither rephrased nor new; `None` when nothing measured it.
    FollowUp { similarity: Option<f32> },
    /// A client said through `POST /v1/feedback` that an answer of the conversation was bad.
    BadFeedback,
}

impl Judgement {
    /// Whether the turn says the previous answer did not resolve it.
    pub fn unresolved(&self) -> bool {
        matches!(self, Judgement::Frustrated { .. } | Judgement::Rephrased { .. } | Judgement::BadFeedback)
    }

    /// Whether it says the previous answer did.
    pub fn resolved(&self) -> bool {
        matches!(self, Judgement::Thanked | Judgement::NewTopic { .. })
    }

    /// Its name, for the headers and the admin view.
    pub fn name(&self) -> &'static str {
        match self {
            Judgement::Opening => "opening",
            Judgement::Frustrated { .. } => "frustrated",
            Judgement::Thanked => "thanked",
            Judgement::Rephrased { .. } => "rephrased",
            Judgement::NewTopic { .. } => "new_topic",
            Judgement::FollowUp { .. } => "follow_up",
            Judgement::BadFeedback => "bad_feedback",
        }
    }
}

/// What the encoder measured of the latest user message, when one ran.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    /// Its similarity to the previous user message.
    pub to_previous: Option<f32>,
    /// Its greatest similarity to a frustration exemplar.
    pub to_frustration: Option<f32>,
}

/// Judges a turn from its last two user messages as routing reads them (`latest_two`:
/// [`ChatRequest::last_two_user_windows`], so a huge message costs what a long one does) and
/// what the encoder `measured` of those same texts.
pub fn judge(
    settings: &ConversationSettings,
    latest_two: (Option<&str>, Option<&str>),
    measured: Measured,
) -> Judgement {
    let (Some(latest), Some(previous)) = latest_two else {
        return Judgement::Opening;
    };
    // iOS and macOS keyboards type ’ where the phrases say '.
    let latest = &latest.replace('\u{2019}', "'");
    if let Some(phrase) = settings.frustration_phrases.iter().find(|p| p.is_match(latest)) {
        return Judgement::Frustrated { why: format!("phrase {}", phrase.as_str()) };
    }
    if let Some(score) = measured.to_frustration.filter(|s| *s >= settings.frustration_threshold) {
        return Judgement::Frustrated { why: format!("exemplar similarity {score:.2}") };
    }
    if settings.resolved_phrases.iter().any(|p| p.is_match(latest)) {
        return Judgement::Thanked;
    }
    let long_enough = latest.split_whitespace().count() >= MIN_REPHRASE_WORDS;
    match measured.to_previous {
        Some(similarity) if similarity >= settings.rephrase_threshold && long_enough => {
            Judgement::Rephrased { similarity }
        }
        Some(similarity) if similarity < settings.new_topic_threshold => Judgement::NewTopic { similarity },
        Some(similarity) => Judgement::FollowUp { similarity: Some(similarity) },
        None if long_enough && same_words(latest, previous) => Judgement::Rephrased { similarity: 1.0 },
        None => Judgement::FollowUp { similarity: None },
    }
}

/// Whether two texts have the same words, ignoring case and punctuation.
fn same_words(a: &str, b: &str) -> bool {
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    };
    words(a) == words(b)
}

/// One conversation's state, as its Durable Object keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    /// Turns recorded (requests, concurrent ones included).
    pub turns: u64,
    /// Unresolved turns in a row.
    pub unresolved_streak: u32,
    /// Frustrated turns since the last resolved one.
    pub frustrated: u32,
    /// Resolved turns in a row.
    pub resolved_streak: u32,
    /// The turn at which it escalated, while it is escalated.
    pub escalated_at_turn: Option<u64>,
    /// Why it escalated, while it is escalated.
    pub escalation_reason: Option<String>,
    pub created_at_ms: u64,
    pub last_turn_at_ms: u64,
    /// The last turn's judgement.
    pub last_judgement: Option<Judgement>,
    /// Bad ratings received through `POST /v1/feedback`.
    #[serde(default)]
    pub bad_feedback: u32,
    /// The last turn counted's [`fingerprint`].
    #[serde(default)]
    pub last_fingerprint: Option<String>,
}

impl ConversationState {
    pub fn escalated(&self) -> bool {
        self.escalated_at_turn.is_some()
    }

    /// Records the turn `fingerprint` judged `judgement` at `now_ms`: counts it, then escalates
    /// (or steps down) as the settings say. A turn without a fingerprint (not the user's), or
    /// with the last one's (sent again), is not counted; `false` then.
    pub fn record_turn(
        &mut self,
        settings: &ConversationSettings,
        fingerprint: Option<&str>,
        judgement: Judgement,
        now_ms: u64,
    ) -> bool {
        match fingerprint {
            Some(fingerprint) if self.last_fingerprint.as_deref() != Some(fingerprint) => {
                self.last_fingerprint = Some(fingerprint.to_string());
                self.record(settings, judgement, now_ms);
                true
            }
            _ => false,
        }
    }

    /// Records one turn judged `judgement` at `now_ms`: counts it, then escalates (or steps down)
    /// as the settings say.
    pub fn record(&mut self, settings: &ConversationSettings, judgement: Judgement, now_ms: u64) {
        if self.turns == 0 {
            self.created_at_ms = now_ms;
        }
        self.turns += 1;
        self.last_turn_at_ms = now_ms;
        self.apply(settings, judgement);
    }

    /// Records a client's bad rating of one of its answers (`POST /v1/feedback`): an unresolved
    /// turn's weight, without a turn.
    pub fn record_bad_feedback(&mut self, settings: &ConversationSettings) {
        self.bad_feedback += 1;
        self.apply(settings, Judgement::BadFeedback);
    }

    fn apply(&mut self, settings: &ConversationSettings, judgement: Judgement) {
        if judgement.unresolved() {
            self.unresolved_streak += 1;
            self.resolved_streak = 0;
        } else if judgement.resolved() {
            self.unresolved_streak = 0;
            self.frustrated = 0;
            self.resolved_streak += 1;
        }
        if matches!(judgement, Judgement::Frustrated { .. }) {
            self.frustrated += 1;
        }
        self.last_judgement = Some(judgement);
        if self.escalated() {
            if settings.step_down_after > 0 && self.resolved_streak >= settings.step_down_after {
                self.escalated_at_turn = None;
                self.escalation_reason = None;
                self.unresolved_streak = 0;
                self.frustrated = 0;
            }
            return;
        }
        if let Some(reason) = self.limit_crossed(settings) {
            self.escalated_at_turn = Some(self.turns);
            self.escalation_reason = Some(reason);
            self.resolved_streak = 0;
        }
    }

    /// Which limit the counts have reached, if any.
    fn limit_crossed(&self, settings: &ConversationSettings) -> Option<String> {
        if self.frustrated >= settings.frustrated_turns {
            Some(format!(
                "{} frustrated turns (frustrated_turns = {})",
                self.frustrated, settings.frustrated_turns
            ))
        } else if self.unresolved_streak >= settings.unresolved_turns {
            Some(format!(
                "{} unresolved turns in a row (unresolved_turns = {})",
                self.unresolved_streak, settings.unresolved_turns
            ))
        } else {
            None
        }
    }

    /// Whether it has been idle `idle_seconds` at `now_ms`.
    pub fn idle(&self, settings: &ConversationSettings, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_turn_at_ms) >= settings.idle_seconds.saturating_mul(1000)
    }
}

/// Where conversation `id` stands before a turn, against the limits that escalate it: what
/// `/v1/route` shows (a dry run reads the state and counts nothing).
pub fn standing_json(
    id: &str,
    state: &ConversationState,
    settings: &ConversationSettings,
) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "turns": state.turns,
        "unresolved_in_a_row": state.unresolved_streak,
        "escalates_at_unresolved": settings.unresolved_turns,
        "frustrated": state.frustrated,
        "escalates_at_frustrated": settings.frustrated_turns,
        "escalate_to": settings.escalate_to,
        "escalated_at_turn": state.escalated_at_turn,
        "escalation_reason": state.escalation_reason,
    })
}

/// The decision for a turn of an escalated conversation: `escalate_to` first, then the models
/// routing chose as fallbacks, at level `conversation`. A decision that named its model stays.
pub fn escalate(decision: Decision, settings: &ConversationSettings, state: &ConversationState) -> Decision {
    let Some(turn) = state.escalated_at_turn else { return decision };
    if decision.route == EXPLICIT_ROUTE {
        return decision;
    }
    let mut candidates = vec![settings.escalate_to.clone()];
    candidates.extend(decision.candidates.iter().filter(|m| **m != settings.escalate_to).cloned());
    // The escalation decided the model: its reason comes first.
    let mut reasons = vec![format!(
        "the conversation escalated to {:?} at turn {turn}: {}",
        settings.escalate_to,
        state.escalation_reason.as_deref().unwrap_or("limits crossed")
    )];
    reasons.extend(decision.reasons);
    Decision {
        model: settings.escalate_to.clone(),
        candidates,
        level: Level::Conversation,
        reasons,
        ..decision
    }
}

/// Longest conversation id a client may send in `x-switchyard-conversation`.
pub const MAX_ID_CHARS: usize = 128;

/// The conversation id of a request: the client's `x-switchyard-conversation` header when it sends
/// one (1 to 128 letters, digits and `._:-`; anything else is refused), scoped to the router key
/// that sent it (`client:KEYTAG:ID`, so a client cannot reach another key's conversations by
/// guessing names), else derived from who asks and how the conversation began ([`derived_id`]).
/// `None` when there is nothing to derive from (no user message).
pub fn conversation_id(
    header: Option<&str>,
    router_key: Option<&str>,
    request: &ChatRequest,
) -> Result<Option<String>, String> {
    match header {
        Some(id) => {
            let valid = !id.is_empty()
                && id.chars().count() <= MAX_ID_CHARS
                && id.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
            if valid {
                Ok(Some(format!("client:{}:{id}", key_tag(router_key))))
            } else {
                Err(format!("x-switchyard-conversation must be 1 to {MAX_ID_CHARS} letters, digits and ._:-"))
            }
        }
        None => Ok(derived_id(router_key, request)),
    }
}

/// A short tag of a router key (the first 8 bytes of its SHA-256, hex; `open` without auth):
/// tells keys apart, tells nothing of the key.
pub fn key_tag(router_key: Option<&str>) -> String {
    match router_key {
        None => "open".into(),
        Some(key) => Sha256::digest(key.as_bytes()).iter().take(8).map(|b| format!("{b:02x}")).collect(),
    }
}

/// The id of a conversation whose client names none: the SHA-256 of the router key (so two
/// clients never share a conversation), the first system (or developer) message, the first user
/// message and the first assistant answer. Every later turn of an OpenAI-style conversation
/// resends those, so it finds the same object; and the first answer (sampled per conversation)
/// keeps apart end users who open alike through one app. `None` before there is an answer: a
/// first turn has nothing to judge, and one-shot requests make no object. Apps with many users
/// per key should still send `x-switchyard-conversation`.
pub fn derived_id(router_key: Option<&str>, request: &ChatRequest) -> Option<String> {
    let first =
        |role: &[Role]| request.messages.iter().find(|m| role.contains(&m.role)).map(|m| m.text.as_str());
    let user = first(&[Role::User])?;
    let answer = first(&[Role::Assistant])?;
    let system = first(&[Role::System, Role::Developer]).unwrap_or("");
    let mut hash = Sha256::new();
    for part in ["switchyard-conversation-v2", router_key.unwrap_or(""), system, user, answer] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    let hex: String = hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(format!("derived:{hex}"))
}

/// What identifies a turn, so that the same turn sent again (a client's retry, a regenerate) is
/// not counted twice: the number of user messages and a hash of the latest. `None` when the last
/// message is not the user's (a tool result: the same turn going on), which is not counted.
pub fn fingerprint(request: &ChatRequest) -> Option<String> {
    let last = request.messages.last().filter(|m| m.role == Role::User)?;
    let users = request.messages.iter().filter(|m| m.role == Role::User).count();
    let hash = Sha256::digest(last.text.as_bytes());
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Some(format!("{users}:{hex}"))
}

/// The id in `GET /v1/admin/conversations/{id}`: as `x-switchyard-conversation` answered it
/// (`client:KEYTAG:NAME` or `derived:HEX`), percent-encoded or not.
pub fn admin_id(path_part: &str) -> Result<String, RouterError> {
    let decoded = path_part.replace("%3A", ":").replace("%3a", ":");
    let valid = !decoded.is_empty()
        && decoded.len() <= MAX_ID_CHARS + 32
        && (decoded.starts_with("client:") || decoded.starts_with("derived:"))
        && decoded.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
    if valid {
        Ok(decoded)
    } else {
        Err(RouterError::invalid_request(
            "a conversation id is what x-switchyard-conversation answered: client:KEYTAG:NAME or derived:HEX",
        ))
    }
}
