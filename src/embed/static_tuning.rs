//! Fine-tuning the static student on labelled rows, end to end: the head and the vectors of the
//! tokens the rows use are trained together, so the table learns what matters for the routes.
//!
//! The student's embedding of a text is `normalize(Σ row[token])`; the head is a softmax over
//! `W·e + b`. Both are trained by full-batch Adam on the class-balanced cross-entropy (as
//! [`crate::core::classifier::train`] trains the head alone), with an L2 pull of each row back
//! to the distilled one, so tokens seen in few rows do not drift far from what MiniLM taught.
//! Full batches and a fixed order make it deterministic: the same rows give the same table.
//! Native only (`switchyard train --tune-encoder`).

use crate::core::classifier::{class_balance, logits, softmax, Adam};
use crate::embed::static_encoder::StaticEncoder;
use crate::embed::EmbedError;
use std::collections::BTreeMap;

/// How to tune.
#[derive(Debug, Clone, Copy)]
pub struct TuneOptions {
    pub steps: usize,
    /// Adam's rate for the head.
    pub head_rate: f32,
    /// Adam's rate for the token vectors.
    pub table_rate: f32,
    /// L2 pull of each tuned row towards its distilled value.
    pub anchor: f32,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions { steps: 300, head_rate: 0.05, table_rate: 0.03, anchor: 1e-4 }
    }
}

/// The student tuned on `rows` (token ids, label index among `classes`): a new table.
pub fn tune(
    student: &StaticEncoder,
    rows: &[(Vec<u32>, usize)],
    classes: usize,
    options: TuneOptions,
) -> Result<StaticEncoder, EmbedError> {
    let dims = student.dimensions();
    // The tokens the rows use, each a dense slot.
    let slots: BTreeMap<u32, usize> = {
        let mut ids: Vec<u32> = rows.iter().flat_map(|(ids, _)| ids.iter().copied()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().enumerate().map(|(slot, id)| (id, slot)).collect()
    };
    let initial: Vec<f32> = slots.keys().flat_map(|&id| student.row(id)).collect();
    let mut table = initial.clone();
    // Tokens the distilled table leaves at zero (`[UNK]`, `[CLS]` typed in a text…) stay zero:
    // they carry no meaning to tune.
    let frozen: Vec<bool> = initial.chunks_exact(dims).map(|row| row.iter().all(|&v| v == 0.0)).collect();
    let rows: Vec<(Vec<usize>, usize)> =
        rows.iter().map(|(ids, label)| (ids.iter().map(|id| slots[id]).collect(), *label)).collect();
    let labels: Vec<usize> = rows.iter().map(|(_, label)| *label).collect();
    let (weights, total) = class_balance(&labels, classes);

    let mut head = vec![0f32; classes * dims];
    let mut bias = vec![0f32; classes];
    let (mut adam_head, mut adam_bias, mut adam_table) =
        (Adam::new(head.len()), Adam::new(classes), Adam::new(table.len()));
    for step in 1..=options.steps {
        let mut grad_head = vec![0f32; head.len()];
        let mut grad_bias = vec![0f32; classes];
        let mut grad_table: Vec<f32> =
            table.iter().zip(&initial).map(|(t, t0)| options.anchor * (t - t0)).collect();
        for ((slots, label), weight) in rows.iter().zip(&weights) {
            let mut sum = vec![0f32; dims];
            for &slot in slots {
                sum.iter_mut().zip(&table[slot * dims..][..dims]).for_each(|(s, v)| *s += v);
            }
            let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm == 0.0 {
                continue;
            }
            let e: Vec<f32> = sum.iter().map(|v| v / norm).collect();
            let p = softmax(&logits(&head, &bias, dims, &e), 1.0);
            let mut grad_e = vec![0f32; dims];
            for c in 0..classes {
                let error = weight * (p[c] - f32::from(u8::from(c == *label))) / total;
                grad_bias[c] += error;
                let w = &head[c * dims..][..dims];
                for k in 0..dims {
                    grad_head[c * dims + k] += error * e[k];
                    grad_e[k] += error * w[k];
                }
            }
            // Through the normalisation: d e / d sum = (I − e eᵀ) / |sum|.
            let along = grad_e.iter().zip(&e).map(|(g, x)| g * x).sum::<f32>();
            let grad_sum: Vec<f32> = grad_e.iter().zip(&e).map(|(g, x)| (g - along * x) / norm).collect();
            for &slot in slots.iter().filter(|&&slot| !frozen[slot]) {
                grad_table[slot * dims..][..dims].iter_mut().zip(&grad_sum).for_each(|(g, d)| *g += d);
            }
        }
        adam_head.step(&mut head, &grad_head, options.head_rate, step);
        adam_bias.step(&mut bias, &grad_bias, options.head_rate, step);
        adam_table.step(&mut table, &grad_table, options.table_rate, step);
    }
    let changed: Vec<(u32, Vec<f32>)> =
        slots.iter().map(|(&id, &slot)| (id, table[slot * dims..][..dims].to_vec())).collect();
    student.with_rows(&changed)
}
