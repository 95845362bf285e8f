//! Level 2: routing by meaning.
//!
//! Each route lists a few exemplar sentences. Their embeddings are computed once (by
//! `switchyard build-index`, into `model/index.json`) and each request's text is embedded and
//! compared with them by cosine similarity. A route's score aggregates its exemplars'
//! similarities (`max`, or the mean of the `top_k` best); the best-scoring route wins if it clears
//! its threshold, else the request falls through to later routes and finally the default.
//!
//! The index records a hash of everything it was computed from (the encoder's id and every
//! route's exemplars), so an index built for another config is detected, never silently used.
//!
//! The encoder itself is not named here: level 2 reads it through [`Encode`], which `src/embed`'s
//! encoder implements, so the same routing code runs natively, in the Worker and in tests.

use crate::core::classifier::ClassifierHead;
use crate::core::config::{Aggregation, Config, RouteSemantic};
use crate::core::request::ChatRequest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Identifies MiniLM, the router's encoder: [`Encode::id`] of `src/embed`'s encoder.
pub const ENCODER_ID: &str = "all-MiniLM-L6-v2/w8-per-channel/v1";

/// The length of MiniLM's embeddings.
pub const ENCODER_DIMENSIONS: usize = 384;

/// Exemplar embeddings for a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemplarIndex {
    /// [`index_hash`] of the config the index was built from.
    pub config_hash: String,
    pub encoder: String,
    pub dimensions: usize,
    /// Route name → one embedding per exemplar, in config order.
    pub routes: BTreeMap<String, Vec<Vec<f32>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexError {
    Unreadable(String),
    /// The index was built from other exemplars (or another encoder).
    Stale {
        index_hash: String,
        config_hash: String,
    },
}

impl fmt::Display for IndexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IndexError::Unreadable(e) => write!(f, "exemplar index is unreadable: {e}"),
            IndexError::Stale { index_hash, config_hash } => write!(
                f,
                "exemplar index is stale: it was built for config hash {index_hash}, the config's is {config_hash}; run `switchyard build-index`"
            ),
        }
    }
}

impl std::error::Error for IndexError {}

/// A stable hash (FNV-1a, 64 bits, hex) of the encoder id and every route's exemplars.
pub fn index_hash(config: &Config, encoder_id: &str) -> String {
    let exemplars = with_exemplars(config).flat_map(|(route, semantic)| {
        std::iter::once(route).chain(semantic.exemplars.iter().map(String::as_str))
    });
    embeddings_hash(encoder_id, exemplars)
}

/// A stable hash (FNV-1a, 64 bits, hex) of the encoder id and `texts`, each ended by a 0xff
/// byte: what a set of embeddings was made from.
pub fn embeddings_hash<'a>(encoder_id: &'a str, texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for text in std::iter::once(encoder_id).chain(texts) {
        for &b in text.as_bytes().iter().chain([0xffu8].iter()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x100000001b3);
        }
    }
    format!("{hash:016x}")
}

impl ExemplarIndex {
    /// Builds the index by embedding every exemplar with `embed`, the encoder `encoder_id`'s.
    pub fn build<E>(
        config: &Config,
        encoder_id: &str,
        mut embed: impl FnMut(&str) -> Result<Vec<f32>, E>,
    ) -> Result<ExemplarIndex, E> {
        let mut routes = BTreeMap::new();
        let mut dimensions = 0;
        for (route, semantic) in with_exemplars(config) {
            let mut vectors = Vec::with_capacity(semantic.exemplars.len());
            for exemplar in &semantic.exemplars {
                let v = embed(exemplar)?;
                dimensions = v.len();
                vectors.push(v);
            }
            routes.insert(route.to_string(), vectors);
        }
        let config_hash = index_hash(config, encoder_id);
        Ok(ExemplarIndex { config_hash, encoder: encoder_id.into(), dimensions, routes })
    }

    pub fn from_json(text: &str) -> Result<ExemplarIndex, IndexError> {
        serde_json::from_str(text).map_err(|e| IndexError::Unreadable(e.to_string()))
    }

    /// Compact JSON (vectors rounded to 6 decimals, plenty for cosine similarity).
    pub fn to_json(&self) -> String {
        let mut rounded = self.clone();
        for vectors in rounded.routes.values_mut() {
            for v in vectors.iter_mut() {
                v.iter_mut().for_each(|x| *x = (*x * 1e6).round() / 1e6);
            }
        }
        serde_json::to_string(&rounded).unwrap_or_default()
    }

    /// Errs when the index was not built from `config`'s exemplars by the encoder `encoder_id`.
    pub fn check(&self, config: &Config, encoder_id: &str) -> Result<(), IndexError> {
        let config_hash = index_hash(config, encoder_id);
        if self.config_hash == config_hash {
            Ok(())
        } else {
            Err(IndexError::Stale { index_hash: self.config_hash.clone(), config_hash })
        }
    }

    /// Every route's aggregated score for the query embedding.
    pub fn scores(&self, query: &[f32], aggregation: Aggregation, top_k: usize) -> BTreeMap<String, f32> {
        self.routes
            .iter()
            .map(|(route, exemplars)| {
                let mut similarities: Vec<f32> = exemplars.iter().map(|e| dot(query, e)).collect();
                (route.clone(), aggregate(&mut similarities, aggregation, top_k))
            })
            .collect()
    }
}

/// Turns text into a unit vector: what levels 2 and 3 need of an encoder.
pub trait Encode {
    /// Names the encoder and its version. The exemplar index and the classifier record it, so
    /// one made with another encoder is refused, not silently compared.
    fn id(&self) -> &str;
    /// The length of its embeddings.
    fn dimensions(&self) -> usize;
    fn token_ids(&self, text: &str) -> Result<Vec<u32>, String>;
    fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, String>;

    fn embed(&self, text: &str) -> Result<Vec<f32>, String> {
        self.embed_ids(&self.token_ids(text)?)
    }
}

/// A borrowed encoder encodes: tests and tools share one loaded model.
impl<E: Encode + ?Sized> Encode for &E {
    fn id(&self) -> &str {
        (**self).id()
    }

    fn dimensions(&self) -> usize {
        (**self).dimensions()
    }

    fn token_ids(&self, text: &str) -> Result<Vec<u32>, String> {
        (**self).token_ids(text)
    }

    fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, String> {
        (**self).embed_ids(ids)
    }
}

/// An encoder and what its embeddings are compared with: the exemplar index (level 2) and, when
/// the config has a `[classifier]`, the trained head (level 3).
pub struct SemanticModel<E> {
    pub encoder: E,
    pub index: ExemplarIndex,
    /// `None` without a `[classifier]` section; else the head, or why it could not be used.
    pub classifier: Option<Result<ClassifierHead, String>>,
    /// The `[conversation]` frustration exemplars' embeddings (none without that section).
    pub frustration: Vec<Vec<f32>>,
}

impl<E: Encode> SemanticModel<E> {
    /// Attaches level 3's head from its artifact as the platform read it (the Worker from its
    /// model assets, the CLI from `--model-dir`); a missing or refused one is kept as the reason.
    pub fn attach_classifier(&mut self, config: &Config, artifact: Result<String, String>) {
        let routes: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        self.classifier = config.classifier.as_ref().map(|settings| {
            let text =
                artifact.map_err(|e| format!("cannot read the classifier {:?}: {e}", settings.path))?;
            ClassifierHead::from_json(&text, &routes, &self.encoder)
                .map_err(|e| format!("{}: {e}", settings.path))
        });
    }

    /// Pairs `encoder` with `shipped` (the index `switchyard build-index` wrote) when that was
    /// built for `config`'s exemplars; else embeds the exemplars now, calling `on_exemplar` after
    /// each. The second value says why the shipped index was not used, for the caller to report.
    /// The Worker and the CLI both load level 2 through this.
    pub fn load(
        encoder: E,
        config: &Config,
        shipped: Option<&str>,
        mut on_exemplar: impl FnMut(),
    ) -> Result<(SemanticModel<E>, Option<IndexError>), String> {
        let usable = shipped.map(|text| {
            ExemplarIndex::from_json(text).and_then(|index| index.check(config, encoder.id()).map(|()| index))
        });
        let (index, rejected) = match usable {
            Some(Ok(index)) => (index, None),
            rejected => {
                let index = ExemplarIndex::build(config, encoder.id(), |text| {
                    let v = encoder.embed(text);
                    on_exemplar();
                    v
                })?;
                (index, rejected.and_then(Result::err))
            }
        };
        let frustration = config
            .conversation
            .iter()
            .flat_map(|c| &c.frustration_exemplars)
            .map(|text| encoder.embed(text))
            .collect::<Result<Vec<_>, String>>()?;
        Ok((SemanticModel { encoder, index, classifier: None, frustration }, rejected))
    }

    /// Its greatest similarity of `query` to a frustration exemplar.
    pub fn frustration_similarity(&self, query: &[f32]) -> Option<f32> {
        self.frustration.iter().map(|e| dot(e, query)).max_by(f32::total_cmp)
    }
}

/// Every route with exemplars, by name, in config order.
fn with_exemplars(config: &Config) -> impl Iterator<Item = (&str, &RouteSemantic)> {
    config.routes.iter().filter_map(|r| r.semantic.as_ref().map(|s| (r.name.as_str(), s)))
}

/// The cosine similarity of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn aggregate(similarities: &mut [f32], aggregation: Aggregation, top_k: usize) -> f32 {
    if similarities.is_empty() {
        return f32::MIN;
    }
    similarities.sort_by(|a, b| b.total_cmp(a));
    match aggregation {
        Aggregation::Max => similarities[0],
        Aggregation::TopKMean => {
            let best = &similarities[..top_k.min(similarities.len())];
            best.iter().sum::<f32>() / best.len() as f32
        }
    }
}

/// The text level 2 embeds for a request.
///
/// The latest user message, because it states what is asked now; system prompts (the same on
/// every turn), assistant answers and tool results are never embedded. A short follow-up ("and
/// in Python?", "shorter please") says little on its own, so when the latest user message has
/// fewer than `follow_up_words` words the previous user message is put before it. A user message
/// with no text (an image alone) is skipped for the one before it. Each message is read through
/// its [`crate::core::request::routing_window`], so the text is bounded whatever the prompt's size.
pub fn routing_text(request: &ChatRequest, follow_up_words: usize) -> String {
    match request.last_two_user_windows() {
        (None, _) => String::new(),
        (Some(latest), Some(previous))
            if latest.split_whitespace().take(follow_up_words).count() < follow_up_words =>
        {
            format!("{previous}\n{latest}")
        }
        (Some(latest), _) => latest.into_owned(),
    }
}
