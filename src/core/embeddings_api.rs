//! `POST /v1/embeddings`: the OpenAI embeddings API over the router's own encoder.
//!
//! Parsing and answer building only; the Worker runs the encoder in between. The official
//! clients ask for `encoding_format: "base64"` by default (little-endian f32), so both formats are
//! served.

use crate::core::error::{ErrorKind, RouterError};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

/// Inputs per request: bounds the CPU one request can take.
pub const MAX_INPUTS: usize = 64;
/// Characters per input (OpenAI's own limit is 8,192 tokens, about this many characters). The
/// encoder reads only the first 256 tokens of an input; a longer one is refused rather than
/// silently cut so far that its embedding no longer stands for it.
pub const MAX_INPUT_CHARS: usize = 32_768;
/// Names the model answers to.
pub const MODEL_NAMES: [&str; 2] = ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingFormat {
    Float,
    Base64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsRequest {
    pub inputs: Vec<String>,
    pub format: EncodingFormat,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default)]
    model: Option<String>,
    input: WireInput,
    #[serde(default)]
    encoding_format: Option<EncodingFormat>,
    #[serde(default)]
    dimensions: Option<u64>,
}

impl EmbeddingsRequest {
    pub fn parse(bytes: &[u8], dimensions: usize) -> Result<EmbeddingsRequest, RouterError> {
        crate::core::body_limits::check(bytes)?;
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| RouterError::invalid_request(format!("request body is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(RouterError::invalid_request("request body must be a JSON object"));
        }
        let wire: Wire = serde_path_to_error::deserialize(&value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string().replace(
                "data did not match any variant of untagged enum WireInput",
                "expected a string or an array of strings (token arrays are not supported)",
            );
            let param = if path == "." { String::new() } else { path.clone() };
            RouterError::invalid_request(format!("invalid request body at {path}: {inner}")).with_param(param)
        })?;
        if let Some(model) = &wire.model {
            if !MODEL_NAMES.contains(&model.as_str()) {
                return Err(RouterError::new(
                    ErrorKind::ModelNotFound,
                    format!(
                        "The model `{model}` does not exist. This router embeds with `{}`.",
                        MODEL_NAMES[0]
                    ),
                )
                .with_param("model"));
            }
        }
        if let Some(d) = wire.dimensions {
            if d as usize != dimensions {
                return Err(RouterError::invalid_request(format!(
                    "dimensions must be {dimensions} for {} (or omitted)",
                    MODEL_NAMES[0]
                ))
                .with_param("dimensions"));
            }
        }
        let inputs = match wire.input {
            WireInput::One(s) => vec![s],
            WireInput::Many(v) => v,
        };
        if inputs.is_empty() || inputs.len() > MAX_INPUTS {
            return Err(RouterError::invalid_request(format!("input must hold 1 to {MAX_INPUTS} strings"))
                .with_param("input"));
        }
        if let Some(i) = inputs.iter().position(|s| s.is_empty()) {
            return Err(RouterError::invalid_request(format!("input[{i}] is empty"))
                .with_param(format!("input[{i}]")));
        }
        if let Some(i) = inputs.iter().position(|s| s.chars().nth(MAX_INPUT_CHARS).is_some()) {
            return Err(RouterError::invalid_request(format!(
                "input[{i}] is longer than {MAX_INPUT_CHARS} characters, the most one input may hold"
            ))
            .with_param(format!("input[{i}]")));
        }
        Ok(EmbeddingsRequest { inputs, format: wire.encoding_format.unwrap_or(EncodingFormat::Float) })
    }
}

/// The OpenAI answer body; `prompt_tokens` counts the encoder's tokens.
pub fn embeddings_json(vectors: &[Vec<f32>], format: EncodingFormat, prompt_tokens: usize) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = match format {
                EncodingFormat::Float => json!(v),
                EncodingFormat::Base64 => {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": MODEL_NAMES[0],
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_one_or_many_inputs_and_both_formats() {
        let r = EmbeddingsRequest::parse(br#"{"model":"all-MiniLM-L6-v2","input":"hi"}"#, 384).unwrap();
        assert_eq!((r.inputs.len(), r.format), (1, EncodingFormat::Float));
        let r = EmbeddingsRequest::parse(br#"{"input":["a","b"],"encoding_format":"base64"}"#, 384).unwrap();
        assert_eq!((r.inputs.len(), r.format), (2, EncodingFormat::Base64));
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        let status = |body: &str| EmbeddingsRequest::parse(body.as_bytes(), 384).unwrap_err().status();
        assert_eq!(status(r#"{"model":"text-embedding-3-small","input":"hi"}"#), 404);
        assert_eq!(status(r#"{"input":[1,2,3]}"#), 400);
        assert_eq!(status(r#"{"input":""}"#), 400);
        assert_eq!(status(r#"{"input":[]}"#), 400);
        assert_eq!(status(r#"{"input":"hi","dimensions":256}"#), 400);
        assert_eq!(status(r#"{"input":"hi","encoding_format":"int8"}"#), 400);
        assert_eq!(status(r#"{"model":"all-MiniLM-L6-v2"}"#), 400);
        assert_eq!(status("nope"), 400);
        let inputs: Vec<String> = vec!["hi".into(); MAX_INPUTS + 1];
        assert_eq!(status(&json!({ "input": inputs }).to_string()), 400);
        let long = EmbeddingsRequest::parse(
            json!({ "input": ["hi", "x".repeat(MAX_INPUT_CHARS + 1)] }).to_string().as_bytes(),
            384,
        )
        .unwrap_err();
        assert_eq!((long.status(), long.param.as_deref()), (400, Some("input[1]")));
        assert!(long.message.contains("32768 characters"), "{}", long.message);
        assert!(EmbeddingsRequest::parse(
            json!({ "input": "x".repeat(MAX_INPUT_CHARS) }).to_string().as_bytes(),
            384
        )
        .is_ok());
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let body = embeddings_json(&[vec![1.0, -2.0]], EncodingFormat::Base64, 3);
        let encoded = body["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert_eq!(bytes, [1.0f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        assert_eq!(body["usage"]["prompt_tokens"], 3);
    }
}
