// The workerd part of scripts/bench.sh: the built Worker under wrangler dev with the built-in
// config, started afresh RUNS times (default 3) because one run on a shared machine moves a lot.
// Per run: cold start = from a fresh isolate to the first semantic decision (asset fetch, encoder
// load, first embedding), with the part spent in the handler and the load's steps as /healthz
// reports them. Since 2026-12-02 the Worker starts loading the model in the background at the
// isolate's first request of any kind, which here is the harness's /healthz poll: the first
// decision then waits only for what is left of that load; embed times from the
// Server-Timing header (performance.now() in local workerd) over 100 requests; memory from
// /healthz after them. Prints JSON: the median run's figures, and every run's.
import { healthDetails, startStack } from '../tests/e2e/harness.mjs';
import { config, prompts, route as post } from './workerd_load.mjs';

const runs = Number(process.env.RUNS ?? 3);

async function measure() {
  const stack = await startStack({ config });
  const route = async (text) => {
    const started = performance.now();
    const res = await post(stack.base, text);
    const body = await res.json();
    if (res.status !== 200) throw new Error(JSON.stringify(body));
    const timing = Object.fromEntries(
      res.headers.get('server-timing').split(', ').map((p) => [p.split(';')[0], Number(p.split('dur=')[1])]),
    );
    return { wall: performance.now() - started, timing };
  };
  try {
    const first = await route(prompts[0]);
    const cold = await healthDetails(stack.base);
    const embeds = [];
    for (let i = 0; i < 100; i++) embeds.push((await route(prompts[i % prompts.length])).timing.embed);
    embeds.sort((a, b) => a - b);
    const health = await healthDetails(stack.base);
    return {
      cold_start_ms: Math.round(first.wall),
      // The Server-Timing phases follow each other: their sum is the time in the handler; the
      // rest of the wall time is outside Switchyard's code (see scripts/bench_asset_floor.mjs).
      cold_start_in_handler_ms: Math.round(Object.values(first.timing).reduce((a, b) => a + b, 0)),
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
    cold_start_in_handler_ms: typical.cold_start_in_handler_ms,
    load_ms: typical.load_ms,
    load_phases_ms: typical.load_phases_ms,
    first_embed_ms: typical.first_embed_ms,
    embed_p50_ms: median('embed_p50_ms'),
    embed_p90_ms: median('embed_p90_ms'),
    memory_bytes: Math.max(...all.map((r) => r.memory_bytes)),
    runs: all,
  }),
);
