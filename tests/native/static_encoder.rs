//! The static student of MiniLM (`src/embed/static_encoder.rs`): a table distilled from the
//! encoder ranks texts by meaning as MiniLM does, survives its file, and is refused beside
//! another tokenizer or when damaged. The tests distil only the tokens of their texts; the full
//! table is `switchyard distill-encoder`'s (BENCHMARKS.md).

use crate::embedding::encoder;
use switchyard::core::semantic::Encode;
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
    let bytes = student.to_bytes().unwrap();
    let loaded = StaticEncoder::from_bytes(&bytes).unwrap();
    assert_eq!(Encode::id(&loaded), Encode::id(&student));
    for text in TEXTS {
        let ids = student.token_ids(text).unwrap();
        assert_eq!(loaded.token_ids(text).unwrap(), ids);
        assert_eq!(student.embed_ids(&ids), loaded.embed_ids(&ids));
    }
    let refused = StaticEncoder::from_bytes(&bytes[..bytes.len() - 1]).err().unwrap().to_string();
    assert!(refused.contains("bytes do not hold"), "{refused}");
    // A damaged size (here the vocabulary's length, near 4 GB) is an error, not an overflow.
    let mut damaged = bytes.clone();
    damaged[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
    let refused = StaticEncoder::from_bytes(&damaged).err().unwrap().to_string();
    assert!(refused.contains("bytes do not hold"), "{refused}");
    let mut old = bytes.clone();
    old[8] = 1;
    let refused = StaticEncoder::from_bytes(&old).err().unwrap().to_string();
    assert!(refused.contains("format version 1") && refused.contains("distill-encoder"), "{refused}");
    let refused = StaticEncoder::from_bytes(b"ONNX....").err().unwrap().to_string();
    assert!(refused.contains("not a static encoder file"), "{refused}");
}

/// The student carries its vocabulary and rebuilds MiniLM's tokenizer from it: on every text of
/// the token sample it splits as `tokenizer.json` does. A tokenizer it would not rebuild (here,
/// one that keeps case) is refused when distilling.
#[test]
fn the_student_tokenizes_as_tokenizer_json_and_refuses_another_kind() {
    let student = student();
    let reference = switchyard::embed::load_tokenizer(&tokenizer_json()).unwrap();
    let sample =
        std::fs::read_to_string(format!("{}/tests/data/token_sample.jsonl", env!("CARGO_MANIFEST_DIR")))
            .unwrap();
    for line in sample.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = row["text"].as_str().unwrap();
        assert_eq!(
            student.token_ids(text).unwrap(),
            reference.encode(text, false).unwrap().get_ids(),
            "{text}"
        );
    }
    let cased =
        String::from_utf8(tokenizer_json()).unwrap().replace("\"lowercase\": true", "\"lowercase\": false");
    assert_ne!(cased.as_bytes(), tokenizer_json());
    let refused =
        StaticEncoder::distill_pieces(encoder(), cased.as_bytes(), 4, &[2000, 2001, 2002, 2003, 2004], || {})
            .err()
            .unwrap()
            .to_string();
    assert!(refused.contains("not uncased BERT WordPiece"), "{refused}");
}

#[test]
fn a_text_of_unknown_or_special_tokens_embeds_to_zeros_not_a_panic() {
    let student = student();
    assert!(student.embed_ids(&[]).iter().all(|&x| x == 0.0));
    assert!(student.embed_ids(&[0, 101, 102, 999_999]).iter().all(|&x| x == 0.0));
}

/// Tuning end to end moves the vectors of the tokens the rows use, so that a head separates the
/// rows better than on the distilled table, and it is deterministic: the same rows give the same
/// file.
#[test]
fn tuning_fits_the_rows_and_gives_the_same_table_twice() {
    use switchyard::embed::static_tuning::{tune, TuneOptions};
    let student = student();
    // Code, poems, everything else.
    let labels = [0, 0, 1, 1, 2, 0];
    let rows: Vec<(Vec<u32>, usize)> =
        TEXTS.iter().zip(labels).map(|(t, l)| (student.token_ids(t).unwrap(), l)).collect();
    let tuned = tune(&student, &rows, 3, TuneOptions::default()).unwrap();
    assert_eq!(
        tuned.to_bytes().unwrap(),
        tune(&student, &rows, 3, TuneOptions::default()).unwrap().to_bytes().unwrap()
    );
    assert_ne!(Encode::id(&tuned), Encode::id(&student));
    // Rows of one route come closer together than rows of different routes.
    let margin = |encoder: &StaticEncoder| {
        let embed = |i: usize| encoder.embed_ids(&encoder.token_ids(TEXTS[i]).unwrap());
        cosine(&embed(0), &embed(1)) - cosine(&embed(0), &embed(2))
    };
    assert!(margin(&tuned) > margin(&student), "{} vs {}", margin(&tuned), margin(&student));
}
