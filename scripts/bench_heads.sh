#!/usr/bin/env bash
# Level 3's accuracy with each encoder, in one run: the classifier head trained by `switchyard
# train` on ROWS (default tests/data/routing_rows.jsonl: 800 rows, 200 per route of the built-in
# config) over MiniLM's embeddings and over the static student's, each scored on the same
# stratified 20% held out (the split depends only on the labels); then both heads under the
# built-in config's whole pipeline on OTHER (default: the 90 rows of tests/data/routing_fit.jsonl
# and routing_eval.jsonl, written separately and never trained on). Prints both reports.
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${ROWS:-tests/data/routing_rows.jsonl}"
cargo build -q --bin switchyard
work="$(mktemp -d)"
cat tests/data/routing_fit.jsonl tests/data/routing_eval.jsonl > "$work/other.jsonl"
other="${OTHER:-$work/other.jsonl}"
head_section=$'\n[classifier]\npath = "classifier.json"\nmin_confidence = 0.6\n'
mkdir -p "$work/minilm" "$work/static"
cp model/encoder.onnx model/tokenizer.json "$work/minilm/"
cp model/router.static "$work/static/"
{ cat switchyard.toml; printf '%s' "$head_section"; } > "$work/minilm.toml"
{ sed 's/^follow_up_words = .*$/&\nencoder = "router.static"/' switchyard.toml; printf '%s' "$head_section"; } > "$work/static.toml"
for encoder in minilm static; do
  echo "== $encoder: train on $rows (report on the held-out 20%)"
  XDG_CACHE_HOME="$work/cache" /usr/bin/time -f "train: %e s wall, %M KiB peak" \
    target/debug/switchyard --config "$work/$encoder.toml" --model-dir "$work/$encoder" train "$rows"
  echo "== $encoder: the built-in pipeline with this head on $other"
  target/debug/switchyard --config "$work/$encoder.toml" --model-dir "$work/$encoder" eval --json "$other"
  echo
done
rm -rf "$work"
