// Starts the pieces of an end-to-end run on loopback: the fake upstream and `wrangler dev`
// (local workerd) running the built Worker with a test config in SWITCHYARD_CONFIG.
//
// The Worker must already be built (scripts/test.sh does it once); wrangler is told to reuse
// pkg/ through SWITCHYARD_SKIP_BUILD. Its output goes to tests/e2e/.logs/ for post-mortems.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test as nodeTest } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { startFakeUpstream } from './fake-upstream.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

export const ROUTER_KEY = 'sk-router-e2e-0123456789';
export const UPSTREAM_KEY = 'sk-upstream-e2e-secret-9876543210';
export const ADMIN_KEY = 'sk-admin-e2e-5555444433332222';
export const ALLOWED_ORIGIN = 'https://app.example';

/**
 * Longest a test waits for one answer, body included. A request the Worker leaves unanswered
 * then fails the test in seconds, naming the URL, instead of holding the run until CI gives up.
 * Every upstream wait in the test config is far shorter.
 */
export const REQUEST_DEADLINE_MS = 30_000;

/**
 * Longest one e2e test may run (`SWITCHYARD_E2E_TEST_TIMEOUT_MS` overrides it). node's own
 * `--test-timeout` bounds a whole file, not each test in it, so the e2e files take `test` from
 * here; package.json's `test:e2e` still bounds each file, as a last resort.
 */
export const TEST_TIMEOUT_MS = Number(process.env.SWITCHYARD_E2E_TEST_TIMEOUT_MS) || 60_000;

/** `node:test`'s `test` with the per-test timeout. */
export function test(name, fn) {
  return nodeTest(name, { timeout: TEST_TIMEOUT_MS }, fn);
}

/** `fetch` with the harness's deadline: rejects with the URL and the deadline when it passes. */
export async function fetchWithDeadline(url, init = {}, deadlineMs = REQUEST_DEADLINE_MS) {
  const signal = AbortSignal.timeout(deadlineMs);
  try {
    const res = await fetch(url, { ...init, signal });
    // Read the body under the same deadline, so a stream that stalls fails too.
    const body = await res.arrayBuffer();
    return new Response(res.status === 204 || res.status === 304 ? null : body, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  } catch (e) {
    if (signal.aborted) {
      throw new Error(`no complete answer from ${init.method ?? 'GET'} ${url} within ${deadlineMs} ms`);
    }
    throw e;
  }
}

/**
 * POSTs `body` (an object, or a string sent as is) to `path` with the router key, under the
 * deadline; returns the status, headers, text and the JSON when the text is JSON.
 */
export async function postJson(base, path, body, headers = {}) {
  const res = await fetchWithDeadline(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ROUTER_KEY}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, json, text };
}

/** `/healthz` with its details, which need a router key. */
export async function healthDetails(base) {
  return (await fetchWithDeadline(`${base}/healthz`, { headers: { authorization: `Bearer ${ROUTER_KEY}` } })).json();
}

/** The native CLI, as `cargo build --bin switchyard` leaves it. */
export const CLI = join(root, 'target/debug/switchyard');

/** The labelled rows the classifier tests train on (shared with the native `train` tests). */
export const CLASSIFIER_ROWS = join(root, 'tests/data/classifier_rows.jsonl');

/** `switchyard --config CONFIG --model-dir MODEL_DIR ARGS…`, its embeddings cache inside
 * MODEL_DIR; returns stdout, throws when it fails. */
export function runCli(configFile, modelDir, args) {
  return execFileSync(CLI, ['--config', configFile, '--model-dir', modelDir, ...args], {
    env: { ...process.env, XDG_CACHE_HOME: join(modelDir, 'cache') },
    stdio: 'pipe',
  });
}

/** One prompt routed by the Worker's /v1/route and by `switchyard route` with the same config
 * and model folder: the Worker's response (`res`, its `json` the decision) and the CLI's. */
export async function routeBothWays(base, configFile, modelDir, prompt) {
  const res = await postJson(base, '/v1/route', { model: 'auto', messages: [{ role: 'user', content: prompt }] });
  const native = JSON.parse(runCli(configFile, modelDir, ['route', prompt]));
  return { res, worker: res.json, native };
}

/** The official openai client pointed at the router, with the harness's deadline and no retries. */
export function openaiClient(base, apiKey = ROUTER_KEY) {
  return new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: REQUEST_DEADLINE_MS });
}

export function testConfig(upstreamUrl) {
  return `
[server]
auth_keys = ["ROUTER_KEY"]
admin_keys = ["ADMIN_KEY"]
cors_origins = ["${ALLOWED_ORIGIN}"]
max_body_bytes = 65536

[providers.fake]
kind = "openai"
base_url = "${upstreamUrl}/v1"
api_key = "FAKE_UPSTREAM_KEY"

[providers.claude]
kind = "anthropic"
base_url = "${upstreamUrl}/anthropic/v1"
api_key = "FAKE_UPSTREAM_KEY"

[providers.google]
kind = "gemini"
base_url = "${upstreamUrl}/gemini/v1beta"
api_key = "FAKE_UPSTREAM_KEY"

[providers.tunnel]
kind = "openai"
base_url = "${upstreamUrl}/v1"
headers = { "CF-Access-Client-Secret" = "FAKE_UPSTREAM_KEY" }

[providers.keyless]
kind = "openai"
base_url = "${upstreamUrl}/v1"

[providers.unset]
kind = "openai"
base_url = "${upstreamUrl}/v1"
api_key = "NEVER_SET_KEY"

[providers.down]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[models.small]
provider = "keyless"
upstream = "fake-small"
context_window = 8192
tier = "small"

[models.coder]
provider = "fake"
upstream = "fake-coder"
context_window = 32768

[models.big]
provider = "fake"
upstream = "fake-big"
context_window = 200000
tier = "large"

[models.mini]
provider = "fake"
upstream = "fake-mini"
context_window = 128000

[models.sonnet]
provider = "claude"
upstream = "fake-sonnet"
context_window = 200000
price = { input = 3.0, output = 15.0 }

[models.flash]
provider = "google"
upstream = "fake-flash"
context_window = 1000000
price = { input = 0.30, output = 2.50 }

[models.primary]
provider = "fake"
upstream = "fake-primary"
context_window = 8192
price = { input = 1.0, output = 2.0 }

[models.secondary]
provider = "fake"
upstream = "fake-secondary"
context_window = 8192
price = { input = 5.0, output = 10.0 }

[models.patient]
provider = "fake"
upstream = "fake-patient"
context_window = 8192
timeout_ms = 4000

[models.tiny]
provider = "keyless"
upstream = "fake-tiny"
context_window = 40

[models.home]
provider = "tunnel"
upstream = "fake-home"
context_window = 8192

[models.nokey]
provider = "unset"
context_window = 8192

[models.offline]
provider = "down"
context_window = 8192

[[routes]]
name = "long"
min_tokens = 2000
models = ["big"]

[[routes]]
name = "code"
description = "Programming: writing, fixing or explaining code, SQL and scripts"
models = ["coder", "big"]
keywords = ['(?i)\\b(sql|python)\\b']
unless = ['(?i)\\bjokes?\\b']

[[routes]]
name = "creative"
description = "Poems, stories, jokes and other creative writing"
models = ["mini"]
exemplars = ["Write a short poem about the sea", "Write a haiku about autumn leaves", "Tell me a bedtime story about a fox"]
threshold = 0.35

[[routes]]
name = "short"
max_tokens = 60
models = ["small"]

[[routes]]
name = "chat"
description = "Everyday questions and small talk"
models = ["mini"]

# Routes for the fallback tests, named in the model field.
[[routes]]
name = "failover"
models = ["primary", "secondary"]

[[routes]]
name = "skipping"
models = ["tiny", "nokey", "primary"]

[[routes]]
name = "down-first"
models = ["offline", "primary"]

[[routes]]
name = "claude-first"
models = ["sonnet", "flash"]

[[routes]]
name = "mixed"
models = ["sonnet", "primary"]

[[routes]]
name = "only-small"
models = ["tiny"]

[upstream]
timeout_ms = 1500
idle_timeout_ms = 1500
max_retries = 1
backoff_base_ms = 50
backoff_max_ms = 200
max_retry_after_ms = 1000

[default]
route = "chat"
`;
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts the fake upstream and wrangler dev; returns handles and a stop function. `config` is the
 * SWITCHYARD_CONFIG text, or a function of the fake upstream's URL that returns it; `assets` a
 * folder to serve as the model assets instead of model/.
 */
/** The decision log's D1 database (wrangler.toml). */
export const DECISION_LOG = 'switchyard-decisions';

/** Runs `npx wrangler ARGS` in the repository, quietly; resolves to its stdout. */
async function wrangler(args) {
  const env = { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' };
  const { stdout } = await promisify(execFile)('npx', ['wrangler', ...args], { cwd: root, env, maxBuffer: 64 << 20 });
  return stdout;
}

/**
 * Starts the fake upstream and `wrangler dev`. `config`: the Worker's config (text, or a
 * function of the fake's URL); `assets`: a model folder other than model/; `migrate: false`
 * leaves the decision log without its tables (as a broken D1 would be); `withoutDecisionLog`
 * runs the Worker with a wrangler.toml that has no D1 binding at all (for benchmarks);
 * `withoutConversations` one without the conversations' Durable Object binding (as an
 * unreachable object would be); `stateDir` keeps local state (D1, Durable Objects) in that folder,
 * so a second stack on it is a restart. The stack's `query(sql)` reads the local decision log.
 */
export async function startStack({ config, assets, migrate = true, withoutDecisionLog = false, withoutConversations = false, stateDir } = {}) {
  const fake = await startFakeUpstream();
  const port = await freePort();
  const inspectorPort = await freePort();
  const logs = join(root, 'tests/e2e/.logs');
  mkdirSync(logs, { recursive: true });
  const log = openSync(join(logs, `wrangler-${port}.log`), 'w');
  // An empty env file keeps a developer's own .dev.vars out of the test run.
  const scratch = mkdtempSync(join(tmpdir(), 'switchyard-e2e-'));
  const envFile = join(scratch, 'empty.env');
  writeFileSync(envFile, '');
  const state = stateDir ?? join(scratch, 'state');
  // wrangler resolves a config's paths from its folder: the copy sits beside wrangler.toml.
  const edited = withoutDecisionLog || withoutConversations;
  const wranglerToml = edited ? join(root, `.wrangler-edited-${process.pid}-${Date.now()}.toml`) : null;
  if (wranglerToml) {
    let text = readFileSync(join(root, 'wrangler.toml'), 'utf8');
    if (withoutDecisionLog) text = text.replace(/\[\[d1_databases\]\]\n(?:\w+ = .*\n)*/, '');
    if (withoutConversations) {
      text = text.replace(/\[\[durable_objects\.bindings\]\]\n(?:\w+ = .*\n)*/, '').replace(/\[\[migrations\]\]\n(?:\w+ = .*\n)*/, '');
    }
    writeFileSync(wranglerToml, text);
  }
  if (migrate) await wrangler(['d1', 'migrations', 'apply', DECISION_LOG, '--local', '--persist-to', state]);
  const args = [
    'wrangler', 'dev',
    '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
    '--show-interactive-dev-session=false', '--persist-to', state, '--test-scheduled',
    '--env-file', envFile,
    '--var', `SWITCHYARD_CONFIG:${typeof config === 'function' ? config(fake.url) : config ?? testConfig(fake.url)}`,
    ...(assets ? ['--assets', assets] : []),
    ...(wranglerToml ? ['--config', wranglerToml] : []),
    '--var', `ROUTER_KEY:${ROUTER_KEY}`,
    '--var', `ADMIN_KEY:${ADMIN_KEY}`,
    '--var', `FAKE_UPSTREAM_KEY:${UPSTREAM_KEY}`,
  ];
  const child = spawn('npx', args, {
    cwd: root,
    env: { ...process.env, SWITCHYARD_SKIP_BUILD: '1', WRANGLER_SEND_METRICS: 'false', CI: '1' },
    stdio: ['ignore', log, log],
    detached: true,
  });
  const base = `http://127.0.0.1:${port}`;
  const stop = async () => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {}
    if (wranglerToml) rmSync(wranglerToml, { force: true });
    await fake.close();
  };
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`wrangler dev exited with ${child.exitCode}; see tests/e2e/.logs/wrangler-${port}.log`);
    }
    try {
      await fetchWithDeadline(`${base}/healthz`, {}, 5_000);
      break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer within 90 s; see tests/e2e/.logs/wrangler-${port}.log`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const query = async (sql) => {
    const out = await wrangler(['d1', 'execute', DECISION_LOG, '--local', '--persist-to', state, '--json', '--command', sql]);
    return JSON.parse(out)[0].results;
  };
  return { base, fake, stop, query, inspectorPort, logFile: join(logs, `wrangler-${port}.log`) };
}
