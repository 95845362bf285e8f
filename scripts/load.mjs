// Load and memory of the built Worker under `wrangler dev`, against the fake upstream (issue H).
// Not a test: nothing here is timed in CI. `node scripts/load.mjs` after `bash scripts/build-worker.sh`.
//
// Load: REQUESTS (default 2,000) requests at CONCURRENCY (default 50), a fixed mix in shuffled
// order: rules-routed whole answers and streams, a named model, a dry run (/v1/route), an
// upstream fault the router falls back from (the first model answers 503 twice), and bad inputs
// (invalid JSON, an unknown model, no key, past the message limit). Every kind has the status
// it must get (and a stream its [DONE]); anything else is an unexpected error. Reported: the
// unexpected errors (must be 0), p50/p99 of the client's wall time by kind and in all, and the
// router's own time for the rules-routed whole answers (the sum of their Server-Timing phases
// but `upstream`). The reference: the same whole-answer requests sent straight to the fake
// upstream at the same concurrency.
//
// Memory: on a fresh stack, /healthz's wasm memory after one ordinary request, then after each
// of the worst bodies the limits allow (4 MiB each), one at a time.
//
// Prints JSON.
import { healthDetails, postJson, startStack } from '../tests/e2e/harness.mjs';

const REQUESTS = Number(process.env.REQUESTS ?? 2000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 50);
const MiB = 1 << 20;

const config = (url) => `
[server]
auth_keys = ["ROUTER_KEY"]
max_body_bytes = 4194304

[providers.fake]
kind = "openai"
base_url = "${url}/v1"
api_key = "FAKE_UPSTREAM_KEY"

[models.small]
provider = "fake"
upstream = "fake-small"
context_window = 8192
tier = "small"

[models.big]
provider = "fake"
upstream = "fake-big"
context_window = 200000
tier = "large"

[models.primary]
provider = "fake"
upstream = "fake-primary"
context_window = 8192

[models.secondary]
provider = "fake"
upstream = "fake-secondary"
context_window = 8192

[[routes]]
name = "long"
min_tokens = 2000
models = ["big"]

[[routes]]
name = "code"
models = ["big"]
keywords = ['(?i)\\b(sql|python)\\b']
unless = ['(?i)\\bjokes?\\b']

[[routes]]
name = "chat"
models = ["small"]

[[routes]]
name = "failover"
models = ["primary", "secondary"]

[upstream]
max_retries = 1
backoff_base_ms = 10
backoff_max_ms = 20

[default]
route = "chat"
`;

const user = (content) => [{ role: 'user', content }];

/** Each kind: its share of the mix, the request, and the status it must get. */
const KINDS = {
  whole: { share: 30, status: 200, body: (i) => ({ model: 'auto', messages: user(`What is a good name for a cat? (${i})`) }) },
  code: { share: 10, status: 200, body: (i) => ({ model: 'auto', messages: user(`Write a SQL query for users (${i})`) }) },
  stream: { share: 20, status: 200, stream: true, body: (i) => ({ model: 'auto', stream: true, messages: user(`Tell me about trains (${i})`) }) },
  named: { share: 10, status: 200, body: (i) => ({ model: 'small', messages: user(`hello ${i}`) }) },
  dry_run: { share: 10, status: 200, path: '/v1/route', body: (i) => ({ model: 'auto', messages: user(`route me ${i}`) }) },
  fault: { share: 10, status: 200, fault: true, body: (i) => ({ model: 'failover', messages: user(`fall back ${i}`) }) },
  bad_json: { share: 3, status: 400, body: () => '{"model": "auto", "messages": [' },
  unknown_model: { share: 3, status: 404, body: () => ({ model: 'gpt-17', messages: user('hi') }) },
  no_key: { share: 2, status: 401, headers: { authorization: '' }, body: () => ({ model: 'auto', messages: user('hi') }) },
  too_many: { share: 2, status: 400, body: () => ({ model: 'auto', messages: Array(2049).fill({ role: 'user', content: 'a' }) }) },
};

const quantile = (values, q) => {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return +sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1);
};

/** The sum of the Server-Timing phases but `upstream`: the router's own time. */
const ownMs = (header) =>
  (header ?? '')
    .split(',')
    .map((p) => p.trim().match(/^(\w+);dur=([\d.]+)$/))
    .filter((m) => m && m[1] !== 'upstream')
    .reduce((sum, m) => sum + Number(m[2]), 0);

function plan() {
  const kinds = Object.entries(KINDS).flatMap(([name, kind]) => Array(Math.round((kind.share * REQUESTS) / 100)).fill(name));
  // A fixed shuffle, so that runs are alike.
  let seed = 7;
  for (let i = kinds.length - 1; i > 0; i--) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const j = seed % (i + 1);
    [kinds[i], kinds[j]] = [kinds[j], kinds[i]];
  }
  return kinds;
}

/** Runs `jobs` (async functions) CONCURRENCY at a time. */
async function pool(jobs) {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < jobs.length) await jobs[next++]();
    }),
  );
}

async function load() {
  const stack = await startStack({ config });
  try {
    const kinds = plan();
    for (let i = 0; i < kinds.filter((k) => k === 'fault').length * 2; i++) {
      stack.fake.script({ model: 'fake-primary', status: 503 });
    }
    const times = {};
    const own = [];
    const unexpected = [];
    await pool(
      kinds.map((name, i) => async () => {
        const kind = KINDS[name];
        const started = performance.now();
        try {
          const res = await postJson(stack.base, kind.path ?? '/v1/chat/completions', kind.body(i), kind.headers);
          const ms = performance.now() - started;
          (times[name] ??= []).push(ms);
          const wrong =
            res.status !== kind.status ||
            (kind.stream && !res.text.includes('data: [DONE]')) ||
            (kind.fault && res.headers.get('x-switchyard-model') !== 'secondary');
          if (wrong) unexpected.push({ kind: name, status: res.status, body: res.text.slice(0, 200) });
          if (name === 'whole' && res.status === 200) own.push(ownMs(res.headers.get('server-timing')));
        } catch (e) {
          unexpected.push({ kind: name, error: String(e) });
        }
      }),
    );
    // The reference: the whole-answer requests straight to the fake upstream.
    const direct = [];
    await pool(
      kinds
        .filter((k) => k === 'whole')
        .map((_, i) => async () => {
          const started = performance.now();
          const res = await fetch(`${stack.fake.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: 'Bearer direct' },
            body: JSON.stringify({ model: 'fake-small', messages: user(`What is a good name for a cat? (${i})`) }),
          });
          await res.text();
          direct.push(performance.now() - started);
        }),
    );
    const all = Object.values(times).flat();
    return {
      requests: kinds.length,
      concurrency: CONCURRENCY,
      unexpected: unexpected.length,
      unexpected_examples: unexpected.slice(0, 5),
      latency_ms: {
        all: { p50: quantile(all, 0.5), p99: quantile(all, 0.99) },
        ...Object.fromEntries(Object.entries(times).map(([k, v]) => [k, { n: v.length, p50: quantile(v, 0.5), p99: quantile(v, 0.99) }])),
      },
      router_own_ms_rules_whole: { p50: quantile(own, 0.5), p99: quantile(own, 0.99) },
      direct_to_fake_ms: { n: direct.length, p50: quantile(direct, 0.5), p99: quantile(direct, 0.99) },
      memory_after_mib: +((await healthDetails(stack.base)).memory_bytes / MiB).toFixed(1),
    };
  } finally {
    await stack.stop();
  }
}

async function memory() {
  const stack = await startStack({ config });
  try {
    const mib = async () => +((await healthDetails(stack.base)).memory_bytes / MiB).toFixed(1);
    const word = `word${' '.repeat(60)}`;
    const text = (n) => word.repeat(Math.ceil(n / word.length)).slice(0, n);
    const worst = {
      most_messages: { model: 'big', messages: Array(2048).fill({ role: 'user', content: text(2000) }) },
      one_4mb_message: { model: 'big', messages: user(text(4 * MiB - 200)) },
      most_json_values: { model: 'big', messages: user('hi'), metadata_blob: Array(99_000).fill(0) },
      tiny_messages_refused: { model: 'big', messages: Array(130_000).fill({ role: 'user', content: 'a' }) },
    };
    await postJson(stack.base, '/v1/chat/completions', { model: 'auto', messages: user('hello') });
    const out = { after_one_ordinary_request: await mib() };
    for (const [name, body] of Object.entries(worst)) {
      const res = await postJson(stack.base, '/v1/chat/completions', body);
      out[name] = { status: res.status, memory_after_mib: await mib() };
    }
    return out;
  } finally {
    await stack.stop();
  }
}

const started = new Date().toISOString();
console.log(JSON.stringify({ started, load: await load(), memory: await memory() }, null, 2));
