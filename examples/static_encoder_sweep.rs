//! A sweep over the static student's settings (`src/embed/static_encoder.rs`): PCA width,
//! token weighting and centring, each scored by the same simple router as MiniLM itself, so
//! the choice of defaults is measured, not guessed (BENCHMARKS.md, "A static student").
//!
//! The router: one centroid per label from `tests/data/routing_fit.jsonl` and
//! `tests/data/classifier_rows.jsonl` (120 rows), each held-out row of
//! `tests/data/routing_eval.jsonl` (30 rows) given the nearest centroid's label. The tables are
//! f32 here (the shipped file is int8). MiniLM's per-token outputs are cached in
//! `target/static_teacher.bin` (about two minutes to make on two cores).
//!
//! `cargo run --release --example static_encoder_sweep`
use std::collections::BTreeMap;
use switchyard::embed::static_encoder::StaticEncoder;
use switchyard::embed::{cosine, load_tokenizer, Encoder};

fn rows(path: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["text"].as_str().unwrap().to_string(), v["label"].as_str().unwrap().to_string())
        })
        .collect()
}

fn norm(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

fn accuracy(embed: &dyn Fn(&str) -> Vec<f32>, train: &[(String, String)], test: &[(String, String)]) -> f64 {
    let mut cents: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for (t, l) in train {
        let e = embed(t);
        let c = cents.entry(l.clone()).or_insert(vec![0.0; e.len()]);
        c.iter_mut().zip(&e).for_each(|(a, b)| *a += b);
    }
    let cents: Vec<(String, Vec<f32>)> = cents.into_iter().map(|(l, c)| (l, norm(c))).collect();
    let ok = test
        .iter()
        .filter(|(t, l)| {
            let e = embed(t);
            let best = cents.iter().max_by(|a, b| cosine(&e, &a.1).total_cmp(&cosine(&e, &b.1))).unwrap();
            &best.0 == l
        })
        .count();
    ok as f64 / test.len() as f64
}

/// The median time to tokenize and embed one of `texts`.
fn p50_ms(embed: &dyn Fn(&str) -> Vec<f32>, texts: &[(String, String)]) -> f64 {
    let mut times: Vec<f64> = texts
        .iter()
        .map(|(t, _)| {
            let started = std::time::Instant::now();
            std::hint::black_box(embed(t));
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let dir = "model";
    let tj = std::fs::read(format!("{dir}/tokenizer.json")).unwrap();
    let enc = Encoder::from_bytes(&tj, &std::fs::read(format!("{dir}/encoder.onnx")).unwrap()).unwrap();
    let tok = load_tokenizer(&tj).unwrap();
    let vocab = tok.get_vocab_size(true);
    let cache = "target/static_teacher.bin";
    let outputs: Vec<Vec<f32>> = if let Ok(b) = std::fs::read(cache) {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect::<Vec<_>>()
            .chunks(384)
            .map(|c| c.to_vec())
            .collect()
    } else {
        let out: Vec<Vec<f32>> = std::thread::scope(|s| {
            let h: Vec<_> = (0..2)
                .map(|k| {
                    let enc = &enc;
                    s.spawn(move || {
                        (0..vocab as u32)
                            .filter(|i| i % 2 == k)
                            .map(|i| (i, enc.embed_ids(&[101, i, 102]).unwrap()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut all: Vec<(u32, Vec<f32>)> = h.into_iter().flat_map(|h| h.join().unwrap()).collect();
            all.sort_by_key(|p| p.0);
            all.into_iter().map(|p| p.1).collect()
        });
        let mut b = Vec::new();
        for v in &out {
            for x in v {
                b.extend_from_slice(&x.to_le_bytes());
            }
        }
        std::fs::write(cache, b).unwrap();
        out
    };
    let piece =
        |i: usize| tok.id_to_token(i as u32).is_some_and(|t| !(t.starts_with('[') && t.ends_with(']')));
    let train: Vec<_> = rows("tests/data/routing_fit.jsonl")
        .into_iter()
        .chain(rows("tests/data/classifier_rows.jsonl"))
        .collect();
    let test = rows("tests/data/routing_eval.jsonl");
    // The shipped default, built by the library itself (int8), so what is measured is what
    // `switchyard distill-encoder` writes.
    let pieces: Vec<u32> = (0..vocab as u32).filter(|&i| piece(i as usize)).collect();
    let piece_outputs: Vec<Vec<f32>> = pieces.iter().map(|&i| outputs[i as usize].clone()).collect();
    let shipped = StaticEncoder::from_teacher_outputs(&tj, 128, &pieces, &piece_outputs).unwrap();
    let shipped_embed = |t: &str| shipped.embed_ids(&shipped.token_ids(t).unwrap());
    println!(
        "shipped default (128 dims, ln weights, centred, int8): accuracy {:.3}, p50 {:.4} ms per text",
        accuracy(&shipped_embed, &train, &test),
        p50_ms(&shipped_embed, &test)
    );
    let teacher = |t: &str| enc.embed(t).unwrap();
    println!(
        "MiniLM: accuracy {:.3}, p50 {:.3} ms per text",
        accuracy(&teacher, &train, &test),
        p50_ms(&teacher, &test)
    );
    // PCA
    let ids: Vec<usize> = (0..vocab).filter(|&i| piece(i)).collect();
    let n = ids.len();
    let mut mean = vec![0f64; 384];
    for &i in &ids {
        for (m, x) in mean.iter_mut().zip(&outputs[i]) {
            *m += *x as f64 / n as f64;
        }
    }
    let x = nalgebra::DMatrix::<f64>::from_fn(n, 384, |r, c| outputs[ids[r]][c] as f64 - mean[c]);
    let eig = x.tr_mul(&x).symmetric_eigen();
    let mut order: Vec<usize> = (0..384).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    for dims in [64, 128, 256, 384] {
        for weighting in ["none", "ln", "sqrt-ln"] {
            for center in [true, false] {
                let mut table = vec![vec![0f32; dims]; vocab];
                for &i in &ids {
                    let w = match weighting {
                        "none" => 1.0,
                        "ln" => (1.0 + i as f64).ln(),
                        _ => (1.0 + i as f64).ln().sqrt(),
                    };
                    table[i] = order[..dims]
                        .iter()
                        .map(|&k| {
                            let a = eig.eigenvectors.column(k);
                            a.iter()
                                .zip(outputs[i].iter().zip(&mean))
                                .map(|(a, (&x, m))| a * (x as f64 - if center { *m } else { 0.0 }))
                                .sum::<f64>()
                                * w
                        })
                        .map(|v| v as f32)
                        .collect();
                }
                let student = |t: &str| {
                    let ids = tok.encode(t, false).unwrap().get_ids().to_vec();
                    let mut s = vec![0f32; dims];
                    for i in ids {
                        s.iter_mut().zip(&table[i as usize]).for_each(|(a, b)| *a += b);
                    }
                    norm(s)
                };
                println!(
                    "dims {dims} weight {weighting} center {center}: accuracy {:.3}, p50 {:.4} ms per text",
                    accuracy(&student, &train, &test),
                    p50_ms(&student, &test)
                );
            }
        }
    }
}
