//! Turns an upstream's event stream, as bytes arrive, into the OpenAI stream the client reads.
//!
//! The relay owns the SSE parser and the provider's translator, and guarantees the client-facing
//! contract whatever the upstream does: chunks as `data: {json}` events; a usage chunk (with its
//! cost) only when the client asked for `stream_options.include_usage`; `data: [DONE]` only after
//! an answer the upstream said was complete. A stream cut short, an error event or garbage ends
//! with an OpenAI error event instead, so no client mistakes a broken answer for a whole one.

use crate::core::config::Price;
use crate::core::error::{ErrorKind, RouterError};
use crate::core::providers::{StreamTranslator, Usage};
use crate::core::sse::{SseEvent, SseParser};
use serde_json::{json, Value};

/// What one step of the relay produced.
#[derive(Debug, Default)]
pub struct Relayed {
    /// SSE bytes for the client.
    pub bytes: Vec<u8>,
    /// Set when the stream failed; nothing more will be relayed.
    pub error: Option<RouterError>,
}

pub struct StreamRelay {
    parser: SseParser,
    translator: Box<dyn StreamTranslator>,
    include_usage: bool,
    price: Price,
    /// `id`, `created` and `model` of the first chunk, reused by the usage chunk.
    template: Option<(Value, Value, Value)>,
    ended: bool,
    /// Chunks produced so far.
    pub chunks_sent: usize,
    /// Whether a chunk with substance (content, a tool call, a refusal or a finish reason) was
    /// produced: before that, the stream has said nothing and could still be replaced.
    pub answering: bool,
}

impl StreamRelay {
    pub fn new(translator: Box<dyn StreamTranslator>, include_usage: bool, price: Price) -> Self {
        StreamRelay {
            parser: SseParser::new(),
            translator,
            include_usage,
            price,
            template: None,
            ended: false,
            chunks_sent: 0,
            answering: false,
        }
    }

    /// The next upstream bytes in; the client's bytes out (possibly none yet), and the error
    /// that ended the stream if one did. Chunks translated before the error are still sent.
    pub fn feed(&mut self, bytes: &[u8]) -> Relayed {
        let mut out = Relayed::default();
        if self.ended {
            return out;
        }
        match self.parser.feed(bytes) {
            Ok(events) => {
                for event in events {
                    if let Err(e) = self.translate(&event, &mut out.bytes) {
                        out.error = Some(e);
                        break;
                    }
                }
            }
            Err(e) => {
                self.ended = true;
                out.error = Some(RouterError::new(
                    ErrorKind::UpstreamMalformed,
                    format!("unreadable upstream stream: {e}"),
                ));
            }
        }
        out
    }

    /// The upstream closed its stream: the last bytes for the client, and the error if the
    /// answer was cut short.
    pub fn finish(&mut self) -> Relayed {
        let mut out = Relayed::default();
        if self.ended {
            return out;
        }
        if let Some(event) = self.parser.finish() {
            if let Err(e) = self.translate(&event, &mut out.bytes) {
                out.error = Some(e);
                return out;
            }
        }
        self.ended = true;
        if !self.translator.complete() {
            out.error = Some(
                RouterError::new(
                    ErrorKind::UpstreamMalformed,
                    "the upstream stream ended before the answer was complete",
                )
                .with_code("stream_interrupted"),
            );
            return out;
        }
        if self.include_usage {
            let (id, created, model) =
                self.template.clone().unwrap_or((json!("switchyard"), json!(0), json!("")));
            let mut usage = self.usage().map_or(Value::Null, Usage::to_openai_json);
            if let (Value::Object(u), Some(cost)) = (&mut usage, self.cost_usd()) {
                u.insert("cost".into(), json!(cost));
            }
            let chunk = json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [], "usage": usage,
            });
            write_event(&mut out.bytes, &chunk.to_string());
        }
        out.bytes.extend_from_slice(b"data: [DONE]\n\n");
        out
    }

    /// Whether the upstream has said the answer is complete.
    pub fn complete(&self) -> bool {
        self.translator.complete()
    }

    pub fn usage(&self) -> Option<Usage> {
        self.translator.usage()
    }

    pub fn cost_usd(&self) -> Option<f64> {
        self.usage().map(|u| self.price.cost_usd(u.prompt_tokens, u.completion_tokens))
    }

    fn translate(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> Result<(), RouterError> {
        match self.translator.event(event) {
            Ok(chunks) => {
                self.write(out, chunks);
                Ok(())
            }
            Err(e) => {
                self.ended = true;
                Err(e)
            }
        }
    }

    fn write(&mut self, out: &mut Vec<u8>, chunks: Vec<Value>) {
        for chunk in chunks {
            if self.template.is_none() {
                let field = |name: &str| chunk.get(name).cloned().unwrap_or(Value::Null);
                self.template = Some((field("id"), field("created"), field("model")));
            }
            self.answering |= has_substance(&chunk);
            write_event(out, &chunk.to_string());
            self.chunks_sent += 1;
        }
    }
}

/// Whether a chunk says something: more than the opening `{"role": "assistant", "content": ""}`.
/// Reasoning deltas (DeepSeek-R1 on vLLM or Ollama) count: a model thinking aloud is answering.
fn has_substance(chunk: &Value) -> bool {
    chunk.get("choices").and_then(Value::as_array).into_iter().flatten().any(|choice| {
        let delta = choice.get("delta");
        let field = |name: &str| delta.and_then(|d| d.get(name)).filter(|v| !v.is_null());
        !choice.get("finish_reason").is_none_or(Value::is_null)
            || field("content").is_some_and(|c| c.as_str() != Some(""))
            || field("tool_calls").is_some()
            || field("function_call").is_some()
            || field("refusal").is_some()
            || field("reasoning_content").is_some()
            || field("reasoning").is_some()
    })
}

fn write_event(out: &mut Vec<u8>, data: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// The event that ends a stream which failed after its first byte: an OpenAI error object, which
/// the official clients raise as an exception. No `[DONE]` follows it.
pub fn error_event(error: &RouterError) -> Vec<u8> {
    let mut out = Vec::new();
    write_event(&mut out, &error.to_openai_json().to_string());
    out
}

/// A whole answer (a `chat.completion` in OpenAI form) sent as the stream the client asked for:
/// the cascade reads a rated answer whole before its verdict, then streams the one it keeps. One
/// chunk per choice with its role and all its content (text, refusal, reasoning, tool calls),
/// (and its log-probabilities, if it has them), one with its finish reason, the usage chunk with
/// its cost if the client asked for
/// `stream_options.include_usage`, then `[DONE]`.
pub fn replay_completion(completion: &str, include_usage: bool, cost_usd: Option<f64>) -> Vec<u8> {
    let value: Value = serde_json::from_str(completion).unwrap_or(Value::Null);
    let field = |name: &str| value.get(name).cloned().unwrap_or(Value::Null);
    let (id, created, model) = (field("id"), field("created"), field("model"));
    let chunk = |choices: Value| json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices});
    let mut out = Vec::new();
    let choices = value.get("choices").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(i));
        let mut delta = serde_json::Map::new();
        delta.insert("role".into(), json!("assistant"));
        if let Some(Value::Object(message)) = choice.get("message") {
            for (name, part) in message {
                if name == "role" || part.is_null() {
                    continue;
                }
                let part = match (name.as_str(), part) {
                    // Deltas of tool calls carry their position in the message.
                    ("tool_calls", Value::Array(calls)) => Value::Array(
                        calls
                            .iter()
                            .enumerate()
                            .map(|(at, call)| {
                                let mut call = call.clone();
                                if let Value::Object(c) = &mut call {
                                    c.insert("index".into(), json!(at));
                                }
                                call
                            })
                            .collect(),
                    ),
                    _ => part.clone(),
                };
                delta.insert(name.clone(), part);
            }
        }
        let logprobs = choice.get("logprobs").cloned().unwrap_or(Value::Null);
        let said = json!([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": null}]);
        write_event(&mut out, &chunk(said).to_string());
        let finish = choice.get("finish_reason").cloned().unwrap_or(json!("stop"));
        let finished = json!([{"index": index, "delta": {}, "logprobs": null, "finish_reason": finish}]);
        write_event(&mut out, &chunk(finished).to_string());
    }
    if include_usage {
        let mut usage = field("usage");
        if let (Value::Object(u), Some(cost)) = (&mut usage, cost_usd) {
            u.insert("cost".into(), json!(cost));
        }
        let mut last = chunk(json!([]));
        last["usage"] = usage;
        write_event(&mut out, &last.to_string());
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}
