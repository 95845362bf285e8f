//! The in-process encoder against an independent fp32 implementation
//! (`../shared/golden/minilm-l6-v2.jsonl`: token ids and sentence-transformers embeddings; a copy
//! is kept in tests/data for checkouts without `shared/` beside them).

use std::sync::OnceLock;
use switchyard::embed::{cosine, Encoder, DIMENSIONS};

pub fn encoder() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        let model =
            |name: &str| std::fs::read(format!("{}/model/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        Encoder::from_bytes(&model("tokenizer.json"), &model("encoder.onnx")).unwrap()
    })
}

struct Golden {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn golden() -> Vec<Golden> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/golden/minilm-l6-v2.jsonl");
    let text = std::fs::read_to_string(path)
        .or_else(|_| {
            std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/minilm-l6-v2.golden.jsonl"
            ))
        })
        .expect("golden embeddings");
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let mut embedding: Vec<f32> =
                v["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
            let norm = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
            embedding.iter_mut().for_each(|x| *x /= norm);
            Golden {
                text: v["text"].as_str().unwrap().to_string(),
                ids: v["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect(),
                embedding,
            }
        })
        .collect()
}

#[test]
fn every_matmul_runs_on_int8_weights() {
    // 6 layers × (qkv, attention output, ffn in, ffn out).
    assert_eq!(encoder().int8_matmuls, 24);
}

#[test]
fn token_ids_match_the_reference_tokenizer() {
    for row in golden() {
        assert_eq!(encoder().token_ids(&row.text).unwrap(), row.ids, "{:?}", row.text);
    }
}

#[test]
fn embeddings_match_fp32_sentence_transformers() {
    let rows = golden();
    let mut cosines = Vec::new();
    for row in &rows {
        let embedding = encoder().embed(&row.text).unwrap();
        assert_eq!(embedding.len(), DIMENSIONS);
        cosines.push(cosine(&embedding, &row.embedding));
    }
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    let min = cosines.iter().cloned().fold(f32::MAX, f32::min);
    eprintln!("parity over {} texts: mean cosine {mean:.5}, min {min:.5}", rows.len());
    assert!(mean >= 0.999, "mean cosine {mean}");
    assert!(min >= 0.995, "min cosine {min}");
}

#[test]
fn long_texts_are_truncated_to_256_tokens() {
    let ids = encoder().token_ids(&"word ".repeat(1000)).unwrap();
    assert_eq!(ids.len(), 256);
    assert_eq!(ids.last(), Some(&102)); // [SEP] is kept
    assert!(encoder().embed(&"word ".repeat(1000)).is_ok());
}

#[test]
fn empty_text_still_embeds() {
    let embedding = encoder().embed("").unwrap();
    let norm: f32 = embedding.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4);
}

/// The encoder tokenizes only as much of a long text as fills its 256-token window, and gets the
/// ids the whole text would give, for every kind of text in the token sample (prose, code, JSON,
/// URLs, CJK, Cyrillic, numbers, long words, whitespace).
#[test]
fn a_long_text_gives_the_ids_of_the_whole_though_only_its_start_is_read() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/model/tokenizer.json");
    let whole = switchyard::embed::load_tokenizer(&std::fs::read(dir).unwrap()).unwrap();
    let sample =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/token_sample.jsonl"))
            .unwrap();
    for line in sample.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        let long = format!("{text}\n").repeat(100_000 / text.len() + 1);
        let expected = whole.encode(long.as_str(), true).unwrap().get_ids().to_vec();
        assert_eq!(encoder().token_ids(&long).unwrap(), expected, "{}", row["kind"]);
        let read = std::cell::Cell::new(0);
        let ids = switchyard::embed::first_token_ids(&long, 256, |part| {
            read.set(read.get() + part.len());
            Ok::<_, ()>(whole.encode(part, true).unwrap().get_ids().to_vec())
        });
        assert_eq!(ids.unwrap().len(), 256);
        assert!(read.get() < long.len() / 10, "{}: read {} of {} bytes", row["kind"], read.get(), long.len());
    }
}

/// Characters the tokenizer drops (zero-width spaces) give no ids however much is read: the
/// encoder stops reading at 16 times its window's estimate, not at the end of a 1 MB text.
#[test]
fn a_text_with_nothing_to_tokenize_is_not_read_to_its_end() {
    let text = "\u{200B}".repeat(350_000);
    let read = std::cell::Cell::new(0);
    let ids = switchyard::embed::first_token_ids(&text, 256, |part| {
        read.set(read.get() + part.len());
        Ok::<_, ()>(Vec::new())
    });
    assert!(ids.unwrap().is_empty());
    assert!(read.get() < 1_000_000, "read {} of {} bytes", read.get(), text.len());
}
