//! Does tuning the static student end to end beat the head on the distilled table? Five-fold
//! accuracy on tests/data/routing_rows.jsonl (ROWS to change) of a head over MiniLM, over the
//! distilled table, and over tables tuned with a few settings; each fold tunes on the other four.
use switchyard::core::classifier::{self, TrainOptions};
use switchyard::core::semantic::Encode;
use switchyard::embed::static_encoder::StaticEncoder;
use switchyard::embed::static_tuning::{tune, TuneOptions};

fn main() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let student =
        StaticEncoder::from_bytes(&std::fs::read(format!("{dir}/model/router.static")).unwrap()).unwrap();
    let path = std::env::var("ROWS").unwrap_or(format!("{dir}/tests/data/routing_rows.jsonl"));
    let rows: Vec<(String, String)> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["text"].as_str().unwrap().to_string(), v["label"].as_str().unwrap().to_string())
        })
        .collect();
    let mut routes: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    routes.sort();
    routes.dedup();
    let labels: Vec<usize> = rows.iter().map(|r| routes.iter().position(|x| *x == r.1).unwrap()).collect();
    let ids: Vec<Vec<u32>> = rows.iter().map(|r| student.token_ids(&r.0).unwrap()).collect();
    // 5 folds: row k of each label goes to fold k % 5.
    let mut seen = vec![0usize; routes.len()];
    let fold: Vec<usize> = labels
        .iter()
        .map(|&l| {
            seen[l] += 1;
            (seen[l] - 1) % 5
        })
        .collect();
    // The reference: the head on MiniLM's embeddings, same folds.
    let minilm = switchyard::embed::Encoder::from_bytes(
        &std::fs::read(format!("{dir}/model/tokenizer.json")).unwrap(),
        &std::fs::read(format!("{dir}/model/encoder.onnx")).unwrap(),
    )
    .unwrap();
    let reference: Vec<Vec<f32>> = rows.iter().map(|r| minilm.embed(&r.0).unwrap()).collect();
    let mut right = 0;
    for f in 0..5 {
        let train: Vec<usize> = (0..rows.len()).filter(|&i| fold[i] != f).collect();
        let x: Vec<Vec<f32>> = train.iter().map(|&i| reference[i].clone()).collect();
        let y: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
        let head = classifier::train(Encode::id(&minilm), &routes, &x, &y, TrainOptions::default());
        right += (0..rows.len())
            .filter(|&i| fold[i] == f && head.predict(&reference[i]).route == routes[labels[i]])
            .count();
    }
    println!("MiniLM head: 5-fold accuracy {:.3}", right as f64 / rows.len() as f64);
    let settings = [
        None,
        Some((300, 0.01, 1e-3)),
        Some((300, 0.03, 1e-4)),
        Some((300, 0.1, 1e-4)),
        Some((600, 0.03, 1e-4)),
    ];
    for setting in settings {
        let t = std::time::Instant::now();
        let mut right = 0;
        for f in 0..5 {
            let train: Vec<usize> = (0..rows.len()).filter(|&i| fold[i] != f).collect();
            let test: Vec<usize> = (0..rows.len()).filter(|&i| fold[i] == f).collect();
            let encoder = match setting {
                None => None,
                Some((steps, table_rate, anchor)) => {
                    let options = TuneOptions { steps, table_rate, anchor, ..TuneOptions::default() };
                    let tuning_rows: Vec<(Vec<u32>, usize)> =
                        train.iter().map(|&i| (ids[i].clone(), labels[i])).collect();
                    Some(tune(&student, &tuning_rows, routes.len(), options).unwrap())
                }
            };
            let encoder = encoder.as_ref().unwrap_or(&student);
            let embed = |i: usize| encoder.embed_ids(&ids[i]);
            let x: Vec<Vec<f32>> = train.iter().map(|&i| embed(i)).collect();
            let y: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
            let head = classifier::train(Encode::id(encoder), &routes, &x, &y, TrainOptions::default());
            right += test.iter().filter(|&&i| head.predict(&embed(i)).route == routes[labels[i]]).count();
        }
        println!(
            "{setting:?}: 5-fold accuracy {:.3} ({} rows, {:.1} s)",
            right as f64 / rows.len() as f64,
            rows.len(),
            t.elapsed().as_secs_f64()
        );
    }
}
