//! Request parsing: what is accepted, and the field named when something is not.

use switchyard::core::request::{ChatRequest, Role};

fn error(body: &str) -> (u16, Option<String>, String) {
    let e = ChatRequest::parse(body.as_bytes()).expect_err("request should be rejected");
    (e.status(), e.param, e.message)
}

#[test]
fn a_typical_request_is_understood() {
    let r = ChatRequest::parse(
        br#"{"model":"auto","stream":true,"max_tokens":50,"messages":[
            {"role":"system","content":"Be brief."},
            {"role":"user","content":[{"type":"text","text":"What is"},{"type":"text","text":"this?"},
                {"type":"image_url","image_url":{"url":"data:,"}}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"42"},
            {"role":"user","content":"thanks"}]}"#,
    )
    .unwrap();
    assert!(r.stream);
    assert_eq!(r.max_output_tokens, Some(50));
    assert_eq!(r.messages.len(), 5);
    assert_eq!(r.messages[1].text, "What is\nthis?");
    assert_eq!(r.messages[1].media_parts, 1);
    assert_eq!(r.messages[2].role, Role::Assistant);
    assert!(r.messages[2].tool_call_text.contains("\"name\":\"f\""));
    assert_eq!(r.latest_user_text(), "thanks");
}

#[test]
fn model_defaults_to_auto_and_is_rewritten_upstream_with_other_fields_kept() {
    let r = ChatRequest::parse(
        br#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.3,"x_vendor":{"a":1}}"#,
    )
    .unwrap();
    assert_eq!(r.model, "auto");
    let body: serde_json::Value = serde_json::from_str(&r.upstream_json("llama3", &[]).unwrap()).unwrap();
    assert_eq!(body["model"], "llama3");
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(body["x_vendor"]["a"], 1);
}

#[test]
fn max_completion_tokens_wins_over_max_tokens() {
    let r = ChatRequest::parse(
        br#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":10,"max_completion_tokens":20}"#,
    )
    .unwrap();
    assert_eq!(r.max_output_tokens, Some(20));
}

#[test]
fn bad_requests_name_the_field() {
    let (status, param, message) = error("{not json");
    assert_eq!((status, param), (400, None));
    assert!(message.contains("not valid JSON"), "{message}");

    assert_eq!(error("[]").0, 400);
    assert_eq!(error(r#"{"messages":[]}"#).1.as_deref(), Some("messages"));
    assert_eq!(error(r#"{"messages":"hi"}"#).1.as_deref(), Some("messages"));
    assert_eq!(
        error(r#"{"model":5,"messages":[{"role":"user","content":"hi"}]}"#).1.as_deref(),
        Some("model")
    );
    assert_eq!(
        error(r#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#).1.as_deref(),
        Some("model")
    );
    assert_eq!(
        error(r#"{"stream":"yes","messages":[{"role":"user","content":"hi"}]}"#).1.as_deref(),
        Some("stream")
    );

    let (_, param, message) = error(r#"{"messages":[{"role":"robot","content":"hi"}]}"#);
    assert_eq!(param.as_deref(), Some("messages[0].role"));
    assert!(message.contains("robot"), "{message}");

    let (_, param, message) = error(r#"{"messages":[{"role":"user","content":42}]}"#);
    assert_eq!(param.as_deref(), Some("messages[0].content"));
    assert!(message.contains("expected a string or an array of content parts"), "{message}");

    assert_eq!(error(r#"{"messages":[{"role":"user"}]}"#).1.as_deref(), Some("messages[0].content"));
    assert_eq!(
        error(r#"{"messages":[{"role":"user","content":[{"type":"text"}]}]}"#).1.as_deref(),
        Some("messages[0].content[0].text")
    );
}

#[test]
fn an_assistant_message_with_tool_calls_may_omit_content() {
    let r = ChatRequest::parse(
        br#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[]}]}"#,
    );
    assert!(r.is_ok());
}

#[test]
fn deeply_nested_or_huge_input_does_not_panic() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(error(&deep).0, 400);
    let big = format!(r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#, "a".repeat(1_000_000));
    assert!(ChatRequest::parse(big.as_bytes()).is_ok());
}

#[test]
fn bodies_past_a_limit_are_refused_before_they_are_parsed() {
    use switchyard::core::body_limits::MAX_MESSAGES;
    let message = serde_json::json!({"role": "user", "content": "a"});
    let body = serde_json::json!({"messages": vec![message; MAX_MESSAGES + 1]}).to_string();
    let err = ChatRequest::parse(body.as_bytes()).unwrap_err();
    assert_eq!((err.status(), err.param.as_deref()), (400, Some("messages")));
    assert!(err.message.contains("more than 2048 messages"), "{}", err.message);
}
