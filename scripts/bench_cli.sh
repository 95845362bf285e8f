#!/usr/bin/env bash
# Times the CLI's `eval` and `fit` on 5,000 labelled rows (release build, this machine), the
# figures issue G2 budgets: `fit` <= 30 s and `eval` <= 60 s, embedding included.
#
# The rows are the 90 labelled rows of tests/data/routing_{fit,eval}.jsonl, each reworded with
# one of a few openings and closings and numbered, so that no two texts are the same: timing
# data, not a quality set. `eval` embeds every row once; `fit --dry-run` gathers every row's
# signals once (the same embedding work) and then searches thresholds by deciding only, so
# `fit - eval` is about the time of the search. Writes target/bench/cli.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
out=target/bench
mkdir -p "$out"
rows="$out/rows-5000.jsonl"
rows_count=${ROWS:-5000}

python3 - "$rows" "$rows_count" <<'PY'
import json, sys
path, count = sys.argv[1], int(sys.argv[2])
base = [json.loads(l) for f in ("tests/data/routing_fit.jsonl", "tests/data/routing_eval.jsonl") for l in open(f)]
openings = ["", "Quick question: ", "Hi! ", "Please help. ", "I was wondering: ", "Hey, "]
closings = ["", " Thanks!", " Keep it short.", " Explain like I'm new to this.", " Any tips?"]
with open(path, "w") as f:
    for i in range(count):
        row = base[i % len(base)]
        text = f"{openings[i % len(openings)]}{row['text']}{closings[(i // 7) % len(closings)]} ({i})"
        f.write(json.dumps({"text": text, "label": row["label"]}) + "\n")
PY

cargo build -q --release --bin switchyard
bin=target/release/switchyard
config="$out/bench-fit.toml"
cp switchyard.toml "$config"

# Wall time of a command in seconds, two decimals.
seconds() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" > /dev/null
  t1=$(date +%s%N)
  printf '%d.%02d' $(((t1 - t0) / 1000000000)) $(((t1 - t0) / 10000000 % 100))
}
echo "== eval on $rows_count rows"
eval_s=$(seconds "$bin" --config "$config" eval --json "$rows")
echo "eval: ${eval_s} s"
echo "== fit --dry-run on $rows_count rows"
fit_s=$(seconds "$bin" --config "$config" fit --dry-run "$rows")
echo "fit: ${fit_s} s"
printf '{"rows": %d, "eval_s": %s, "fit_s": %s, "date": "%s"}\n' "$rows_count" "$eval_s" "$fit_s" \
  "$(date -u +%Y-%m-%dT%H:%MZ)" | tee "$out/cli.json"
