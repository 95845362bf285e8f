//! How well `core::conversation::judge` tells how a turn landed, on labelled turn pairs
//! (`tests/data/turn_pairs.jsonl`: the user's previous and latest message, labelled rephrased,
//! frustrated, thanked, new_topic or follow_up; split into `tune` and `held_out`), with each
//! routing encoder and with none (phrases and same-words only). The thresholds
//! (`rephrase_threshold`, `new_topic_threshold`, `frustration_threshold`) are swept on `tune`
//! only; the defaults and the best found are then scored on `held_out` (BENCHMARKS.md,
//! "Judging a turn").
//!
//! Reported per setting: accuracy over the five labels, and what escalation reads, unresolved
//! (rephrased or frustrated) against the rest: precision and recall.
//!
//! `cargo run --release --example conversation_judgement`
use switchyard::core::config::{Config, ConversationSettings};
use switchyard::core::conversation::{judge, Judgement, Measured};
use switchyard::core::request::ChatRequest;
use switchyard::core::semantic::{dot, Encode};
use switchyard::embed::static_encoder::StaticEncoder;
use switchyard::embed::Encoder;

const CONFIG: &str = r#"
[providers.p]
kind = "openai"
base_url = "http://localhost/v1"
[models.m]
provider = "p"
context_window = 1000
[[routes]]
name = "r"
models = ["m"]
[default]
route = "r"
[conversation]
escalate_to = "m"
"#;

struct Pair {
    request: ChatRequest,
    label: String,
    tune: bool,
    /// Similarities by the encoder under test.
    to_previous: f32,
    to_frustration: f32,
}

fn label(judgement: &Judgement) -> &'static str {
    match judgement {
        Judgement::Opening | Judgement::FollowUp { .. } => "follow_up",
        Judgement::Frustrated { .. } => "frustrated",
        Judgement::Thanked => "thanked",
        Judgement::Rephrased { .. } => "rephrased",
        Judgement::NewTopic { .. } => "new_topic",
        Judgement::BadFeedback => "bad_feedback",
    }
}

/// Accuracy, and unresolved precision and recall, of `settings` on `pairs` (similarities used
/// only when `measured`).
fn score(settings: &ConversationSettings, pairs: &[&Pair], measured: bool) -> (f64, f64, f64) {
    let unresolved = |l: &str| l == "rephrased" || l == "frustrated";
    let (mut right, mut tp, mut fp, mut fn_) = (0, 0, 0, 0);
    for pair in pairs {
        let m = if measured {
            Measured { to_previous: Some(pair.to_previous), to_frustration: Some(pair.to_frustration) }
        } else {
            Measured::default()
        };
        let (latest, previous) = pair.request.last_two_user_windows();
        let got = label(&judge(settings, (latest.as_deref(), previous.as_deref()), m));
        right += usize::from(got == pair.label);
        match (unresolved(got), unresolved(&pair.label)) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            _ => {}
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    (ratio(right, pairs.len()), ratio(tp, tp + fp), ratio(tp, tp + fn_))
}

fn measure(encoder: &dyn Encode, settings: &ConversationSettings, pairs: &mut [Pair]) {
    let exemplars: Vec<Vec<f32>> =
        settings.frustration_exemplars.iter().map(|e| encoder.embed(e).unwrap()).collect();
    for pair in pairs {
        let texts = pair.request.last_two_user_texts();
        let (latest, previous) = (texts.0.unwrap(), texts.1.unwrap());
        let (l, p) = (encoder.embed(latest).unwrap(), encoder.embed(previous).unwrap());
        pair.to_previous = dot(&l, &p);
        pair.to_frustration = exemplars.iter().map(|e| dot(e, &l)).fold(f32::MIN, f32::max);
    }
}

fn report(name: &str, defaults: &ConversationSettings, pairs: &[Pair], measured: bool) {
    let tune: Vec<&Pair> = pairs.iter().filter(|p| p.tune).collect();
    let held: Vec<&Pair> = pairs.iter().filter(|p| !p.tune).collect();
    let show =
        |(a, p, r): (f64, f64, f64)| format!("accuracy {a:.3}, unresolved precision {p:.3} recall {r:.3}");
    println!(
        "{name}, defaults: tune {} | held_out {}",
        show(score(defaults, &tune, measured)),
        show(score(defaults, &held, measured))
    );
    if !measured {
        return;
    }
    let mut best = (f64::MIN, defaults.clone());
    for rephrase in (12..=19).map(|i| i as f32 * 0.05) {
        for new_topic in (0..=8).map(|i| i as f32 * 0.05) {
            for frustration in (10..=18).map(|i| i as f32 * 0.05) {
                if new_topic >= rephrase {
                    continue;
                }
                let mut s = defaults.clone();
                (s.rephrase_threshold, s.new_topic_threshold, s.frustration_threshold) =
                    (rephrase, new_topic, frustration);
                let accuracy = score(&s, &tune, true).0;
                if accuracy > best.0 {
                    best = (accuracy, s);
                }
            }
        }
    }
    let s = &best.1;
    let recall: Vec<String> = ["rephrased", "frustrated", "thanked", "new_topic", "follow_up"]
        .iter()
        .map(|l| {
            let of: Vec<&Pair> = held.iter().copied().filter(|p| p.label == *l).collect();
            format!("{l} {:.2}", score(s, &of, true).0)
        })
        .collect();
    println!(
        "{name}, tuned on tune (rephrase {:.2}, new_topic {:.2}, frustration {:.2}): tune {} | held_out {}",
        s.rephrase_threshold,
        s.new_topic_threshold,
        s.frustration_threshold,
        show(score(s, &tune, true)),
        show(score(s, &held, true))
    );
    println!("{name}, tuned, held_out recall by label: {}", recall.join(", "));
}

fn main() {
    let defaults = Config::parse("defaults.toml", CONFIG).unwrap().conversation.unwrap();
    let text = std::fs::read_to_string("tests/data/turn_pairs.jsonl").unwrap();
    let mut pairs: Vec<Pair> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let request = ChatRequest::from_value(serde_json::json!({"messages": [
                {"role": "user", "content": v["previous"]},
                {"role": "assistant", "content": "(the answer)"},
                {"role": "user", "content": v["latest"]},
            ]}))
            .unwrap();
            Pair {
                request,
                label: v["label"].as_str().unwrap().to_string(),
                tune: v["split"] == "tune",
                to_previous: 0.0,
                to_frustration: 0.0,
            }
        })
        .collect();
    println!("{} pairs ({} tune)", pairs.len(), pairs.iter().filter(|p| p.tune).count());
    report("no encoder (phrases, same words)", &defaults, &pairs, false);

    let tokenizer = std::fs::read("model/tokenizer.json").unwrap();
    let minilm = Encoder::from_bytes(&tokenizer, &std::fs::read("model/encoder.onnx").unwrap()).unwrap();
    measure(&minilm, &defaults, &mut pairs);
    report("all-MiniLM-L6-v2", &defaults, &pairs, true);

    let student = StaticEncoder::from_bytes(&std::fs::read("model/router.static").unwrap()).unwrap();
    measure(&student, &defaults, &mut pairs);
    report("router.static", &defaults, &pairs, true);
}
