//! The static student of MiniLM (`src/embed/static_encoder.rs`): a table distilled from the
//! encoder ranks texts by meaning as MiniLM does, survives its file, and is refused beside
//! another tokenizer or when damaged. The tests distil only the tokens of their texts; the full
//! table is `switchyard distill-encoder`'s (BENCHMARKS.md).

use crate::embedding::encoder;
use switchyard::embed::cosine;
use switchyard::embed::static_encoder::StaticEncoder;

const TEXTS: [&str; 6] = [
    "How do I reverse a list in Python?",
    "python function to reverse an array",
    "Write a poem about the sea at night",
    "a short poem on the ocean under the moon",
    "What is the capital of France?",
    "Fix this segfault in my C code",
];

fn tokenizer_json() -> Vec<u8> {
    std::fs::read(format!("{}/model/tokenizer.json", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A student that knows the word pieces of `TEXTS` and nothing else.
fn student() -> StaticEncoder {
    let mut pieces: Vec<u32> = TEXTS.iter().flat_map(|t| encoder().token_ids(t).unwrap()).collect();
    pieces.retain(|&id| id != 101 && id != 102); // [CLS], [SEP]
    pieces.sort_unstable();
    pieces.dedup();
    StaticEncoder::distill_pieces(encoder(), &tokenizer_json(), 16, &pieces, || {}).unwrap()
}

fn similarity(student: &StaticEncoder, a: usize, b: usize) -> f32 {
    let embed = |t: &str| student.embed_ids(&student.token_ids(t).unwrap());
    cosine(&embed(TEXTS[a]), &embed(TEXTS[b]))
}

#[test]
fn a_paraphrase_is_nearer_than_another_topic() {
    let student = student();
    assert!(similarity(&student, 0, 1) > similarity(&student, 0, 2), "code ~ code");
    assert!(similarity(&student, 2, 3) > similarity(&student, 2, 4), "poem ~ poem");
    let v = student.embed_ids(&student.token_ids(TEXTS[0]).unwrap());
    assert_eq!(v.len(), 16);
    assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4, "embeddings are unit vectors");
}

#[test]
fn the_file_gives_back_the_same_encoder_and_refuses_what_does_not_fit() {
    let student = student();
    let json = tokenizer_json();
    let bytes = student.to_bytes(&json);
    let loaded = StaticEncoder::from_bytes(&json, &bytes).unwrap();
    for text in TEXTS {
        let ids = student.token_ids(text).unwrap();
        assert_eq!(student.embed_ids(&ids), loaded.embed_ids(&ids));
    }
    let mut other_tokenizer = json.clone();
    other_tokenizer.push(b'\n');
    let refused = StaticEncoder::from_bytes(&other_tokenizer, &bytes).err().unwrap().to_string();
    assert!(refused.contains("another tokenizer.json"), "{refused}");
    let refused = StaticEncoder::from_bytes(&json, &bytes[..bytes.len() - 1]).err().unwrap().to_string();
    assert!(refused.contains("bytes, expected"), "{refused}");
    let refused = StaticEncoder::from_bytes(&json, b"ONNX....").err().unwrap().to_string();
    assert!(refused.contains("not a static encoder file"), "{refused}");
}

#[test]
fn a_text_of_unknown_or_special_tokens_embeds_to_zeros_not_a_panic() {
    let student = student();
    assert!(student.embed_ids(&[]).iter().all(|&x| x == 0.0));
    assert!(student.embed_ids(&[0, 101, 102, 999_999]).iter().all(|&x| x == 0.0));
}
