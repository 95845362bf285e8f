// The floor under the cold start in local workerd: a Worker with no code of ours that only
// downloads the encoder from the same static assets (model/, same .assetsignore) the way the
// Worker does (one arrayBuffer()). Per fresh `wrangler dev` (RUNS, default 3): the wall time of
// a trivial first request (isolate start), then of the download request, split into the time
// inside the handler and the time until its (tiny) response reached the client; then the same
// download with 400 ms of computation in the handler meanwhile (does the download overlap it?).
// Prints JSON.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from '../tests/e2e/harness.mjs';

const root = resolve(new URL('..', import.meta.url).pathname);
const runs = Number(process.env.RUNS ?? 3);

const worker = `export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname !== '/download') return new Response('ok');
    const entered = Date.now();
    const download = env.ASSETS.fetch('https://model.assets/encoder.onnx').then((res) => res.arrayBuffer());
    // ?compute=MS: keep the thread busy that long once the request has gone out, as the Worker
    // does while it parses the tokenizer, to see whether the download goes on meanwhile.
    await new Promise((done) => setTimeout(done, 0));
    const until = Date.now() + Number(url.searchParams.get('compute') ?? 0);
    while (Date.now() < until);
    const bytes = (await download).byteLength;
    return Response.json({ bytes, entered, left: Date.now() });
  },
};`;

async function measure() {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-floor-'));
  writeFileSync(join(dir, 'worker.mjs'), worker);
  writeFileSync(
    join(dir, 'wrangler.toml'),
    `name = "asset-floor"\nmain = "worker.mjs"\ncompatibility_date = "2026-04-01"\n` +
      `[assets]\ndirectory = ${JSON.stringify(join(root, 'model'))}\nbinding = "ASSETS"\nrun_worker_first = true\n`,
  );
  const port = await freePort();
  const child = spawn(
    join(root, 'node_modules/.bin/wrangler'),
    ['dev', '--ip', '127.0.0.1', '--port', String(port), '--show-interactive-dev-session=false'],
    { cwd: dir, env: { ...process.env, CI: '1', WRANGLER_SEND_METRICS: 'false' }, stdio: 'ignore', detached: true },
  );
  try {
    // Wait for the port without sending the Worker a request, then let wrangler settle.
    const deadline = Date.now() + 90_000;
    for (;;) {
      const open = await new Promise((done) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.destroy();
          done(true);
        });
        socket.on('error', () => done(false));
      });
      if (open) break;
      if (Date.now() > deadline) throw new Error('wrangler dev did not start within 90 s');
      await new Promise((done) => setTimeout(done, 100));
    }
    await new Promise((done) => setTimeout(done, 3000));
    const base = `http://127.0.0.1:${port}`;
    let started = performance.now();
    await (await fetch(`${base}/`)).text();
    const first_request_ms = Math.round(performance.now() - started);
    started = performance.now();
    const sent = Date.now();
    const body = await (await fetch(`${base}/download`)).json();
    const received = Date.now();
    const download_wall_ms = Math.round(performance.now() - started);
    // After the first download has drained (see above), the same download with 400 ms of
    // computation started right after it.
    await new Promise((done) => setTimeout(done, 3000));
    const busy = await (await fetch(`${base}/download?compute=400`)).json();
    return {
      first_request_ms,
      download_bytes: body.bytes,
      download_wall_ms,
      download_in_handler_ms: body.left - body.entered,
      download_after_handler_ms: received - body.left,
      download_before_handler_ms: body.entered - sent,
      download_with_400ms_compute_in_handler_ms: busy.left - busy.entered,
    };
  } finally {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {}
    rmSync(dir, { recursive: true, force: true });
  }
}

const all = [];
for (let i = 0; i < runs; i++) all.push(await measure());
const sorted = [...all].sort((a, b) => a.download_wall_ms - b.download_wall_ms);
console.log(JSON.stringify({ ...sorted[Math.floor(sorted.length / 2)], runs: all }));
