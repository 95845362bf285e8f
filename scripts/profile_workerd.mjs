// Where the Worker's CPU time goes: V8's sampling profiler, driven through wrangler dev's
// inspector, over REQUESTS (default 200) `/v1/route` requests after the encoder has loaded.
// Prints the functions with the most self time. Function names need a build that keeps them:
//   CARGO_PROFILE_WORKER_STRIP=false bash scripts/build-worker.sh
//   SWITCHYARD_SKIP_BUILD=1 node scripts/profile_workerd.mjs
// (then rebuild normally: the stripped build is the one that fits the size budget).
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startStack } from '../tests/e2e/harness.mjs';

const requests = Number(process.env.REQUESTS ?? 200);
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
const stack = await startStack({ config });
const route = (text) =>
  fetch(`${stack.base}/v1/route`, {
    method: 'POST',
    headers: { authorization: 'Bearer sk-router-e2e-0123456789', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: text }] }),
  }).then((res) => res.text());
try {
  await route(prompts[0]); // loads the encoder, outside the profile
  const [target] = await (await fetch(`http://127.0.0.1:${stack.inspectorPort}/json`)).json();
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let id = 0;
  const pending = new Map();
  socket.on('message', (data) => {
    const message = JSON.parse(data);
    pending.get(message.id)?.(message);
    pending.delete(message.id);
  });
  const send = (method, params = {}) =>
    new Promise((resolve) => {
      pending.set(++id, resolve);
      socket.send(JSON.stringify({ id, method, params }));
    });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: 100 });
  await send('Profiler.start');
  for (let i = 0; i < requests; i++) await route(prompts[i % prompts.length]);
  const { result } = await send('Profiler.stop');
  socket.close();
  const nodes = new Map(result.profile.nodes.map((node) => [node.id, node]));
  const selfSamples = new Map();
  for (const sample of result.profile.samples) {
    const frame = nodes.get(sample).callFrame;
    const name = frame.functionName || frame.url || '(anonymous)';
    selfSamples.set(name, (selfSamples.get(name) ?? 0) + 1);
  }
  const total = result.profile.samples.length;
  console.log(`${total} samples over ${requests} requests; self time by function:`);
  for (const [name, count] of [...selfSamples].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
    console.log(`${((100 * count) / total).toFixed(1).padStart(5)}%  ${name.slice(0, 140)}`);
  }
} finally {
  await stack.stop();
}
