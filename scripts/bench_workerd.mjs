// The workerd part of scripts/bench.sh: the built Worker under wrangler dev with the built-in
// config, started afresh RUNS times (default 3) because one run on a shared machine moves a lot.
// Per run: cold start = from a fresh isolate to the first semantic decision (asset fetch, encoder
// load, first embedding), with the load's steps as /healthz reports them; embed times from the
// Server-Timing header (performance.now() in local workerd) over 100 requests; memory from
// /healthz after them. Prints JSON: the median run's figures, and every run's.
import { readFileSync } from 'node:fs';
import { startStack } from '../tests/e2e/harness.mjs';

const runs = Number(process.env.RUNS ?? 3);
const config = readFileSync(new URL('../switchyard.toml', import.meta.url), 'utf8').replace(
  'auth_keys = ["SWITCHYARD_KEY"]',
  'auth_keys = ["ROUTER_KEY"]',
);
const prompts = [
  'How do I write a SQL join across three tables?',
  'Tell me a joke about Python and the people who love it',
  "What's a good way to plan a weekend hiking trip in the Alps with kids?",
  "Can you refactor this Rust function so it doesn't clone the vector on every call?",
];

async function measure() {
  const stack = await startStack({ config });
  const route = async (text) => {
    const started = performance.now();
    const res = await fetch(`${stack.base}/v1/route`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-router-e2e-0123456789', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: text }] }),
    });
    const body = await res.json();
    if (res.status !== 200) throw new Error(JSON.stringify(body));
    const timing = Object.fromEntries(
      res.headers.get('server-timing').split(', ').map((p) => [p.split(';')[0], Number(p.split('dur=')[1])]),
    );
    return { wall: performance.now() - started, timing };
  };
  try {
    const first = await route(prompts[0]);
    const cold = await (await fetch(`${stack.base}/healthz`)).json();
    const embeds = [];
    for (let i = 0; i < 100; i++) embeds.push((await route(prompts[i % prompts.length])).timing.embed);
    embeds.sort((a, b) => a - b);
    const health = await (await fetch(`${stack.base}/healthz`)).json();
    return {
      cold_start_ms: Math.round(first.wall),
      load_ms: first.timing.load,
      load_phases_ms: cold.encoder_load_phases_ms,
      first_embed_ms: first.timing.embed,
      embed_p50_ms: embeds[50],
      embed_p90_ms: embeds[90],
      memory_bytes: health.memory_bytes,
    };
  } finally {
    await stack.stop();
  }
}

const all = [];
for (let i = 0; i < runs; i++) all.push(await measure());
const median = (key) => all.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(all.length / 2)];
const typical = all.find((r) => r.cold_start_ms === median('cold_start_ms'));
console.log(
  JSON.stringify({
    cold_start_ms: median('cold_start_ms'),
    load_ms: typical.load_ms,
    load_phases_ms: typical.load_phases_ms,
    first_embed_ms: typical.first_embed_ms,
    embed_p50_ms: median('embed_p50_ms'),
    embed_p90_ms: median('embed_p90_ms'),
    memory_bytes: Math.max(...all.map((r) => r.memory_bytes)),
    runs: all,
  }),
);
