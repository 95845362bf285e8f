//! Property tests over every parser that reads what someone else wrote: the request parser and
//! its body limits, the SSE parser, each provider's whole answer and stream (through the relay),
//! each provider's request translation, feedback, embeddings and the config parser. Inputs are
//! arbitrary, or real samples (the wire files, the built-in config) mutated byte by byte. Each must
//! give a value or a typed error, never a panic: a panic in the Worker aborts the isolate and
//! every request on it.
//!
//! CI runs proptest's default of 256 cases per property. A longer run:
//! `PROPTEST_CASES=100000 cargo test --release --test native fuzz::`.

use proptest::prelude::*;
use serde_json::json;
use switchyard::core::config::{Config, Price, ProviderKind};
use switchyard::core::embeddings_api::EmbeddingsRequest;
use switchyard::core::feedback::Feedback;
use switchyard::core::providers::{self, Target};
use switchyard::core::relay::StreamRelay;
use switchyard::core::request::ChatRequest;
use switchyard::core::sse::SseParser;
use switchyard::BUILTIN_CONFIG;

const KINDS: [ProviderKind; 3] = [ProviderKind::Openai, ProviderKind::Anthropic, ProviderKind::Gemini];

/// Real samples to mutate: requests, whole answers and streams of every API, and configs.
fn samples() -> Vec<Vec<u8>> {
    let wire = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/wire");
    let mut out: Vec<Vec<u8>> = Vec::new();
    for dir in ["openai", "anthropic", "gemini", "requests"] {
        for entry in std::fs::read_dir(format!("{wire}/{dir}")).unwrap() {
            out.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
    }
    out.push(BUILTIN_CONFIG.as_bytes().to_vec());
    out.push(
        json!({
            "model": "auto", "stream": true, "max_tokens": 10,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "data:x"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c", "content": "42"},
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        })
        .to_string()
        .into_bytes(),
    );
    out
}

/// A sample with a few bytes changed, inserted or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let samples = samples();
    let count = samples.len();
    (0..count, prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8)).prop_map(
        move |(which, edits)| {
            let mut bytes = samples[which].clone();
            for (at, byte, how) in edits {
                let i = at.index(bytes.len().max(1));
                match how {
                    0 if i < bytes.len() => bytes[i] = byte,
                    1 => bytes.insert(i.min(bytes.len()), byte),
                    _ if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ => {}
                }
            }
            bytes
        },
    )
}

/// Arbitrary bytes, or a mutated sample.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated()]
}

fn config() -> &'static Config {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| Config::parse("switchyard.toml", BUILTIN_CONFIG).unwrap())
}

proptest! {
    #[test]
    fn requests_parse_or_are_a_400(bytes in input()) {
        if let Err(error) = ChatRequest::parse(&bytes) {
            prop_assert_eq!(error.status(), 400);
        }
        if let Err(error) = EmbeddingsRequest::parse(&bytes, 384) {
            prop_assert!(matches!(error.status(), 400 | 404));
        }
        if let Err(error) = Feedback::parse(&bytes, config()) {
            prop_assert_eq!(error.status(), 400);
        }
    }

    #[test]
    fn a_parsed_request_translates_for_every_api_or_is_refused(bytes in mutated()) {
        if let Ok(request) = ChatRequest::parse(&bytes) {
            for kind in KINDS {
                let target = Target { kind, base_url: "https://up.example/v1", api_key: Some("sk-fuzz-0123456789"), model: "m", default_max_tokens: 1024 };
                if let Err(error) = providers::build_request(&target, &request) {
                    prop_assert_eq!(error.status(), 400);
                }
            }
        }
    }

    #[test]
    fn the_sse_parser_takes_any_bytes_split_anywhere(bytes in input(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
        let mut parser = SseParser::new();
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut start = 0;
        for end in at.into_iter().chain([bytes.len()]) {
            let _ = parser.feed(&bytes[start..end]);
            start = end;
        }
        let _ = parser.finish();
    }

    #[test]
    fn every_apis_whole_answer_is_a_completion_or_a_typed_error(bytes in input()) {
        let text = String::from_utf8_lossy(&bytes);
        for kind in KINDS {
            if let Err(error) = providers::parse_completion(kind, &text, "m", 1) {
                prop_assert!(error.status() >= 400);
            }
        }
    }

    #[test]
    fn every_apis_stream_relays_or_ends_in_a_typed_error(bytes in input(), split in any::<prop::sample::Index>()) {
        let at = split.index(bytes.len() + 1);
        for kind in KINDS {
            let translator = providers::stream_translator(kind, "m", 1);
            let mut relay = StreamRelay::new(translator, true, Price { input: 1.0, output: 2.0 });
            for part in [&bytes[..at], &bytes[at..]] {
                if relay.feed(part).error.is_some() {
                    break;
                }
            }
            let _ = relay.finish();
        }
    }

    #[test]
    fn a_config_parses_or_points_at_a_line(bytes in input()) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(error) = Config::parse("fuzz.toml", &text) {
            prop_assert!(error.line >= 1, "{}", error);
        }
    }
}
