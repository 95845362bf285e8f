// The routing decision in workerd with each encoder, in one run (issue D2 item 2's budgets):
// MiniLM and its static student, each under a classifier head trained by the CLI on the same
// rows, each started afresh RUNS times (default 3). Per run:
//   - the first /v1/route request's time in the handler (the sum of its Server-Timing phases). The
//     harness's /healthz poll is the isolate's first request and starts the model load in the
//     background, so this is what was left of the load plus the decision; the whole load, as
//     /healthz reports it, is given too (`load_ms`): that is what a first request that is a
//     routing request would wait for, and `cold_start_in_handler_ms` is that load plus the first
//     request's other phases: the cold start;
//   - over REQUESTS (default 200) routing requests after that: p50 and p90 of the decision
//     (`tokenize` + `embed` + `classify`), of the handler's whole time, and of the wall time seen
//     by the client; and the wall time of requests that name their route (levels 2–3 skipped:
//     what the decision's cost sits on);
//   - the asset's size.
// Local workerd's clock is performance.now() to the millisecond, so sub-millisecond phases read
// 0 or 1: the wall-time difference between the two kinds of request is the finer measure.
// Prints JSON: per encoder, each figure's median over the starts (taken figure by figure), and
// every start's figures. Needs `cargo build --bin switchyard` and the built Worker
// (bash scripts/build-worker.sh).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { healthDetails, startStack } from '../tests/e2e/harness.mjs';
import { config as builtin, route as post } from './workerd_load.mjs';

/** Prompts of 10–30 tokens that no keyword rule takes, so every one is decided by the encoder. */
const prompts = [
  'Write a short poem about the first snow falling on a quiet city street',
  'If a train travels ninety miles an hour, how long does it take to cover four hundred miles?',
  'What should I pack for a week of hiking in Scotland in late October?',
  'My program keeps crashing when the input list is empty, how can I make it handle that case?',
  'Tell me a bedtime story about a brave little lighthouse keeper and her cat',
  'Is it better to rent or buy a flat if I plan to move again in three years?',
];

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'target/debug/switchyard');
const runs = Number(process.env.RUNS ?? 3);
const requests = Number(process.env.REQUESTS ?? 200);
const rows = process.env.ROWS ?? join(root, 'tests/data/routing_fit.jsonl');

const encoders = {
  minilm: { files: ['encoder.onnx', 'tokenizer.json'], line: '' },
  static: { files: ['router.static'], line: 'encoder = "router.static"\n' },
};

/** An assets folder with the encoder's files and a head trained on `rows` by the CLI. */
function prepare(name) {
  const { files, line } = encoders[name];
  const assets = mkdtempSync(join(tmpdir(), `switchyard-bench-${name}-`));
  for (const file of files) copyFileSync(join(root, 'model', file), join(assets, file));
  const config = builtin.replace(/^follow_up_words = .*\n/m, (l) => l + line) +
    '\n[classifier]\npath = "classifier.json"\nmin_confidence = 0.6\n';
  const configFile = join(assets, 'config.toml');
  writeFileSync(configFile, config);
  execFileSync(cli, ['--config', configFile, '--model-dir', assets, 'train', rows], {
    env: { ...process.env, XDG_CACHE_HOME: join(assets, 'cache') },
    stdio: 'pipe',
  });
  const bytes = files.reduce((sum, f) => sum + statSync(join(assets, f)).size, 0);
  return { assets, config, bytes };
}

const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))];
const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);

async function measure({ assets, config }) {
  const stack = await startStack({ config, assets });
  const send = async (text, model = 'auto') => {
    const started = performance.now();
    const res = await (model === 'auto'
      ? post(stack.base, text)
      : fetch(`${stack.base}/v1/route`, {
          method: 'POST',
          headers: { authorization: 'Bearer sk-router-e2e-0123456789', 'content-type': 'application/json' },
          body: JSON.stringify({ model, messages: [{ role: 'user', content: text }] }),
        }));
    const body = await res.json();
    if (res.status !== 200) throw new Error(JSON.stringify(body));
    const timing = Object.fromEntries(
      res.headers.get('server-timing').split(', ').map((p) => [p.split(';')[0], Number(p.split('dur=')[1])]),
    );
    return { wall: performance.now() - started, timing, level: body.level };
  };
  try {
    const first = await send(prompts[0]);
    const health = await healthDetails(stack.base);
    const decided = [];
    const named = [];
    for (let i = 0; i < requests; i++) {
      decided.push(await send(prompts[i % prompts.length]));
      named.push(await send(prompts[i % prompts.length], 'chat'));
    }
    if (decided.some((r) => r.timing.embed === undefined)) throw new Error('a prompt was routed without the encoder');
    const decision = decided.map((r) => r.timing.tokenize + r.timing.embed + (r.timing.classify ?? 0));
    const handler = decided.map((r) => sum(r.timing));
    return {
      // A first request that is a routing request waits for the whole load in the handler.
      cold_start_in_handler_ms: health.encoder_load_ms + sum(first.timing) - (first.timing.load ?? 0),
      first_request_in_handler_ms: sum(first.timing),
      first_request_phases_ms: first.timing,
      load_ms: health.encoder_load_ms,
      load_phases_ms: health.encoder_load_phases_ms,
      decision_p50_ms: quantile(decision, 0.5),
      decision_p90_ms: quantile(decision, 0.9),
      handler_p50_ms: quantile(handler, 0.5),
      wall_p50_ms: quantile(decided.map((r) => r.wall), 0.5),
      wall_named_route_p50_ms: quantile(named.map((r) => r.wall), 0.5),
      levels: Object.fromEntries([...new Set(decided.map((r) => r.level))].map((l) => [l, decided.filter((r) => r.level === l).length])),
      memory_bytes: health.memory_bytes,
    };
  } finally {
    await stack.stop();
  }
}

const results = {};
for (const name of Object.keys(encoders)) {
  const prepared = prepare(name);
  const all = [];
  for (let i = 0; i < runs; i++) all.push(await measure(prepared));
  const median = (key) => quantile(all.map((r) => r[key]), 0.5);
  results[name] = {
    asset_bytes: prepared.bytes,
    load_ms: median('load_ms'),
    cold_start_in_handler_ms: median('cold_start_in_handler_ms'),
    first_request_in_handler_ms: median('first_request_in_handler_ms'),
    decision_p50_ms: median('decision_p50_ms'),
    decision_p90_ms: median('decision_p90_ms'),
    handler_p50_ms: median('handler_p50_ms'),
    wall_p50_ms: median('wall_p50_ms'),
    wall_named_route_p50_ms: median('wall_named_route_p50_ms'),
    memory_bytes: Math.max(...all.map((r) => r.memory_bytes)),
    runs: all,
  };
}
console.log(JSON.stringify({ date: new Date().toISOString(), requests, rows, results }));
