// No test can hang: a request the Worker leaves unanswered, or a test that never ends, fails in
// seconds with its name instead of holding the run (and CI) until it is killed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fetchWithDeadline, test } from './harness.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('the harness gives every request a deadline', () => {
  let server;
  let base;
  before(async () => {
    // Answers nothing on /silent; sends headers and then stalls on /stalled.
    server = http.createServer((req, res) => {
      if (req.url === '/stalled') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: {}\n\n');
      }
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(() => server.closeAllConnections?.() ?? server.close());

  for (const path of ['/silent', '/stalled']) {
    test(`a request to ${path} fails at the deadline, naming the URL`, async () => {
      const started = performance.now();
      await assert.rejects(fetchWithDeadline(`${base}${path}`, { method: 'POST' }, 300), (err) => {
        assert.match(err.message, new RegExp(`no complete answer from POST ${base}${path} within 300 ms`));
        return true;
      });
      assert.ok(performance.now() - started < 5_000);
    });
  }
});

test('each e2e test has a timeout: one that never ends fails with its name, the others still run', async () => {
  // The runner's flags as the e2e run passes them: a file-level timeout as a last resort, and
  // an exit once the tests are done even if a hung request still holds a socket.
  const script = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')).scripts['test:e2e'];
  assert.match(readFileSync(`${root}/scripts/test.sh`, 'utf8'), /npm run --silent test:e2e/);
  const flags = script.split(/\s+/).filter((arg) => arg.startsWith('--test-'));
  assert.ok(flags.includes('--test-force-exit'), script);
  assert.ok(flags.some((f) => /^--test-timeout=\d+$/.test(f)), script);
  // The harness's per-test timeout, shortened, must stop the fixture long before the file's. The
  // child must not see this run's NODE_TEST_CONTEXT, or node takes it for a nested run and skips it.
  const { NODE_TEST_CONTEXT, ...env } = process.env;
  const child = spawn(process.execPath, ['--test', ...flags, '--test-reporter=tap', 'tests/e2e/fixtures/never-ends.mjs'], {
    cwd: root,
    env: { ...env, SWITCHYARD_E2E_TEST_TIMEOUT_MS: '1000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise((resolve) => child.on('close', resolve));
  clearTimeout(killer);
  assert.notEqual(code, null, `the hanging test was not stopped by its timeout:\n${output}`);
  assert.notEqual(code, 0, output);
  assert.match(output, /^ok \d+ - a test that answers$/m, output);
  assert.match(output, /^not ok \d+ - a test waiting for an answer that never comes$/m, output);
  assert.match(output, /test timed out after 1000ms/, output);
});
