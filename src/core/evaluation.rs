//! Scoring a router against labelled data, and fitting its thresholds to that data.
//!
//! Data rows are `{"text", "label"}` with a route name as label; the default route's name means
//! "nothing should match", so out-of-scope recall is how often such rows really reach the default.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Deserialize)]
pub struct LabelledRow {
    pub text: String,
    pub label: String,
}

/// Parses JSONL rows; errors name the line.
pub fn parse_rows(file: &str, text: &str) -> Result<Vec<LabelledRow>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{file}:{}: {e}", i + 1)))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Rows labelled with this route.
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub rows: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_route: BTreeMap<String, RouteMetrics>,
    /// `confusion[label][predicted]` = count.
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Share of default-labelled rows routed to the default route (`null` without such rows).
    pub oos_recall: Option<f64>,
    /// Per level that decided some row (`rules`, `semantic`, `default`, …): how many rows it
    /// decided, their share, and how many of those it got right. Empty unless the levels were
    /// given ([`EvalReport::with_levels`]).
    pub per_level: BTreeMap<String, LevelMetrics>,
}

/// How one level did: the rows it decided and its accuracy on them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelMetrics {
    pub decisions: usize,
    /// `decisions` over all rows.
    pub share: f64,
    /// Of the rows this level decided, the share routed to their label.
    pub accuracy: f64,
}

impl EvalReport {
    /// `pairs` are `(label, predicted route)`.
    pub fn compute(default_route: &str, pairs: &[(String, String)]) -> EvalReport {
        let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for (label, predicted) in pairs {
            *confusion.entry(label.clone()).or_default().entry(predicted.clone()).or_default() += 1;
        }
        let classes: BTreeSet<&String> = pairs.iter().flat_map(|(l, p)| [l, p]).collect();
        let mut per_route = BTreeMap::new();
        for class in classes {
            let tp = pairs.iter().filter(|(l, p)| l == class && p == class).count();
            let predicted = pairs.iter().filter(|(_, p)| p == class).count();
            let support = pairs.iter().filter(|(l, _)| l == class).count();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 =
                if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            per_route.insert(class.clone(), RouteMetrics { precision, recall, f1, support });
        }
        let correct = pairs.iter().filter(|(l, p)| l == p).count();
        let oos: Vec<_> = pairs.iter().filter(|(l, _)| l == default_route).collect();
        EvalReport {
            rows: pairs.len(),
            accuracy: ratio(correct, pairs.len()),
            macro_f1: if per_route.is_empty() {
                0.0
            } else {
                per_route.values().map(|m| m.f1).sum::<f64>() / per_route.len() as f64
            },
            per_route,
            confusion,
            oos_recall: (!oos.is_empty())
                .then(|| ratio(oos.iter().filter(|(_, p)| p == default_route).count(), oos.len())),
            per_level: BTreeMap::new(),
        }
    }

    /// Adds the per-level figures: `levels[i]` is the level that decided `pairs[i]`.
    pub fn with_levels(mut self, pairs: &[(String, String)], levels: &[&str]) -> EvalReport {
        let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for ((label, predicted), level) in pairs.iter().zip(levels) {
            let (decided, right) = counts.entry(level).or_default();
            *decided += 1;
            *right += usize::from(label == predicted);
        }
        self.per_level = counts
            .into_iter()
            .map(|(level, (decided, right))| {
                let metrics = LevelMetrics {
                    decisions: decided,
                    share: ratio(decided, pairs.len()),
                    accuracy: ratio(right, decided),
                };
                (level.to_string(), metrics)
            })
            .collect();
        self
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One step of the threshold grid: the config file keeps three decimals.
const GRID: f32 = 1000.0;

/// `threshold` rounded to the grid, as `switchyard fit` writes it into the config file.
pub fn on_grid(threshold: f32) -> f32 {
    (threshold * GRID).round() / GRID
}

/// The thresholds that change which rows clear them: for each distinct score, the grid value just
/// above it (the row no longer clears it), and one at or below the lowest score (every row does).
fn candidate_thresholds(scores: &[f32]) -> Vec<f32> {
    // Stepped in the f32 values the accuracy check compares, since `s * 1000` can round across a
    // grid line (0.502f32 is 0.50199997: its "just above" must be 0.503, not 0.502).
    let above = |s: f32| {
        let mut k = (s * GRID).floor() as i64 + 1;
        while (k as f32 / GRID) <= s {
            k += 1;
        }
        k
    };
    let at_or_below = |s: f32| {
        let mut k = (s * GRID).floor() as i64;
        while (k as f32 / GRID) > s {
            k -= 1;
        }
        k
    };
    let mut steps: Vec<i64> = scores.iter().map(|&s| above(s)).collect();
    steps.extend(scores.iter().map(|&s| at_or_below(s)).min());
    steps.sort_unstable();
    steps.dedup();
    steps.into_iter().map(|k| k as f32 / GRID).collect()
}

/// Coordinate ascent on per-route thresholds: for each route in turn, try every threshold that
/// changes a decision on the data and keep the one with the best accuracy (ties: the middle of
/// the best interval, the choice least tied to these exact rows); repeat until nothing improves.
/// Thresholds are searched on the 0.001 grid the config file keeps, so the search costs at most
/// ~2,000 tries per route however many rows there are, and what is written is what was scored.
///
/// `scores[route]` lists that route's semantic score on every row; `accuracy` evaluates a full
/// set of thresholds.
pub fn fit_thresholds(
    start: &BTreeMap<String, f32>,
    scores: &BTreeMap<String, Vec<f32>>,
    mut accuracy: impl FnMut(&BTreeMap<String, f32>) -> f64,
    max_rounds: usize,
) -> (BTreeMap<String, f32>, f64) {
    let mut thresholds = start.clone();
    let mut best = accuracy(&thresholds);
    for _ in 0..max_rounds {
        let mut improved = false;
        for (route, route_scores) in scores {
            let candidates = candidate_thresholds(route_scores);
            let mut results: Vec<(f32, f64)> = Vec::with_capacity(candidates.len());
            for &candidate in &candidates {
                let mut trial = thresholds.clone();
                trial.insert(route.clone(), candidate.clamp(-1.0, 1.0));
                results.push((candidate, accuracy(&trial)));
            }
            let top = results.iter().map(|r| r.1).fold(f64::MIN, f64::max);
            if top > best + 1e-12 {
                // The middle of the first run of best candidates.
                let first = results.iter().position(|r| r.1 == top).unwrap_or(0);
                let run = results[first..].iter().take_while(|r| r.1 == top).count();
                let low = results[first].0;
                let high = results[first + run - 1].0;
                let chosen = if run > 1 { on_grid((low + high) / 2.0) } else { low };
                thresholds.insert(route.clone(), chosen.clamp(-1.0, 1.0));
                best = accuracy(&thresholds);
                improved = true;
            }
        }
        if !improved {
            break;
        }
    }
    (thresholds, best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn metrics_of_a_small_confusion() {
        let report = EvalReport::compute(
            "chat",
            &pairs(&[
                ("code", "code"),
                ("code", "chat"),
                ("chat", "chat"),
                ("chat", "code"),
                ("math", "math"),
            ]),
        );
        assert_eq!(report.rows, 5);
        assert!((report.accuracy - 0.6).abs() < 1e-9);
        assert_eq!(report.confusion["code"]["chat"], 1);
        assert!((report.per_route["code"].precision - 0.5).abs() < 1e-9);
        assert!((report.per_route["math"].f1 - 1.0).abs() < 1e-9);
        assert_eq!(report.oos_recall, Some(0.5));
    }

    #[test]
    fn fitting_finds_the_threshold_that_separates_the_data() {
        // One route; rows 0-2 belong to it (high scores), rows 3-5 do not.
        let scores: BTreeMap<String, Vec<f32>> =
            [("code".to_string(), vec![0.8, 0.7, 0.6, 0.3, 0.2, 0.45])].into();
        let labels = [true, true, true, false, false, false];
        let accuracy = |t: &BTreeMap<String, f32>| {
            let cut = t["code"];
            scores["code"].iter().zip(labels).filter(|(s, l)| (**s >= cut) == *l).count() as f64 / 6.0
        };
        let (fitted, best) = fit_thresholds(&[("code".to_string(), 0.9)].into(), &scores, accuracy, 5);
        assert_eq!(best, 1.0);
        assert!(fitted["code"] > 0.45 && fitted["code"] <= 0.6, "{fitted:?}");
    }

    #[test]
    fn candidates_separate_scores_that_sit_on_a_grid_line() {
        // 0.502f32 is 0.50199997: a threshold of 0.502 would still let it through.
        let candidates = candidate_thresholds(&[0.502, 0.6]);
        assert!(candidates.iter().all(|&t| t != 0.502), "{candidates:?}");
        assert!(candidates.iter().any(|&t| t > 0.502 && t <= 0.6), "{candidates:?}");
        assert!(candidates.iter().any(|&t| t <= 0.502), "{candidates:?}");
        let lowest = candidate_thresholds(&[0.017f32.next_down()]);
        assert!(lowest[0] <= 0.017f32.next_down(), "{lowest:?}");
    }
}
