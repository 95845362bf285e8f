//! A static student of MiniLM: one vector per token, distilled from the encoder, so a routing
//! embedding costs a table lookup and a mean instead of six transformer layers.
//!
//! Why: issue D2 asks for a routing encoder that runs the whole router within the free plan's
//! 10 ms of CPU, from an asset of at most 6 MB. A transformer student keeps MiniLM's 30,522 × 384
//! word-embedding table (11.7 MB at int8) before its first layer; a static table does not need
//! layers at all. The way follows Model2Vec (MinishLab): every token of the vocabulary is run
//! through the teacher alone (`[CLS] token [SEP]`, mean-pooled as MiniLM pools a sentence), the
//! 384-dimensional outputs are reduced by PCA to `dimensions` (128 by default: 3.9 MB of table at int8),
//! and each vector is weighted by `ln(1 + id)`: WordPiece ids grow roughly as tokens get rarer,
//! so frequent, uninformative tokens weigh less in a sentence's mean (a cheap SIF weighting).
//! A text's embedding is the mean of its tokens' vectors, L2-normalised, compared by dot product
//! like MiniLM's.
//!
//! The file carries its own vocabulary, so the student needs no `tokenizer.json`: its tokenizer
//! is MiniLM's (uncased BERT WordPiece, from the `tokenizers` crate's parts) built from that list.
//! Parsing `tokenizer.json` took 170–330 ms of a cold start in local workerd; building the same
//! tokenizer from the list takes about 60 ms. Distilling checks that the two tokenize alike.
//!
//! Building needs the teacher and PCA, so it is native only ([`StaticEncoder::distill`]); using
//! the table is plain Rust, the same natively and in the Worker.
//!
//! The file (`*.static`, little-endian): `SYSTATIC`, format version (u32), vocabulary size (u32),
//! dimensions (u32), the SHA-256 of everything after the header (32 bytes: the encoder's id,
//! recorded so that loading does not hash 4 MB), the vocabulary's length in bytes (u32) and the
//! vocabulary (one token per line, in id order), one f32 scale per token, then the int8 table, a
//! token's row after another (`value × scale` is the weight).

use crate::embed::{first_token_ids, EmbedError, MAX_TOKENS};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{AddedToken, Tokenizer, TruncationParams};

const MAGIC: &[u8; 8] = b"SYSTATIC";
const VERSION: u32 = 3;
const HEADER_BYTES: usize = 8 + 4 + 4 + 4 + 32;
/// BERT's special tokens: split out of text before word pieces, as `tokenizer.json` does.
const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

pub struct StaticEncoder {
    /// Its [`Encode::id`](crate::core::semantic::Encode::id): the teacher, the width and a hash
    /// of the vocabulary and table, so an index or a head made with another table is refused.
    id: String,
    /// SHA-256 of the file's body (vocabulary, scales, table); written back by `to_bytes`,
    /// which only native tools call.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    digest: [u8; 32],
    /// Built from the file's vocabulary, which it keeps (token `i` has id `i`).
    tokenizer: Tokenizer,
    dimensions: usize,
    /// One scale per token.
    scales: Vec<f32>,
    /// `vocabulary × dimensions`, row-major.
    table: Vec<i8>,
}

impl StaticEncoder {
    /// Loads a file written by [`StaticEncoder::to_bytes`].
    pub fn from_bytes(file: &[u8]) -> Result<StaticEncoder, EmbedError> {
        let bad = |why: String| EmbedError::Model(format!("static encoder: {why}"));
        if file.len() < HEADER_BYTES + 4 || &file[..8] != MAGIC {
            return Err(bad("not a static encoder file".into()));
        }
        let word =
            |at: usize| u32::from_le_bytes([file[at], file[at + 1], file[at + 2], file[at + 3]]) as usize;
        if word(8) != VERSION as usize {
            return Err(bad(format!(
                "format version {}, this build reads {VERSION}: make it again with `switchyard distill-encoder`",
                word(8)
            )));
        }
        let (size, dimensions) = (word(12), word(16));
        let digest: [u8; 32] = file[20..HEADER_BYTES].try_into().map_err(|_| bad("short header".into()))?;
        // Checked: a damaged header must give an error, not wrap around (usize is 32 bits in wasm).
        let ends = (HEADER_BYTES + 4).checked_add(word(HEADER_BYTES)).and_then(|vocabulary_end| {
            let scales_end = vocabulary_end.checked_add(size.checked_mul(4)?)?;
            Some((vocabulary_end, scales_end, scales_end.checked_add(size.checked_mul(dimensions)?)?))
        });
        let (vocabulary_end, scales_end) = match ends {
            Some((vocabulary_end, scales_end, end))
                if (1..=crate::embed::DIMENSIONS).contains(&dimensions) && end == file.len() =>
            {
                (vocabulary_end, scales_end)
            }
            _ => {
                return Err(bad(format!(
                    "{} bytes do not hold {size} tokens of {dimensions} dimensions",
                    file.len()
                )))
            }
        };
        let vocabulary: Vec<String> = std::str::from_utf8(&file[HEADER_BYTES + 4..vocabulary_end])
            .map_err(|e| bad(format!("vocabulary is not UTF-8: {e}")))?
            .lines()
            .map(str::to_string)
            .collect();
        if vocabulary.len() != size {
            return Err(bad(format!(
                "{} tokens in the vocabulary, the header says {size}",
                vocabulary.len()
            )));
        }
        let scales: Vec<f32> = file[vocabulary_end..scales_end]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if scales.iter().any(|s| !s.is_finite()) {
            return Err(bad("a scale is not a finite number".into()));
        }
        let table = bytemuck::cast_slice(&file[scales_end..]).to_vec();
        StaticEncoder::assemble(vocabulary, dimensions, scales, table, digest)
    }

    fn assemble(
        vocabulary: Vec<String>,
        dimensions: usize,
        scales: Vec<f32>,
        table: Vec<i8>,
        digest: [u8; 32],
    ) -> Result<StaticEncoder, EmbedError> {
        let tokenizer = bert_tokenizer(vocabulary)?;
        let short: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let id = format!("static/{}/{dimensions}/{short}", crate::core::semantic::ENCODER_ID);
        Ok(StaticEncoder { id, digest, tokenizer, dimensions, scales, table })
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Token ids of `text`, without `[CLS]` and `[SEP]` (they carry no vector).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        first_token_ids(text, MAX_TOKENS - 2, |part| {
            let encoding =
                self.tokenizer.encode(part, false).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
            Ok(encoding.get_ids().to_vec())
        })
    }

    /// The L2-normalised mean of the tokens' vectors (all zeros for a text with no word piece).
    pub fn embed_ids(&self, ids: &[u32]) -> Vec<f32> {
        let mut sum = vec![0f32; self.dimensions];
        for &id in ids {
            let Some(&scale) = self.scales.get(id as usize) else { continue };
            let row = &self.table[id as usize * self.dimensions..][..self.dimensions];
            sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f32 * scale);
        }
        normalize(&mut sum);
        sum
    }
}

/// Level 2 reads the student through the same trait as MiniLM.
impl crate::core::semantic::Encode for StaticEncoder {
    fn id(&self) -> &str {
        &self.id
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn token_ids(&self, text: &str) -> Result<Vec<u32>, String> {
        StaticEncoder::token_ids(self, text).map_err(|e| e.to_string())
    }

    fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>, String> {
        Ok(StaticEncoder::embed_ids(self, ids))
    }
}

/// MiniLM's tokenizer as its `tokenizer.json` sets it up (uncased BERT: clean, split CJK,
/// lowercase and strip accents; split on whitespace and punctuation; WordPiece with `##`), over
/// `vocabulary`, truncated as MiniLM's input is: [`MAX_TOKENS`] with `[CLS]` and `[SEP]`, which
/// the student does not add.
fn bert_tokenizer(vocabulary: Vec<String>) -> Result<Tokenizer, EmbedError> {
    let err = |e: tokenizers::Error| EmbedError::Tokenizer(e.to_string());
    let special: Vec<AddedToken> = SPECIAL_TOKENS
        .iter()
        .filter(|t| vocabulary.iter().any(|v| v == *t))
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut ids = ahash::AHashMap::with_capacity(vocabulary.len());
    ids.extend(vocabulary.into_iter().enumerate().map(|(id, token)| (token, id as u32)));
    let model = WordPiece::builder()
        .vocab(ids)
        .unk_token("[UNK]".into())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(err)?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, true)));
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.add_special_tokens(&special);
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS - 2, ..Default::default() }))
        .map_err(err)?;
    Ok(tokenizer)
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Building the table: native only (it runs the teacher and PCA).
#[cfg(not(target_arch = "wasm32"))]
mod build {
    use super::*;
    use crate::embed::{load_tokenizer, Encoder};
    use sha2::{Digest, Sha256};

    /// Texts the student's tokenizer must split as `tokenizer.json` does: accents, case, CJK,
    /// punctuation, contractions, special tokens written in the text, a word too long to split.
    const SAME_TOKENS: [&str; 6] = [
        "How do I write a SQL join across three tables?",
        "Crème brûlée, NAÏVE café — façade; 東京タワー and 北京!",
        "don't [SEP] stop [CLS]x [MASK] e-mail user@example.com $3.50 (50%)",
        "fn main() { println!(\"{}\", x?.unwrap_or_default()); } // ⚡️ emoji 🤖",
        "Supercalifragilisticexpialidocious-pneumonoultramicroscopicsilicovolcanoconiosis-antidisestablishmentarianism-floccinaucinihilipilification",
        "\tTabs\nand\r\nnewlines\u{200b}zero width\u{0}null",
    ];

    /// MiniLM's vocabulary: what is not a word piece (`[PAD]`, `[unusedN]`, `[CLS]`, `[SEP]`,
    /// `[MASK]`) gets a zero vector, so it adds nothing to a mean.
    fn is_word_piece(token: &str) -> bool {
        !(token.starts_with('[') && token.ends_with(']'))
    }

    impl StaticEncoder {
        /// A table just made: its digest is computed here, and written into its file.
        fn new(
            vocabulary: Vec<String>,
            dimensions: usize,
            scales: Vec<f32>,
            table: Vec<i8>,
        ) -> Result<StaticEncoder, EmbedError> {
            if let Some(token) = vocabulary.iter().find(|t| t.contains(['\n', '\r']) || t.is_empty()) {
                return Err(EmbedError::Tokenizer(format!("token {token:?} cannot be written one per line")));
            }
            let mut hash = Sha256::new();
            hash.update(vocabulary_bytes(&vocabulary));
            scales.iter().for_each(|s| hash.update(s.to_le_bytes()));
            hash.update(bytemuck::cast_slice::<i8, u8>(&table));
            StaticEncoder::assemble(vocabulary, dimensions, scales, table, hash.finalize().into())
        }

        /// Distils `teacher` into a table of `dimensions` per token: each word piece embedded alone,
        /// reduced by PCA, weighted by `ln(1 + id)`. `progress` is told each token done (the CLI's
        /// bar). Native only: it runs the teacher on each of the 29,523 word pieces (113 s on two cores, BENCHMARKS.md).
        pub fn distill(
            teacher: &Encoder,
            tokenizer_json: &[u8],
            dimensions: usize,
            progress: impl Fn() + Sync,
        ) -> Result<StaticEncoder, EmbedError> {
            let tokenizer = load_tokenizer(tokenizer_json)?;
            let pieces: Vec<u32> = (0..tokenizer.get_vocab_size(true) as u32)
                .filter(|&id| tokenizer.id_to_token(id).is_some_and(|t| is_word_piece(&t)))
                .collect();
            Self::distill_pieces(teacher, tokenizer_json, dimensions, &pieces, progress)
        }

        /// [`StaticEncoder::distill`] for the word pieces `pieces` only; every other token gets a
        /// zero vector (the tests' small tables).
        pub fn distill_pieces(
            teacher: &Encoder,
            tokenizer_json: &[u8],
            dimensions: usize,
            pieces: &[u32],
            progress: impl Fn() + Sync,
        ) -> Result<StaticEncoder, EmbedError> {
            let tokenizer = load_tokenizer(tokenizer_json)?;
            let vocabulary = tokenizer.get_vocab_size(true);
            check_pieces(vocabulary, dimensions, pieces)?;
            let special = |name: &str| {
                tokenizer.token_to_id(name).ok_or_else(|| EmbedError::Tokenizer(format!("no {name} token")))
            };
            let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
            let outputs = teach(teacher, pieces, cls, sep, &progress)?;
            Self::from_teacher_outputs(tokenizer_json, dimensions, pieces, &outputs)
        }

        /// The table from the teacher's embedding of each of `pieces` alone (`outputs[i]` is
        /// `pieces[i]`'s): PCA to `dimensions`, weighted by `ln(1 + id)`, int8. What
        /// [`StaticEncoder::distill`] does after running the teacher; the sweep
        /// (`examples/static_encoder_sweep.rs`) calls it on cached outputs.
        pub fn from_teacher_outputs(
            tokenizer_json: &[u8],
            dimensions: usize,
            pieces: &[u32],
            outputs: &[Vec<f32>],
        ) -> Result<StaticEncoder, EmbedError> {
            let reference = load_tokenizer(tokenizer_json)?;
            let vocabulary = vocabulary_by_id(&reference)?;
            if outputs.len() != pieces.len() {
                return Err(EmbedError::Model(format!(
                    "{} outputs for {} pieces",
                    outputs.len(),
                    pieces.len()
                )));
            }
            check_pieces(vocabulary.len(), dimensions, pieces)?;
            let basis = principal_components(outputs, dimensions);
            let mut rows = vec![vec![0f32; dimensions]; vocabulary.len()];
            for (&id, output) in pieces.iter().zip(outputs) {
                let weight = (1.0 + id as f64).ln();
                rows[id as usize] = basis.project(output).iter().map(|v| (v * weight) as f32).collect();
            }
            let (scales, table) = quantize(&rows);
            let student = StaticEncoder::new(vocabulary, dimensions, scales, table)?;
            check_same_tokens(&reference, &student)?;
            Ok(student)
        }
    }

    impl StaticEncoder {
        /// The file: header, vocabulary, scales, table.
        pub fn to_bytes(&self) -> Result<Vec<u8>, EmbedError> {
            let tokens = vocabulary_by_id(&self.tokenizer)?;
            let vocabulary = vocabulary_bytes(&tokens);
            let mut out = Vec::with_capacity(
                HEADER_BYTES + 4 + vocabulary.len() + self.scales.len() * 4 + self.table.len(),
            );
            out.extend_from_slice(MAGIC);
            for word in [VERSION, tokens.len() as u32, self.dimensions as u32] {
                out.extend_from_slice(&word.to_le_bytes());
            }
            out.extend_from_slice(&self.digest);
            out.extend_from_slice(&(vocabulary.len() as u32).to_le_bytes());
            out.extend_from_slice(&vocabulary);
            self.scales.iter().for_each(|s| out.extend_from_slice(&s.to_le_bytes()));
            out.extend_from_slice(bytemuck::cast_slice(&self.table));
            Ok(out)
        }

        /// Token `id`'s vector as f32 (zeros outside the vocabulary).
        pub(crate) fn row(&self, id: u32) -> Vec<f32> {
            let Some(&scale) = self.scales.get(id as usize) else { return vec![0.0; self.dimensions] };
            self.table[id as usize * self.dimensions..][..self.dimensions]
                .iter()
                .map(|&v| v as f32 * scale)
                .collect()
        }

        /// This table with the rows of `changed` (token id, new f32 vector) replaced: a new
        /// encoder, with its own digest and id.
        pub(crate) fn with_rows(&self, changed: &[(u32, Vec<f32>)]) -> Result<StaticEncoder, EmbedError> {
            let (mut scales, mut table) = (self.scales.clone(), self.table.clone());
            for (id, row) in changed {
                let (scale, quantized) = quantize(std::slice::from_ref(row));
                scales[*id as usize] = scale[0];
                table[*id as usize * self.dimensions..][..self.dimensions].copy_from_slice(&quantized);
            }
            StaticEncoder::new(vocabulary_by_id(&self.tokenizer)?, self.dimensions, scales, table)
        }
    }

    /// The vocabulary as the file holds it: a token a line.
    fn vocabulary_bytes(vocabulary: &[String]) -> Vec<u8> {
        vocabulary.iter().flat_map(|t| t.bytes().chain([b'\n'])).collect()
    }

    /// Every token of `tokenizer`, in id order (ids must run from 0 without a gap).
    fn vocabulary_by_id(tokenizer: &Tokenizer) -> Result<Vec<String>, EmbedError> {
        (0..tokenizer.get_vocab_size(true) as u32)
            .map(|id| {
                tokenizer
                    .id_to_token(id)
                    .ok_or_else(|| EmbedError::Tokenizer(format!("no token has id {id}")))
            })
            .collect()
    }

    /// The student rebuilds MiniLM's tokenizer from its vocabulary alone: refuse a
    /// `tokenizer.json` that it would not reproduce.
    fn check_same_tokens(reference: &Tokenizer, student: &StaticEncoder) -> Result<(), EmbedError> {
        for text in SAME_TOKENS {
            let expected = reference.encode(text, false).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
            if expected.get_ids() != student.token_ids(text)? {
                return Err(EmbedError::Tokenizer(format!(
                    "tokenizer.json is not uncased BERT WordPiece, the only kind the static student \
                     rebuilds: it splits {text:?} otherwise"
                )));
            }
        }
        Ok(())
    }

    /// `pieces` are tokens of the vocabulary, enough for `dimensions` principal axes.
    fn check_pieces(vocabulary: usize, dimensions: usize, pieces: &[u32]) -> Result<(), EmbedError> {
        let most = crate::embed::DIMENSIONS.min(pieces.len());
        if dimensions == 0 || dimensions > most {
            return Err(EmbedError::Model(format!("dimensions must be 1 to {most}")));
        }
        match pieces.iter().find(|&&id| id as usize >= vocabulary) {
            Some(id) => Err(EmbedError::Model(format!("token {id} is not in the vocabulary"))),
            None => Ok(()),
        }
    }

    /// Each row as int8 with its own scale (its largest magnitude maps to 127).
    fn quantize(rows: &[Vec<f32>]) -> (Vec<f32>, Vec<i8>) {
        let mut scales = Vec::with_capacity(rows.len());
        let mut table = Vec::with_capacity(rows.len() * rows.first().map_or(0, Vec::len));
        for row in rows {
            let largest = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 0.0 };
            scales.push(scale);
            table.extend(row.iter().map(|v| {
                if scale > 0.0 {
                    (v / scale).round().clamp(-127.0, 127.0) as i8
                } else {
                    0
                }
            }));
        }
        (scales, table)
    }

    /// The teacher's embedding of each token alone, on every core.
    fn teach(
        teacher: &Encoder,
        pieces: &[u32],
        cls: u32,
        sep: u32,
        progress: &(impl Fn() + Sync),
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = pieces.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = pieces
                .chunks(chunk)
                .map(|ids| {
                    scope.spawn(move || {
                        ids.iter()
                            .map(|&id| {
                                let out = teacher.embed_ids(&[cls, id, sep]);
                                progress();
                                out
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(pieces.len());
            for worker in workers {
                let part =
                    worker.join().map_err(|_| EmbedError::Inference("a teaching thread panicked".into()))?;
                all.extend(part?);
            }
            Ok(all)
        })
    }

    /// The mean and the top principal axes of a set of vectors.
    struct Basis {
        mean: Vec<f64>,
        /// `dimensions` unit axes, the largest variance first.
        axes: Vec<Vec<f64>>,
    }

    impl Basis {
        fn project(&self, v: &[f32]) -> Vec<f64> {
            self.axes
                .iter()
                .map(|axis| {
                    axis.iter().zip(v.iter().zip(&self.mean)).map(|(a, (&x, m))| a * (x as f64 - m)).sum()
                })
                .collect()
        }
    }

    /// PCA by the eigenvectors of the covariance matrix (nalgebra's symmetric eigensolver).
    fn principal_components(vectors: &[Vec<f32>], dimensions: usize) -> Basis {
        let width = vectors.first().map_or(0, Vec::len);
        let count = vectors.len().max(1) as f64;
        let mut mean = vec![0f64; width];
        for v in vectors {
            mean.iter_mut().zip(v).for_each(|(m, &x)| *m += x as f64 / count);
        }
        let centred =
            nalgebra::DMatrix::<f64>::from_fn(vectors.len(), width, |r, c| vectors[r][c] as f64 - mean[c]);
        let covariance = centred.tr_mul(&centred);
        let eigen = covariance.symmetric_eigen();
        let mut order: Vec<usize> = (0..width).collect();
        order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
        let axes = order
            .iter()
            .take(dimensions)
            .map(|&k| eigen.eigenvectors.column(k).iter().copied().collect())
            .collect();
        Basis { mean, axes }
    }
}
