//! Level 3 (trained router): a classifier head over the MiniLM embedding level 2 already makes.
//!
//! A multinomial logistic regression: one weight row per route, softmax over the routes, its
//! logits divided by a temperature fitted afterwards on rows the weights never saw, so that a
//! confidence of 0.8 is right about 80% of the time (that is what `min_confidence` compares
//! with). Rows labelled with the default route teach "none of these". It is small (routes × 384
//! floats), trains natively in seconds on the frozen embeddings, and costs one matrix-vector
//! product per request.
//!
//! Training is plain full-batch gradient descent (Adam) on the class-balanced cross-entropy with
//! an L2 penalty: convex, deterministic, and needing no crate with autograd. The artifact records
//! the encoder it was trained on and its routes, so one trained for another encoder or other
//! routes is refused at load instead of routing by accident.

use crate::core::semantic::Encode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A trained head: what `switchyard train` writes and the router loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierHead {
    /// The encoder whose embeddings it was trained on ([`Encode::id`]).
    pub encoder: String,
    /// The classes, in weight-row order: route names (the default route among them).
    pub routes: Vec<String>,
    pub dimensions: usize,
    /// `routes.len() × dimensions`, row-major.
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
    /// Logits are divided by this before the softmax (fitted by [`calibrate`]).
    pub temperature: f32,
}

/// The head's answer for one embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub route: String,
    /// The calibrated probability of `route`.
    pub confidence: f32,
}

/// Why a head cannot be used with this config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadError(pub String);

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "classifier artifact refused: {}", self.0)
    }
}

impl std::error::Error for HeadError {}

impl ClassifierHead {
    /// Reads an artifact and checks it fits: `encoder`, well-formed weights, and every class a
    /// route of `routes` (the config's route names).
    pub fn from_json(text: &str, routes: &[&str], encoder: &dyn Encode) -> Result<ClassifierHead, HeadError> {
        let head: ClassifierHead =
            serde_json::from_str(text).map_err(|e| HeadError(format!("not a classifier artifact: {e}")))?;
        if head.encoder != encoder.id() {
            return Err(HeadError(format!(
                "it was trained on encoder {:?}, the router runs {:?}; train it again",
                head.encoder,
                encoder.id()
            )));
        }
        let classes = head.routes.len();
        let shaped = head.dimensions == encoder.dimensions()
            && head.weights.len() == classes * head.dimensions
            && head.bias.len() == classes;
        let finite = head.weights.iter().chain(&head.bias).all(|v| v.is_finite());
        if classes < 2 || !shaped || !finite {
            return Err(HeadError(
                "its weights are not finite numbers matching its routes and dimensions".into(),
            ));
        }
        if !(head.temperature > 0.0 && head.temperature.is_finite()) {
            return Err(HeadError("its temperature is not a positive number".into()));
        }
        if let Some(unknown) = head.routes.iter().find(|r| !routes.contains(&r.as_str())) {
            return Err(HeadError(format!(
                "it was trained for route {unknown:?}, which the config does not have; train it again"
            )));
        }
        Ok(head)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The most probable route for `embedding` (of [`ClassifierHead::dimensions`] values), and
    /// its calibrated probability.
    pub fn predict(&self, embedding: &[f32]) -> Prediction {
        let probabilities = softmax(&self.logits(embedding), self.temperature);
        let best = argmax(&probabilities);
        Prediction { route: self.routes[best].clone(), confidence: probabilities[best] }
    }

    fn logits(&self, x: &[f32]) -> Vec<f32> {
        logits(&self.weights, &self.bias, self.dimensions, x)
    }
}

/// `W·x + b`, one logit per class (`weights` holds a row of `dimensions` per class).
pub(crate) fn logits(weights: &[f32], bias: &[f32], dimensions: usize, x: &[f32]) -> Vec<f32> {
    weights
        .chunks_exact(dimensions)
        .zip(bias)
        .map(|(w, b)| b + w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>())
        .collect()
}

/// Each row's weight in a class-balanced loss (every class weighs the same whatever its number
/// of rows), and their sum.
pub(crate) fn class_balance(labels: &[usize], classes: usize) -> (Vec<f32>, f32) {
    let mut counts = vec![0usize; classes];
    for &l in labels {
        counts[l] += 1;
    }
    let weights: Vec<f32> =
        labels.iter().map(|&l| labels.len() as f32 / (classes.max(1) * counts[l].max(1)) as f32).collect();
    let total = weights.iter().sum::<f32>().max(f32::MIN_POSITIVE);
    (weights, total)
}

/// How to train.
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    /// Full-batch gradient steps.
    pub steps: usize,
    pub learning_rate: f32,
    /// L2 penalty on the weights (not the biases).
    pub l2: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { steps: 400, learning_rate: 0.05, l2: 1e-4 }
    }
}

/// Trains a head on `embeddings` (each `dimensions` long, made by the encoder `encoder_id`)
/// labelled `labels[i]` (indices into `routes`). Each class weighs the same in the loss whatever
/// its number of rows.
pub fn train(
    encoder_id: &str,
    routes: &[String],
    embeddings: &[Vec<f32>],
    labels: &[usize],
    options: TrainOptions,
) -> ClassifierHead {
    let (classes, dims) = (routes.len(), embeddings.first().map_or(0, Vec::len));
    let (row_weight, total) = class_balance(labels, classes);
    let mut head = ClassifierHead {
        encoder: encoder_id.to_string(),
        routes: routes.to_vec(),
        dimensions: dims,
        weights: vec![0.0; classes * dims],
        bias: vec![0.0; classes],
        temperature: 1.0,
    };
    let mut adam_w = Adam::new(head.weights.len());
    let mut adam_b = Adam::new(classes);
    for step in 1..=options.steps {
        let mut grad_w = vec![0f32; head.weights.len()];
        let mut grad_b = vec![0f32; classes];
        for ((x, &label), weight) in embeddings.iter().zip(labels).zip(&row_weight) {
            let p = softmax(&head.logits(x), 1.0);
            for c in 0..classes {
                let error = weight * (p[c] - f32::from(u8::from(c == label))) / total;
                grad_b[c] += error;
                for (g, xi) in grad_w[c * dims..(c + 1) * dims].iter_mut().zip(x) {
                    *g += error * xi;
                }
            }
        }
        for (g, w) in grad_w.iter_mut().zip(&head.weights) {
            *g += options.l2 * w;
        }
        adam_w.step(&mut head.weights, &grad_w, options.learning_rate, step);
        adam_b.step(&mut head.bias, &grad_b, options.learning_rate, step);
    }
    head
}

/// Fits the temperature that minimises the negative log-likelihood of `labels` on rows the
/// weights were not trained on (a golden-section search over log T in [1/20, 20]).
pub fn calibrate(head: &mut ClassifierHead, embeddings: &[Vec<f32>], labels: &[usize]) {
    if embeddings.is_empty() {
        return;
    }
    let logits: Vec<Vec<f32>> = embeddings.iter().map(|x| head.logits(x)).collect();
    let nll = |log_t: f64| -> f64 {
        let t = log_t.exp() as f32;
        logits.iter().zip(labels).map(|(z, &l)| -f64::from(softmax(z, t)[l].max(1e-12)).ln()).sum()
    };
    let (mut lo, mut hi) = ((1.0f64 / 20.0).ln(), 20f64.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (a, b) = (hi - ratio * (hi - lo), lo + ratio * (hi - lo));
        if nll(a) < nll(b) {
            hi = b;
        } else {
            lo = a;
        }
    }
    head.temperature = ((lo + hi) / 2.0).exp() as f32;
}

/// Expected calibration error over 10 equal-width confidence bins: how far, on average, the
/// stated confidence is from the share of those predictions that were right.
pub fn calibration_error(predictions: &[(f32, bool)]) -> f64 {
    let mut bins = [(0f64, 0f64); 10];
    for &(confidence, right) in predictions {
        let bin = ((confidence * 10.0) as usize).min(9);
        bins[bin].0 += f64::from(confidence);
        bins[bin].1 += f64::from(u8::from(right));
    }
    let n = predictions.len().max(1) as f64;
    // Σ over bins of (rows in bin / n) · |mean confidence − accuracy| = Σ |Σ confidence − Σ right| / n.
    bins.iter().map(|(confidence, right)| (confidence - right).abs() / n).sum()
}

/// Splits row indices into (training, held out), taking `share` of each label's rows, spread
/// through them, for the held-out part. Deterministic: the same labels give the same split.
pub fn stratified_split(labels: &[usize], share: f64) -> (Vec<usize>, Vec<usize>) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let mut totals: BTreeMap<usize, usize> = BTreeMap::new();
    for &l in labels {
        *totals.entry(l).or_default() += 1;
    }
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (i, &l) in labels.iter().enumerate() {
        let k = seen.entry(l).or_default();
        // Row k of this label goes out when the running held-out count would fall behind `share`.
        let before = (*k as f64 * share).floor();
        let after = ((*k + 1) as f64 * share).floor();
        *k += 1;
        if after > before && totals[&l] > 1 {
            held.push(i);
        } else {
            train.push(i);
        }
    }
    (train, held)
}

pub(crate) fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &z| m.max(z));
    let exps: Vec<f32> = logits.iter().map(|z| ((z - max) / temperature).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
}

/// Adam's moment estimates for one parameter vector.
pub(crate) struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    pub(crate) fn new(len: usize) -> Adam {
        Adam { m: vec![0.0; len], v: vec![0.0; len] }
    }

    pub(crate) fn step(&mut self, params: &mut [f32], grad: &[f32], rate: f32, t: usize) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        for ((p, g), (m, v)) in params.iter_mut().zip(grad).zip(self.m.iter_mut().zip(self.v.iter_mut())) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= rate * (*m / c1) / ((*v / c2).sqrt() + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An encoder of 16 dimensions, for the artifact's checks.
    struct Stub;
    const STUB: Stub = Stub;

    impl Encode for Stub {
        fn id(&self) -> &str {
            "stub-encoder/16"
        }
        fn dimensions(&self) -> usize {
            16
        }
        fn token_ids(&self, _: &str) -> Result<Vec<u32>, String> {
            Ok(Vec::new())
        }
        fn embed_ids(&self, _: &[u32]) -> Result<Vec<f32>, String> {
            Ok(vec![0.0; 16])
        }
    }

    /// Three classes around three directions, with noise: separable but not trivially.
    fn blobs(per_class: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut state = 7u64;
        let mut noise = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8
        };
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..per_class * 3 {
            let class = i % 3;
            let mut x: Vec<f32> = (0..8).map(|_| noise()).collect();
            x[class] += 1.0;
            xs.push(x);
            ys.push(class);
        }
        (xs, ys)
    }

    fn routes() -> Vec<String> {
        ["a", "b", "c"].map(String::from).to_vec()
    }

    #[test]
    fn learns_separable_classes_and_is_calibrated_on_unseen_rows() {
        let (xs, ys) = blobs(100);
        let (train_rows, held) = stratified_split(&ys, 0.3);
        let pick = |rows: &[usize]| -> (Vec<Vec<f32>>, Vec<usize>) {
            (rows.iter().map(|&i| xs[i].clone()).collect(), rows.iter().map(|&i| ys[i]).collect())
        };
        let (tx, ty) = pick(&train_rows);
        let (hx, hy) = pick(&held);
        let mut head = train(STUB.id(), &routes(), &tx, &ty, TrainOptions::default());
        calibrate(&mut head, &hx, &hy);
        let predictions: Vec<(f32, bool)> = hx
            .iter()
            .zip(&hy)
            .map(|(x, &y)| {
                let p = head.predict(x);
                (p.confidence, p.route == routes()[y])
            })
            .collect();
        let accuracy = predictions.iter().filter(|p| p.1).count() as f64 / predictions.len() as f64;
        assert!(accuracy >= 0.9, "accuracy {accuracy}");
        assert!(calibration_error(&predictions) < 0.1, "ECE {}", calibration_error(&predictions));
        let sum: f32 = softmax(&head.logits(&hx[0]), head.temperature).iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }

    #[test]
    fn the_split_holds_out_each_class_in_proportion() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i % 10 == 0)).collect();
        let (train_rows, held) = stratified_split(&labels, 0.2);
        assert_eq!(train_rows.len() + held.len(), 100);
        assert_eq!(held.iter().filter(|&&i| labels[i] == 1).count(), 2);
        assert_eq!(held.iter().filter(|&&i| labels[i] == 0).count(), 18);
        assert_eq!(stratified_split(&labels, 0.2), (train_rows, held));
    }

    #[test]
    fn a_head_for_another_encoder_or_other_routes_is_refused() {
        let (xs, ys) = blobs(10);
        let short =
            train(STUB.id(), &routes(), &xs, &ys, TrainOptions { steps: 5, ..TrainOptions::default() });
        let err = ClassifierHead::from_json(&short.to_json(), &["a", "b", "c"], &STUB).unwrap_err();
        assert!(err.to_string().contains("matching its routes and dimensions"), "{err}");
        let wide: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| x.iter().copied().chain(std::iter::repeat(0.0)).take(STUB.dimensions()).collect())
            .collect();
        let head =
            train(STUB.id(), &routes(), &wide, &ys, TrainOptions { steps: 5, ..TrainOptions::default() });
        let json = head.to_json();
        assert!(ClassifierHead::from_json(&json, &["a", "b", "c", "d"], &STUB).is_ok());
        let err = ClassifierHead::from_json(&json, &["a", "b"], &STUB).unwrap_err();
        assert!(err.to_string().contains("\"c\""), "{err}");
        let other = json.replace(STUB.id(), "another-encoder");
        assert!(ClassifierHead::from_json(&other, &["a", "b", "c"], &STUB)
            .unwrap_err()
            .to_string()
            .contains("encoder"));
        assert!(ClassifierHead::from_json("{}", &["a"], &STUB).is_err());
    }
}
