//! Provider translations against recorded wire samples (tests/data/wire).
//!
//! Each sample is what an upstream sends on the wire; each `*.expected*` file next to it is what
//! the client must receive, checked by eye once and then kept. `SWITCHYARD_BLESS=1 cargo test`
//! rewrites the expected files after an intended change (review the diff).

use serde_json::{json, Value};
use switchyard::core::config::{Price, ProviderKind};
use switchyard::core::error::ErrorKind;
use switchyard::core::providers::{self, Target, Usage};
use switchyard::core::relay::StreamRelay;
use switchyard::core::request::ChatRequest;

const WIRE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wire");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{WIRE}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Compares `actual` with the golden file (a path under tests/data/wire), or rewrites it under
/// SWITCHYARD_BLESS.
pub fn golden(path: &str, actual: &str) {
    let full = format!("{WIRE}/{path}");
    if std::env::var_os("SWITCHYARD_BLESS").is_some() {
        std::fs::write(&full, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("{path}: {e} (run with SWITCHYARD_BLESS=1)"));
    assert_eq!(actual, expected, "{path} differs from the golden file");
}

pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap() + "\n"
}

const PRICE: Price = Price { input: 3.0, output: 15.0 };

/// Runs a recorded stream through the relay in chunks of `size` bytes.
fn relay(
    kind: ProviderKind,
    sample: &str,
    include_usage: bool,
    size: usize,
) -> (String, Result<(), ErrorKind>, Option<Usage>) {
    let bytes = read(sample).into_bytes();
    let mut relay = StreamRelay::new(
        providers::stream_translator(kind, "upstream-model", 1764300000),
        include_usage,
        PRICE,
    );
    let mut out = Vec::new();
    for chunk in bytes.chunks(size) {
        let relayed = relay.feed(chunk);
        out.extend(relayed.bytes);
        if let Some(e) = relayed.error {
            return (String::from_utf8(out).unwrap(), Err(e.kind), relay.usage());
        }
    }
    let relayed = relay.finish();
    out.extend(relayed.bytes);
    let result = relayed.error.map_or(Ok(()), |e| Err(e.kind));
    (String::from_utf8(out).unwrap(), result, relay.usage())
}

/// The stream relayed whole and byte by byte gives the same output, which matches the golden file.
fn check_stream(
    kind: ProviderKind,
    sample: &str,
    include_usage: bool,
) -> (String, Result<(), ErrorKind>, Option<Usage>) {
    let whole = relay(kind, sample, include_usage, usize::MAX);
    for size in [1, 2, 7, 64] {
        let split = relay(kind, sample, include_usage, size);
        assert_eq!(split.0, whole.0, "{sample} in {size}-byte chunks");
        assert_eq!(split.1, whole.1);
    }
    golden(
        &sample.replace(".sse", &format!(".expected{}.sse", if include_usage { "-usage" } else { "" })),
        &whole.0,
    );
    whole
}

/// The text, tool calls and finish reason a client would rebuild from the relayed events.
fn rebuild(sse: &str) -> (String, Vec<(String, String, String)>, Option<String>) {
    let mut text = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for line in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(line).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        for choice in chunk["choices"].as_array().unwrap() {
            let delta = &choice["delta"];
            if let Some(t) = delta["content"].as_str() {
                text.push_str(t);
            }
            for call in delta["tool_calls"].as_array().into_iter().flatten() {
                let i = call["index"].as_u64().unwrap() as usize;
                if calls.len() <= i {
                    calls.push(Default::default());
                }
                if let Some(id) = call["id"].as_str() {
                    calls[i].0 = id.into();
                }
                if let Some(name) = call["function"]["name"].as_str() {
                    calls[i].1 = name.into();
                }
                calls[i].2.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_string());
            }
        }
    }
    (text, calls, finish)
}

#[test]
fn openai_stream_passes_through_and_the_usage_chunk_follows_the_client_choice() {
    let (sse, result, usage) = check_stream(ProviderKind::Openai, "openai/stream_tool_calls.sse", false);
    assert_eq!(result, Ok(()));
    let (_, calls, finish) = rebuild(&sse);
    assert_eq!(calls, vec![("call_abc".into(), "get_weather".into(), r#"{"city":"Paris"}"#.into())]);
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(usage, Some(Usage { prompt_tokens: 81, completion_tokens: 15 }));
    assert!(!sse.contains("\"usage\":{"), "usage was not asked for");
    assert!(sse.ends_with("data: [DONE]\n\n"));

    let (sse, _, _) = check_stream(ProviderKind::Openai, "openai/stream_tool_calls.sse", true);
    let last_chunk = sse.lines().rfind(|l| l.starts_with("data: {")).unwrap();
    let last: Value = serde_json::from_str(&last_chunk["data: ".len()..]).unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 96);
    // 81 * $3/M + 15 * $15/M
    assert!((last["usage"]["cost"].as_f64().unwrap() - 0.000468).abs() < 1e-12);
}

#[test]
fn a_stream_cut_before_its_finish_is_an_error_not_a_clean_end() {
    let (sse, result, _) = check_stream(ProviderKind::Openai, "openai/stream_cut.sse", false);
    assert_eq!(result, Err(ErrorKind::UpstreamMalformed));
    assert!(!sse.contains("[DONE]"));
    assert_eq!(rebuild(&sse).0, "Hello there");
}

#[test]
fn anthropic_text_stream() {
    let (sse, result, usage) = check_stream(ProviderKind::Anthropic, "anthropic/stream_text.sse", true);
    assert_eq!(result, Ok(()));
    let (text, calls, finish) = rebuild(&sse);
    assert_eq!(text, "Hello, world — ünïcode!");
    assert!(calls.is_empty());
    assert_eq!(finish.as_deref(), Some("stop"));
    assert_eq!(usage, Some(Usage { prompt_tokens: 25, completion_tokens: 15 }));
    assert!(sse.ends_with("data: [DONE]\n\n"));
}

#[test]
fn anthropic_tool_use_stream_becomes_tool_call_deltas() {
    let (sse, result, usage) = check_stream(ProviderKind::Anthropic, "anthropic/stream_tool_use.sse", false);
    assert_eq!(result, Ok(()));
    let (text, calls, finish) = rebuild(&sse);
    assert_eq!(text, "Let me check the weather.");
    assert_eq!(
        calls,
        vec![("toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(), "get_weather".into(), r#"{"city": "Paris"}"#.into())]
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    assert_eq!(usage, Some(Usage { prompt_tokens: 472, completion_tokens: 89 }));
}

#[test]
fn an_anthropic_error_event_mid_stream_is_a_typed_error() {
    let (sse, result, _) = check_stream(ProviderKind::Anthropic, "anthropic/stream_error.sse", false);
    // "overloaded_error": the same as an HTTP 503, so retried like one while nothing was sent.
    assert_eq!(result, Err(ErrorKind::UpstreamStatus(503)));
    assert_eq!(rebuild(&sse).0, "Partial");
    assert!(!sse.contains("[DONE]"));
}

#[test]
fn gemini_text_stream_with_crlf_events() {
    let (sse, result, usage) = check_stream(ProviderKind::Gemini, "gemini/stream_text.sse", true);
    assert_eq!(result, Ok(()));
    let (text, _, finish) = rebuild(&sse);
    assert_eq!(text, "The capital of France is Paris.");
    assert_eq!(finish.as_deref(), Some("stop"));
    // Thinking tokens are billed as output.
    assert_eq!(usage, Some(Usage { prompt_tokens: 9, completion_tokens: 28 }));
}

#[test]
fn gemini_function_calls_get_ids_and_a_tool_calls_finish() {
    let (sse, result, _) = check_stream(ProviderKind::Gemini, "gemini/stream_function_call.sse", false);
    assert_eq!(result, Ok(()));
    let (text, calls, finish) = rebuild(&sse);
    assert_eq!(text, "", "thought parts are not answer text");
    assert_eq!(
        calls,
        vec![
            ("call_0".into(), "get_weather".into(), r#"{"city":"Paris"}"#.into()),
            ("call_1".into(), "get_weather".into(), r#"{"city":"Tokyo"}"#.into()),
        ]
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[test]
fn whole_answers_are_translated_with_usage() {
    let openai =
        providers::parse_completion(ProviderKind::Openai, &read("openai/completion.json"), "m", 1).unwrap();
    assert_eq!(openai.body, read("openai/completion.json"), "OpenAI answers pass through byte for byte");
    assert_eq!(openai.usage, Some(Usage { prompt_tokens: 14, completion_tokens: 8 }));

    let anthropic = providers::parse_completion(
        ProviderKind::Anthropic,
        &read("anthropic/message_tool_use.json"),
        "m",
        1764300000,
    )
    .unwrap();
    let body: Value = serde_json::from_str(&anthropic.body).unwrap();
    golden("anthropic/message_tool_use.expected.json", &pretty(&body));
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["choices"][0]["message"]["content"], "I'll look that up.");
    assert_eq!(body["usage"]["prompt_tokens"], 484, "cache reads count as input");

    let gemini = providers::parse_completion(
        ProviderKind::Gemini,
        &read("gemini/response_function_call.json"),
        "gemini-2.5-flash",
        1764300000,
    )
    .unwrap();
    let body: Value = serde_json::from_str(&gemini.body).unwrap();
    golden("gemini/response_function_call.expected.json", &pretty(&body));
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(gemini.usage, Some(Usage { prompt_tokens: 40, completion_tokens: 17 }));
}

#[test]
fn unreadable_answers_are_malformed_errors() {
    for kind in [ProviderKind::Openai, ProviderKind::Anthropic, ProviderKind::Gemini] {
        let e = providers::parse_completion(kind, "<html>502 Bad Gateway</html>", "m", 1).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UpstreamMalformed, "{kind:?}");
        assert!(e.falls_back());
        assert_eq!(e.status(), 502);
    }
    // Gemini saying it garbled a tool call is a failed answer, not an empty one.
    let garbled = r#"{"candidates":[{"content":{"role":"model","parts":[]},"finishReason":"MALFORMED_FUNCTION_CALL"}]}"#;
    let e = providers::parse_completion(ProviderKind::Gemini, garbled, "m", 1).unwrap_err();
    assert_eq!(e.kind, ErrorKind::UpstreamMalformed);
}

fn conversation() -> ChatRequest {
    ChatRequest::parse(read("requests/tools_conversation.json").as_bytes()).unwrap()
}

fn target(kind: ProviderKind, base_url: &'static str, model: &'static str) -> Target<'static> {
    Target { kind, base_url, api_key: Some("sk-test-key-123456"), model, default_max_tokens: 4096 }
}

#[test]
fn a_tool_conversation_is_translated_for_anthropic() {
    let request = conversation();
    let out = providers::build_request(
        &target(ProviderKind::Anthropic, "https://api.anthropic.com/v1", "claude-sonnet-4-5"),
        &request,
    )
    .unwrap();
    assert_eq!(out.url, "https://api.anthropic.com/v1/messages");
    assert!(out.headers.contains(&("x-api-key", "sk-test-key-123456".into())));
    assert!(out.headers.contains(&("anthropic-version", "2023-06-01".into())));
    assert!(!out.headers.iter().any(|(h, _)| *h == "authorization"));
    let body: Value = serde_json::from_str(&out.body).unwrap();
    golden("requests/tools_conversation.anthropic.json", &pretty(&body));
    assert_eq!(body["system"], "You are a weather assistant.\n\nAnswer in one sentence.");
    let roles: Vec<&str> =
        body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user"],
        "both tool results and the next question share one user turn"
    );
    assert_eq!(body["tool_choice"], json!({"type": "auto", "disable_parallel_tool_use": true}));
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["temperature"], 0.2);
    assert!(body.get("top_p").is_none(), "current Claude models refuse temperature with top_p");
}

#[test]
fn a_tool_conversation_is_translated_for_gemini() {
    let request = conversation();
    let out = providers::build_request(
        &target(ProviderKind::Gemini, "https://generativelanguage.googleapis.com/v1beta", "gemini-2.5-flash"),
        &request,
    )
    .unwrap();
    assert_eq!(
        out.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert!(out.headers.contains(&("x-goog-api-key", "sk-test-key-123456".into())));
    let body: Value = serde_json::from_str(&out.body).unwrap();
    golden("requests/tools_conversation.gemini.json", &pretty(&body));
    let tool_turn = &body["contents"][2]["parts"];
    assert_eq!(tool_turn[0]["functionResponse"], json!({"name": "get_weather", "response": {"temp_c": 18}}));
    assert_eq!(tool_turn[1]["functionResponse"]["response"], json!({"result": "rainy, 21 C"}));
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 300);
}

#[test]
fn openai_requests_keep_every_field_and_ask_for_stream_usage() {
    let request = conversation();
    let out = providers::build_request(
        &target(ProviderKind::Openai, "http://localhost:11434/v1", "llama3.2:3b"),
        &request,
    )
    .unwrap();
    assert_eq!(out.url, "http://localhost:11434/v1/chat/completions");
    assert!(out.headers.contains(&("authorization", "Bearer sk-test-key-123456".into())));
    let body: Value = serde_json::from_str(&out.body).unwrap();
    assert_eq!(body["model"], "llama3.2:3b");
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["tools"], request.body["tools"]);
    assert_eq!(body["messages"], request.body["messages"]);
}

#[test]
fn json_mode_goes_where_the_upstream_has_it() {
    let request = ChatRequest::from_value(json!({
        "messages": [{"role": "user", "content": "List three colours as JSON"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "colours", "schema": {"type": "object"}}},
    }))
    .unwrap();
    let gemini =
        providers::build_request(&target(ProviderKind::Gemini, "https://g", "gemini-2.5-flash"), &request)
            .unwrap();
    let body: Value = serde_json::from_str(&gemini.body).unwrap();
    assert_eq!(body["generationConfig"]["responseMimeType"], "application/json");
    assert_eq!(body["generationConfig"]["responseJsonSchema"], json!({"type": "object"}));
    // Anthropic has no JSON mode: such a request skips Anthropic models instead of being
    // answered in free text.
    assert_eq!(providers::unsupported(ProviderKind::Anthropic, &request), Some("response_format"));
    assert_eq!(providers::unsupported(ProviderKind::Gemini, &request), None);
    assert_eq!(providers::unsupported(ProviderKind::Openai, &request), None);
}

#[test]
fn untranslatable_requests_are_400s_naming_the_field() {
    let request = ChatRequest::from_value(json!({
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]},
        ],
    }))
    .unwrap();
    for kind in [ProviderKind::Anthropic, ProviderKind::Gemini] {
        let e = providers::build_request(&target(kind, "https://x", "m"), &request).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(e.param.as_deref(), Some("messages[1].tool_calls[0].function.arguments"));
    }
    let orphan = ChatRequest::from_value(json!({
        "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}],
    }))
    .unwrap();
    let e = providers::build_request(&target(ProviderKind::Gemini, "https://x", "m"), &orphan).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("messages[1].tool_call_id"));
}

#[test]
fn a_stream_is_not_answering_until_it_says_something() {
    let mut relay =
        StreamRelay::new(providers::stream_translator(ProviderKind::Anthropic, "m", 1), false, PRICE);
    let start = read("anthropic/stream_text.sse");
    let first_delta = start.find("event: content_block_delta").unwrap();
    let relayed = relay.feed(&start.as_bytes()[..first_delta]);
    assert!(relayed.error.is_none());
    assert_eq!(relay.chunks_sent, 1, "the role chunk is produced…");
    assert!(!relay.answering, "…but it says nothing, so the model can still be replaced");
    relay.feed(&start.as_bytes()[first_delta..]);
    assert!(relay.answering);
}
