// Where the Worker's CPU time goes: V8's sampling profiler, driven through wrangler dev's
// inspector, over REQUESTS (default 200) `/v1/route` requests after the encoder has loaded.
// Prints the functions with the most self time. Function names need a build that keeps them:
//   CARGO_PROFILE_WORKER_STRIP=false bash scripts/build-worker.sh
//   SWITCHYARD_SKIP_BUILD=1 node scripts/profile_workerd.mjs
// (then rebuild normally: the stripped build is the one that fits the size budget).
import WebSocket from 'ws';
import { startStack } from '../tests/e2e/harness.mjs';
import { config, prompts, route as post } from './workerd_load.mjs';

const requests = Number(process.env.REQUESTS ?? 200);
const stack = await startStack({ config });
const route = (text) => post(stack.base, text).then((res) => res.text());
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
