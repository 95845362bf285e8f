//! Level 4 across turns: each turn judged from the user's messages, counted, and a conversation
//! escalated when its limits are crossed, sticky unless configured to step down; ids from the
//! client's header or derived; the config checked where it is written.

use serde_json::json;
use switchyard::core::config::{Config, ConversationSettings};
use switchyard::core::conversation::{
    conversation_id, derived_id, escalate, fingerprint, judge, standing_json, ConversationState, Judgement,
    Measured,
};
use switchyard::core::decision::Level;
use switchyard::core::request::ChatRequest;

const CONFIG: &str = r#"
[providers.local]
kind = "openai"
base_url = "http://localhost:11434/v1"

[models.small]
provider = "local"
context_window = 8192

[models.frontier]
provider = "local"
context_window = 200000

[[routes]]
name = "chat"
models = ["small"]

[default]
route = "chat"

[conversation]
escalate_to = "frontier"
unresolved_turns = 3
"#;

fn settings() -> ConversationSettings {
    Config::parse("conversation.toml", CONFIG).unwrap().conversation.unwrap()
}

/// A conversation whose user said `said`, in order, the assistant answering in between.
fn turns(said: &[&str]) -> ChatRequest {
    let mut messages = vec![json!({"role": "system", "content": "Be helpful."})];
    for (i, text) in said.iter().enumerate() {
        if i > 0 {
            messages.push(json!({"role": "assistant", "content": format!("answer {i}")}));
        }
        messages.push(json!({"role": "user", "content": text}));
    }
    ChatRequest::from_value(json!({"model": "auto", "messages": messages})).unwrap()
}

/// The judgement of `request`'s turn, from its last two user messages as routing reads them.
fn judged(s: &ConversationSettings, request: &ChatRequest, measured: Measured) -> Judgement {
    let (latest, previous) = request.last_two_user_windows();
    judge(s, (latest.as_deref(), previous.as_deref()), measured)
}

fn similar(to_previous: f32) -> Measured {
    Measured { to_previous: Some(to_previous), to_frustration: None }
}

#[test]
fn defaults_apply_and_mistakes_point_at_their_place() {
    let s = settings();
    assert_eq!(
        (s.unresolved_turns, s.frustrated_turns, s.step_down_after, s.idle_seconds),
        (3, 2, 0, 86_400)
    );
    assert_eq!((s.rephrase_threshold, s.new_topic_threshold, s.frustration_threshold), (0.6, 0.1, 0.55));
    assert!(!s.frustration_phrases.is_empty() && !s.frustration_exemplars.is_empty());
    for (line, says) in [
        ("escalate_to = \"ghost\"", "unknown model \"ghost\""),
        ("unresolved_turns = 0", "between 1 and 1000"),
        ("rephrase_threshold = 0.05", "new_topic_threshold must be below rephrase_threshold"),
        ("frustration_phrases = ['(oops']", "invalid regex"),
        ("idle_seconds = 0", "idle_seconds must be between 1"),
        ("frustrated_turn = 2", "unknown field `frustrated_turn`"),
    ] {
        let key = line.split(' ').next().unwrap();
        let text = if key == "escalate_to" || key == "unresolved_turns" {
            CONFIG.replace(
                &format!("{key} = {}", if key == "escalate_to" { "\"frontier\"" } else { "3" }),
                line,
            )
        } else {
            format!("{CONFIG}{line}\n")
        };
        let err = Config::parse("conversation.toml", &text).unwrap_err().to_string();
        assert!(err.starts_with("conversation.toml:") && err.contains(says), "{line}: {err}");
    }
}

#[test]
fn a_turn_is_judged_from_the_latest_user_message_against_the_previous_one() {
    let s = settings();
    assert_eq!(judged(&s, &turns(&["How do I sort a list?"]), Measured::default()), Judgement::Opening);
    let frustrated =
        judged(&s, &turns(&["How do I sort a list?", "No, that's not what I meant"]), similar(0.2));
    assert!(matches!(frustrated, Judgement::Frustrated { .. }), "{frustrated:?}");
    let by_meaning = Measured { to_previous: Some(0.4), to_frustration: Some(0.8) };
    let frustrated =
        judged(&s, &turns(&["How do I sort a list?", "ugh, you keep missing the point"]), by_meaning);
    assert_eq!(frustrated, Judgement::Frustrated { why: "exemplar similarity 0.80".into() });
    assert_eq!(
        judged(&s, &turns(&["Sort a list?", "Thanks, that works!"]), similar(0.1)),
        Judgement::Thanked
    );
    assert_eq!(
        judged(&s, &turns(&["Sort a list?", "How can I sort my list?"]), similar(0.9)),
        Judgement::Rephrased { similarity: 0.9 }
    );
    assert_eq!(
        judged(&s, &turns(&["Sort a list?", "What's the capital of Peru?"]), similar(0.05)),
        Judgement::NewTopic { similarity: 0.05 }
    );
    assert_eq!(
        judged(&s, &turns(&["Sort a list?", "And in reverse order?"]), similar(0.5)),
        Judgement::FollowUp { similarity: Some(0.5) }
    );
    // Without an encoder: the same words again is a rephrasing; anything else a follow-up.
    assert_eq!(
        judged(&s, &turns(&["How do I sort a list?", "how do I sort a list"]), Measured::default()),
        Judgement::Rephrased { similarity: 1.0 }
    );
    assert_eq!(
        judged(&s, &turns(&["Sort a list?", "In Python"]), Measured::default()),
        Judgement::FollowUp { similarity: None }
    );
}

fn rephrased() -> Judgement {
    Judgement::Rephrased { similarity: 0.9 }
}

fn frustrated() -> Judgement {
    Judgement::Frustrated { why: "phrase".into() }
}

#[test]
fn the_default_phrases_catch_the_assistants_failures_not_the_users_own_words() {
    let s = settings();
    let latest = |text: &str| judged(&s, &turns(&["How do I deploy this service?", text]), similar(0.5));
    for text in [
        "That\u{2019}s not right",
        "No, that's not what I meant",
        "I already told you the port",
        "still wrong",
    ] {
        assert!(matches!(latest(text), Judgement::Frustrated { .. }), "{text}: {:?}", latest(text));
    }
    for text in [
        "I just asked my DBA and he said no",
        "The header isn't right-aligned on mobile",
        "It works locally but not in CI",
        "How it works under the hood?",
    ] {
        assert!(matches!(latest(text), Judgement::FollowUp { .. }), "{text}: {:?}", latest(text));
    }
    assert_eq!(latest("It works, thanks!"), Judgement::Thanked);
    // Short messages said again are the conversation going on, not a question asked again.
    assert_eq!(
        judged(&s, &turns(&["continue", "continue"]), similar(1.0)),
        Judgement::FollowUp { similarity: Some(1.0) }
    );
}

#[test]
fn a_turn_sent_again_or_a_tool_round_is_not_counted() {
    let s = settings();
    let request = turns(&["How do I sort a list?", "How do I sort a list?"]);
    let print = fingerprint(&request);
    let mut state = ConversationState::default();
    assert!(state.record_turn(&s, print.as_deref(), rephrased(), 0));
    assert!(!state.record_turn(&s, print.as_deref(), rephrased(), 0), "a retry");
    assert_eq!(state.turns, 1);
    let mut messages = request.body["messages"].as_array().unwrap().clone();
    messages.push(json!({"role": "assistant", "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}));
    messages.push(json!({"role": "tool", "tool_call_id": "t", "content": "42"}));
    let tool_round = ChatRequest::from_value(json!({"model": "auto", "messages": messages})).unwrap();
    assert_eq!(fingerprint(&tool_round), None);
    assert!(!state.record_turn(&s, None, rephrased(), 0));
    assert_ne!(fingerprint(&turns(&["a"])), fingerprint(&turns(&["a", "a"])), "the turn's place counts");
}

#[test]
fn unresolved_turns_in_a_row_escalate_exactly_at_the_limit_and_it_sticks() {
    let s = settings();
    let mut state = ConversationState::default();
    state.record(&s, Judgement::Opening, 1_000);
    state.record(&s, rephrased(), 2_000);
    state.record(&s, rephrased(), 3_000);
    assert!(!state.escalated());
    state.record(&s, rephrased(), 4_000);
    assert_eq!(state.escalated_at_turn, Some(4));
    assert_eq!(
        state.escalation_reason.as_deref(),
        Some("3 unresolved turns in a row (unresolved_turns = 3)")
    );
    for turn in 0..5 {
        state.record(&s, Judgement::Thanked, 5_000 + turn);
    }
    assert_eq!(state.escalated_at_turn, Some(4), "escalation is sticky by default");
    assert_eq!((state.turns, state.created_at_ms, state.last_turn_at_ms), (9, 1_000, 5_004));
}

#[test]
fn the_standing_shows_the_counts_against_the_limits_that_escalate() {
    let s = settings();
    let mut state = ConversationState::default();
    state.record(&s, Judgement::Opening, 1_000);
    state.record(&s, rephrased(), 2_000);
    let standing = standing_json("client:abc:chat-1", &state, &s);
    assert_eq!(standing["turns"], 2);
    assert_eq!(
        (standing["unresolved_in_a_row"].as_u64(), standing["escalates_at_unresolved"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(standing["escalated_at_turn"], json!(null));
    assert!(standing.get("last_fingerprint").is_none(), "{standing}");
    state.record(&s, rephrased(), 3_000);
    state.record(&s, rephrased(), 4_000);
    let standing = standing_json("client:abc:chat-1", &state, &s);
    assert_eq!(standing["escalated_at_turn"], 4);
    assert_eq!(standing["escalate_to"], s.escalate_to.as_str());
}

#[test]
fn a_resolved_turn_resets_the_streak_and_a_follow_up_does_not_move_it() {
    let s = settings();
    let mut state = ConversationState::default();
    for judgement in
        [rephrased(), rephrased(), Judgement::NewTopic { similarity: 0.1 }, rephrased(), rephrased()]
    {
        state.record(&s, judgement, 0);
    }
    assert!(!state.escalated());
    state.record(&s, Judgement::FollowUp { similarity: None }, 0);
    assert_eq!(state.unresolved_streak, 2);
    state.record(&s, rephrased(), 0);
    assert!(state.escalated());
}

#[test]
fn frustration_escalates_sooner_and_bad_feedback_counts_as_unresolved() {
    let s = settings();
    let mut state = ConversationState::default();
    state.record(&s, frustrated(), 0);
    state.record(&s, Judgement::FollowUp { similarity: None }, 0);
    assert!(!state.escalated());
    state.record(&s, frustrated(), 0);
    assert_eq!(state.escalation_reason.as_deref(), Some("2 frustrated turns (frustrated_turns = 2)"));

    let mut state = ConversationState::default();
    state.record(&s, Judgement::Opening, 0);
    state.record(&s, rephrased(), 0);
    state.record_bad_feedback(&s);
    assert!(!state.escalated());
    state.record_bad_feedback(&s);
    assert!(state.escalated(), "two bad ratings after an unresolved turn make three");
    assert_eq!((state.turns, state.bad_feedback, state.escalated_at_turn), (2, 2, Some(2)));
}

#[test]
fn with_step_down_after_resolved_turns_return_the_conversation_to_routing() {
    let mut s = settings();
    s.step_down_after = 2;
    let mut state = ConversationState::default();
    for _ in 0..3 {
        state.record(&s, rephrased(), 0);
    }
    assert!(state.escalated());
    state.record(&s, Judgement::Thanked, 0);
    assert!(state.escalated());
    state.record(&s, Judgement::Thanked, 0);
    assert!(!state.escalated());
}

#[test]
fn an_escalated_conversation_goes_to_the_frontier_model_with_routing_as_fallback() {
    let config = Config::parse("conversation.toml", CONFIG).unwrap();
    let s = config.conversation.clone().unwrap();
    let request = turns(&["hi"]);
    let decision = crate::routing::decide(&config, &crate::routing::without_encoder(), &request).unwrap();
    let mut state = ConversationState::default();
    assert_eq!(escalate(decision.clone(), &s, &state), decision);
    for _ in 0..3 {
        state.record(&s, rephrased(), 0);
    }
    let escalated = escalate(decision.clone(), &s, &state);
    assert_eq!((escalated.level, escalated.model.as_str()), (Level::Conversation, "frontier"));
    assert_eq!(escalated.candidates, ["frontier", "small"]);
    assert_eq!(escalated.route, "chat");
    assert!(escalated.reasons[0].contains("escalated to \"frontier\" at turn 3"), "{:?}", escalated.reasons);
    // A request that named its model keeps it.
    let named =
        ChatRequest::from_value(json!({"model": "small", "messages": [{"role": "user", "content": "hi"}]}))
            .unwrap();
    let decision = crate::routing::decide(&config, &crate::routing::without_encoder(), &named).unwrap();
    assert_eq!(escalate(decision.clone(), &s, &state), decision);
}

#[test]
fn ids_come_from_the_header_or_from_who_asks_and_how_the_conversation_began() {
    let first = turns(&["How do I sort a list?"]);
    assert_eq!(derived_id(Some("sk-a"), &first), None, "a first turn makes no object");
    let second = turns(&["How do I sort a list?", "in reverse"]);
    let later = turns(&["How do I sort a list?", "in reverse", "thanks"]);
    assert_eq!(derived_id(Some("sk-a"), &second), derived_id(Some("sk-a"), &later));
    assert_ne!(derived_id(Some("sk-a"), &second), derived_id(Some("sk-b"), &second));
    assert_ne!(
        derived_id(Some("sk-a"), &second),
        derived_id(Some("sk-a"), &turns(&["Something else", "in reverse"]))
    );
    // Two users who open alike get different first answers, so different conversations.
    let mut other = second.clone();
    other.body["messages"][2]["content"] = json!("another answer");
    let other = ChatRequest::from_value(serde_json::Value::Object(other.body)).unwrap();
    assert_ne!(derived_id(Some("sk-a"), &second), derived_id(Some("sk-a"), &other));
    let id = derived_id(Some("sk-a"), &second).unwrap();
    assert!(id.starts_with("derived:") && id.len() == "derived:".len() + 32 && !id.contains("sk-a"), "{id}");
    let named = conversation_id(Some("chat-42"), Some("sk-a"), &first).unwrap().unwrap();
    assert!(
        named.starts_with("client:") && named.ends_with(":chat-42") && !named.contains("sk-a"),
        "{named}"
    );
    // The same name under another key is another conversation.
    assert_ne!(Some(named), conversation_id(Some("chat-42"), Some("sk-b"), &first).unwrap());
    for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
        assert!(conversation_id(Some(bad), None, &first).is_err(), "{bad:?}");
    }
}
