//! all-MiniLM-L6-v2 sentence embeddings, computed in-process (natively and inside the Worker).
//!
//! Text is tokenized by the `tokenizers` crate with the model's own `tokenizer.json` (no padding,
//! truncated at 256 tokens as sentence-transformers does), run through the quantized encoder
//! with tract, then mean-pooled over the tokens and L2-normalised, so vectors compare by dot
//! product. The same code runs in the CLI, the native tests and the Worker: what the tests check
//! is what the edge computes.
//!
//! The encoder is `model/encoder.onnx`: weight-only int8 (see model/README.md for why), with its
//! matmuls replaced at load time by [`int8_linear::Int8MatMul`] so weights stay int8 in memory.
//!
//! [`static_encoder`] is MiniLM's static student (one vector per token), distilled from this
//! encoder for routing within a few milliseconds of CPU (issue D2); [`static_tuning`] tunes it on
//! labelled rows, end to end with the classifier head (native only).

pub mod int8_linear;
pub mod static_encoder;
#[cfg(not(target_arch = "wasm32"))]
pub mod static_tuning;

use crate::core::semantic::Encode;
use crate::core::tokens::prefix_of_tokens;
use std::fmt;
use tokenizers::Tokenizer;
use tract_onnx::prelude::*;

/// Embedding size of all-MiniLM-L6-v2.
pub const DIMENSIONS: usize = crate::core::semantic::ENCODER_DIMENSIONS;
/// Longest input in tokens (sentence-transformers' `max_seq_length`); longer texts are cut.
pub const MAX_TOKENS: usize = 256;

/// The first `window` token ids of `text` from `encode` (a tokenizer that truncates at `window`),
/// without tokenizing the whole text: the tokenizer's time grows with all it reads, though only
/// `window` ids are kept. It reads the start the token estimate puts at `window` tokens (word
/// pieces are mostly at least as many as the estimate's tokens), and a start twice as long each
/// time that falls short, so the ids are those of the whole text; a text whose start at 16 times
/// the window still falls short (characters the tokenizer drops) is cut there.
pub fn first_token_ids<E>(
    text: &str,
    window: usize,
    encode: impl Fn(&str) -> Result<Vec<u32>, E>,
) -> Result<Vec<u32>, E> {
    let mut budget = window as u64;
    loop {
        let part = prefix_of_tokens(text, budget);
        let ids = encode(part)?;
        if ids.len() >= window || part.len() == text.len() || budget >= 16 * window as u64 {
            return Ok(ids);
        }
        budget *= 2;
    }
}
/// The model id the embeddings API answers to.
pub const MODEL_ID: &str = "all-MiniLM-L6-v2";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedError {
    /// The tokenizer file could not be loaded.
    Tokenizer(String),
    /// The encoder file could not be loaded or prepared.
    Model(String),
    /// Running the encoder failed.
    Inference(String),
}

impl fmt::Display for EmbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmbedError::Tokenizer(e) => write!(f, "embedding tokenizer: {e}"),
            EmbedError::Model(e) => write!(f, "embedding model: {e}"),
            EmbedError::Inference(e) => write!(f, "embedding inference: {e}"),
        }
    }
}

impl std::error::Error for EmbedError {}

type Plan = std::sync::Arc<TypedRunnableModel>;

pub struct Encoder {
    tokenizer: Tokenizer,
    plan: Plan,
    /// How many matmuls run on int8 weights: 24 for the shipped model (6 layers × 4).
    pub int8_matmuls: usize,
    /// Milliseconds each step of the load took, by the clock given to the loader.
    pub load_phases: Vec<(&'static str, f64)>,
}

impl Encoder {
    /// Loads the encoder from the bytes of `tokenizer.json` and `encoder.onnx`.
    pub fn from_bytes(tokenizer_json: &[u8], onnx: &[u8]) -> Result<Encoder, EmbedError> {
        Self::from_onnx(load_tokenizer(tokenizer_json)?, onnx, || 0.0)
    }

    /// Loads the encoder from `encoder.onnx` read through `onnx`: the Worker reads it out of a
    /// JavaScript buffer a window at a time, so wasm memory never holds the whole file next to
    /// the decoded weights (wasm memory, once grown, never shrinks). `clock` (milliseconds)
    /// times each step for [`Encoder::load_phases`].
    pub fn from_onnx(
        tokenizer: Tokenizer,
        onnx: impl bytes::Buf,
        clock: impl Fn() -> f64,
    ) -> Result<Encoder, EmbedError> {
        let mut phases = Vec::new();
        let mut last = clock();
        let mut phase = |name: &'static str| {
            let now = clock();
            phases.push((name, now - last));
            last = now;
        };
        let model_err = |e: TractError| EmbedError::Model(format!("{e:#}"));
        let framework = tract_onnx::onnx();
        let mut proto = <tract_onnx::pb::ModelProto as prost::Message>::decode(onnx)
            .map_err(|e| EmbedError::Model(format!("not an ONNX file: {e}")))?;
        let int8 = int8_linear::detach_int8_initializers(&mut proto).map_err(model_err)?;
        phase("decode");
        let mut model = framework.model_for_proto_model(&proto).map_err(model_err)?;
        drop(proto);
        let tokens = model.symbols.sym("S");
        model.set_input_fact(0, i64::fact([1.to_dim(), tokens.to_dim()]).into()).map_err(model_err)?;
        phase("graph");
        let mut typed = model.into_typed().map_err(model_err)?;
        phase("typing");
        let int8_matmuls = int8_linear::attach_int8_weights(&mut typed, int8).map_err(model_err)?;
        phase("int8");
        let plan = typed.into_optimized().and_then(|m| m.into_runnable()).map_err(model_err)?;
        phase("optimise");
        Ok(Encoder { tokenizer, plan, int8_matmuls, load_phases: phases })
    }

    /// Tokens in the tokenizer's vocabulary.
    pub fn vocabulary_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Token ids as the model sees them: `[CLS] … [SEP]`, at most [`MAX_TOKENS`].
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        first_token_ids(text, MAX_TOKENS, |part| {
            let encoding =
                self.tokenizer.encode(part, true).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
            Ok(encoding.get_ids().to_vec())
        })
    }

    /// The L2-normalised embedding of `text`.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let ids = self.token_ids(text)?;
        self.embed_ids(&ids)
    }

    /// The L2-normalised embedding of already-tokenized input.
    pub fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, EmbedError> {
        let err = |e: TractError| EmbedError::Inference(format!("{e:#}"));
        if ids.is_empty() || ids.len() > MAX_TOKENS {
            return Err(EmbedError::Inference(format!("{} tokens; expected 1 to {MAX_TOKENS}", ids.len())));
        }
        let input: Tensor =
            tract_ndarray::Array2::from_shape_vec((1, ids.len()), ids.iter().map(|&i| i as i64).collect())
                .map_err(|e| EmbedError::Inference(e.to_string()))?
                .into();
        let outputs = self.plan.run(tvec!(input.into())).map_err(err)?;
        let hidden = outputs[0].to_plain_array_view::<f32>().map_err(err)?;
        let tokens = ids.len();
        if hidden.len() != tokens * DIMENSIONS {
            return Err(EmbedError::Inference(format!("unexpected output shape {:?}", hidden.shape())));
        }
        let flat = hidden.as_slice().ok_or_else(|| EmbedError::Inference("non-contiguous output".into()))?;
        Ok(mean_pool_normalized(flat, tokens))
    }
}

/// Level 2 reads the encoder through this trait, so core routing never names tract.
impl Encode for Encoder {
    fn id(&self) -> &str {
        crate::core::semantic::ENCODER_ID
    }

    fn dimensions(&self) -> usize {
        DIMENSIONS
    }

    fn token_ids(&self, text: &str) -> Result<Vec<u32>, String> {
        Encoder::token_ids(self, text).map_err(|e| e.to_string())
    }

    fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, String> {
        Encoder::embed_ids(self, ids).map_err(|e| e.to_string())
    }
}

/// The encoder behind levels 2 and 3, as the config chose it (`[semantic] encoder`).
pub enum RoutingEncoder {
    MiniLm(Encoder),
    Static(static_encoder::StaticEncoder),
}

impl RoutingEncoder {
    fn inner(&self) -> &dyn Encode {
        match self {
            RoutingEncoder::MiniLm(encoder) => encoder,
            RoutingEncoder::Static(encoder) => encoder,
        }
    }

    /// MiniLM itself, for what only MiniLM serves (the OpenAI embeddings API).
    pub fn minilm(&self) -> Option<&Encoder> {
        match self {
            RoutingEncoder::MiniLm(encoder) => Some(encoder),
            RoutingEncoder::Static(_) => None,
        }
    }
}

impl Encode for RoutingEncoder {
    fn id(&self) -> &str {
        self.inner().id()
    }

    fn dimensions(&self) -> usize {
        self.inner().dimensions()
    }

    fn token_ids(&self, text: &str) -> Result<Vec<u32>, String> {
        self.inner().token_ids(text)
    }

    fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, String> {
        self.inner().embed_ids(ids)
    }
}

/// The model's tokenizer from its `tokenizer.json`, set up as sentence-transformers runs it.
pub fn load_tokenizer(json: &[u8]) -> Result<Tokenizer, EmbedError> {
    let mut tokenizer = Tokenizer::from_bytes(json).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
        .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
    Ok(tokenizer)
}

/// Mean over the token rows of `hidden` (`tokens × DIMENSIONS`), then L2-normalised.
pub fn mean_pool_normalized(hidden: &[f32], tokens: usize) -> Vec<f32> {
    let mut pooled = vec![0f32; DIMENSIONS];
    for row in hidden.chunks_exact(DIMENSIONS).take(tokens) {
        for (p, v) in pooled.iter_mut().zip(row) {
            *p += v;
        }
    }
    let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        pooled.iter_mut().for_each(|v| *v /= norm);
    }
    pooled
}

/// Dot product; the cosine similarity of two normalised embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
