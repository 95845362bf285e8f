// A public endpoint that holds (issue H): auth that fails closed, bounded work per request, and
// nothing of the operator's echoed to clients. Each case starts the stack its config needs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe } from 'node:test';
import { fetchWithDeadline, healthDetails, postJson, startStack, test, testConfig } from './harness.mjs';

/** Lets wrangler write out what the Worker logged. */
const flushed = () => new Promise((resolve) => setTimeout(resolve, 500));

/** What /healthz may report of wasm memory after the worst bodies (README, "Security"). */
const MEMORY_BOUND_MIB = 96;

const chat = { model: 'auto', messages: [{ role: 'user', content: 'hi' }] };
const withoutRouterKeys = (url) => testConfig(url).replace('auth_keys = ["ROUTER_KEY"]\n', '');

describe('a config that names no router key', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: withoutRouterKeys });
  });
  after(async () => {
    await stack?.stop();
  });

  test('serves no call, with or without a key, and says what to set', async () => {
    for (const headers of [{}, { authorization: 'Bearer anything-you-like-123' }]) {
      const res = await fetchWithDeadline(`${stack.base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(chat),
      });
      const body = await res.json();
      assert.equal(res.status, 500);
      assert.equal(body.error.code, 'configuration_error');
    }
    assert.equal(stack.fake.requests.length, 0, 'no upstream was called');
    await flushed();
    assert.match(readFileSync(stack.logFile, 'utf8'), /allow_unauthenticated/, 'the log says what to set');
  });
});

describe('an open router, asked for', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: (url) => withoutRouterKeys(url).replace('[server]\n', '[server]\nallow_unauthenticated = true\n') });
  });
  after(async () => {
    await stack?.stop();
  });

  test('answers without a key and warns in its log', async () => {
    const res = await fetchWithDeadline(`${stack.base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chat),
    });
    assert.equal(res.status, 200, await res.clone().text());
    await flushed();
    assert.match(readFileSync(stack.logFile, 'utf8'), /"event":"open_router"/);
  });
});

describe('a config holding a key where its secret name belongs', () => {
  const pasted = 'sk-live-pasted-0123456789abcdef';
  let stack;
  before(async () => {
    stack = await startStack({ config: (url) => testConfig(url).replace('auth_keys = ["ROUTER_KEY"]', `auth_keys = "${pasted}"`) });
  });
  after(async () => {
    await stack?.stop();
  });

  test('gets a generic 500; the log points at the line and prints no key', async () => {
    const res = await postJson(stack.base, '/v1/chat/completions', chat);
    assert.equal(res.status, 500);
    assert.equal(res.json.error.code, 'configuration_error');
    assert.ok(!res.text.includes(pasted));
    await flushed();
    const log = readFileSync(stack.logFile, 'utf8');
    assert.match(log, /invalid Switchyard config: SWITCHYARD_CONFIG:3:\d+: /);
    assert.ok(!log.includes('0123456789abcdef'), 'the log holds the pasted key');
  });
});

/** The routing work that could grow with the prompt: every Server-Timing phase but reading the
 * body (`parse`) and running the encoder (`embed`: at most 256 tokens whatever the prompt, and
 * most of the time, which would hide the rest). */
function routingMs(res) {
  return res.headers
    .get('server-timing')
    .split(',')
    .map((p) => p.trim().match(/^(\w+);dur=([\d.]+)$/))
    .filter((m) => m && !['parse', 'embed'].includes(m[1]))
    .reduce((sum, m) => sum + Number(m[2]), 0);
}

/** The total of `xs` without its highest and lowest: phases are timed in whole milliseconds, so a
 * total says more than a median, and a pause of the runtime's in one request says nothing. */
const trimmedTotal = (xs) => [...xs].sort((a, b) => a - b).slice(1, -1).reduce((a, b) => a + b, 0);

describe('the memory and CPU a request costs, and the upstream bytes it reads', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: (url) => testConfig(url).replace('max_body_bytes = 65536', 'max_body_bytes = 4194304') });
  });
  after(async () => {
    await stack?.stop();
  });

  test('twenty worst-case bodies beside ordinary requests: every answer right, memory bounded', async (t) => {
    const MiB = 1 << 20;
    // Words set far apart: 4 MB of them is some 130k tokens, within the long-context model's window.
    const word = `word${' '.repeat(60)}`;
    const text = (n) => word.repeat(Math.ceil(n / word.length)).slice(0, n);
    const worst = [
      // 4 MiB of the tiniest messages: refused by the limit before it is parsed.
      { body: { model: 'auto', messages: Array(130_000).fill({ role: 'user', content: 'a' }) }, status: 400 },
      // The most messages allowed, filling the body: parsed, routed and forwarded.
      { body: { model: 'auto', messages: Array(2048).fill({ role: 'user', content: text(2000) }) }, status: 200 },
      // One message of 4 MB.
      { body: { model: 'auto', messages: [{ role: 'user', content: text(4 * MiB - 200) }] }, status: 200 },
      // The most JSON values allowed, as small as they come.
      { body: { model: 'auto', messages: [{ role: 'user', content: 'hi' }], metadata_blob: Array(99_000).fill(0) }, status: 200 },
    ];
    const hostile = (async () => {
      for (let i = 0; i < 20; i++) {
        const { body, status } = worst[i % worst.length];
        const res = await postJson(stack.base, '/v1/chat/completions', body);
        assert.equal(res.status, status, `worst body ${i % worst.length}: ${res.text.slice(0, 300)}`);
      }
    })();
    let ordinary = 0;
    let done = false;
    hostile.finally(() => (done = true)).catch(() => {});
    while (!done) {
      const res = await postJson(stack.base, '/v1/chat/completions', { model: 'auto', messages: [{ role: 'user', content: `ordinary request ${ordinary}` }] });
      assert.equal(res.status, 200, res.text);
      assert.match(res.json.choices[0].message.content, /ordinary request/);
      ordinary++;
    }
    await hostile;
    const { memory_bytes: memory } = await healthDetails(stack.base);
    t.diagnostic(`${ordinary} ordinary requests answered beside them; wasm memory after: ${(memory / MiB).toFixed(1)} MiB`);
    assert.ok(ordinary > 0);
    assert.ok(memory < MEMORY_BOUND_MIB * MiB, `wasm memory ${(memory / MiB).toFixed(1)} MiB`);
  });

  test('a 20 MB upstream answer is not relayed: it is malformed, and the next model answers', async () => {
    stack.fake.script({ model: 'fake-primary', answer_bytes: 20_000_000 });
    const res = await postJson(stack.base, '/v1/chat/completions', { model: 'failover', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.equal(res.headers.get('x-switchyard-model'), 'secondary');
    assert.equal(res.headers.get('x-switchyard-attempts'), 'primary=malformed, secondary=ok');
  });

  test('routing a 1 MB prompt takes at most twice the time of a 1 KB one', async (t) => {
    const sentence = 'Please look over the quarterly figures and tell me what changed since spring. ';
    const prompt = (bytes) => sentence.repeat(Math.ceil(bytes / sentence.length)).slice(0, bytes);
    const routed = async (bytes) => {
      const res = await postJson(stack.base, '/v1/route', { model: 'auto', messages: [{ role: 'user', content: prompt(bytes) }] });
      assert.equal(res.status, 200, res.text);
      return routingMs(res);
    };
    // Interleaved, so that whatever else the machine does weighs on both sizes alike; the first
    // pairs warm the encoder up.
    const small = [];
    const large = [];
    for (let i = 0; i < 11; i++) {
      small.push(await routed(1024));
      large.push(await routed(1 << 20));
    }
    const [s, l] = [trimmedTotal(small.slice(2)), trimmedTotal(large.slice(2))];
    t.diagnostic(`routing work: 1 KB ${s} ms, 1 MB ${l} ms (7 requests each)`);
    assert.ok(l <= 2 * s, `1 MB took ${l} ms, 1 KB ${s} ms`);
  });
});

describe('the time a request may take', () => {
  const DEADLINE_MS = 3000;
  let stack;
  before(async () => {
    // Silences up to 10 s are allowed: only the deadline can end these answers.
    const timing = `request_deadline_ms = ${DEADLINE_MS}\nidle_timeout_ms = 10000\n`;
    stack = await startStack({ config: (url) => testConfig(url).replace('idle_timeout_ms = 1500\n', timing) });
  });
  after(async () => {
    await stack?.stop();
  });

  const asked = (stream) => ({ model: 'mini', stream, messages: [{ role: 'user', content: 'tell me everything' }] });

  test('a stream kept alive by keep-alive comments ends at the deadline with an error event', async () => {
    stack.fake.script({ ping_after: 3 });
    const started = Date.now();
    const res = await postJson(stack.base, '/v1/chat/completions', asked(true));
    const took = Date.now() - started;
    assert.equal(res.status, 200);
    assert.match(res.text, /"code":"upstream_timeout"/);
    assert.match(res.text, /request_deadline_ms/);
    assert.doesNotMatch(res.text, /\[DONE\]/);
    assert.ok(took >= DEADLINE_MS - 100 && took < DEADLINE_MS + 5000, `ended after ${took} ms: ${res.text.slice(-300)}`);
  });

  test('a whole answer whose body trickles is a 504 at the deadline', async () => {
    stack.fake.script({ trickle_body: true });
    const started = Date.now();
    const res = await postJson(stack.base, '/v1/chat/completions', asked(false));
    const took = Date.now() - started;
    assert.equal(res.status, 504, res.text);
    assert.equal(res.json.error.code, 'upstream_timeout');
    assert.ok(took < DEADLINE_MS + 5000, `answered after ${took} ms`);
  });
});
