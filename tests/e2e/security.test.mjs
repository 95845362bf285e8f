// A public endpoint that holds (issue H): auth that fails closed, bounded work per request, and
// nothing of the operator's echoed to clients. Each case starts the stack its config needs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe } from 'node:test';
import { fetchWithDeadline, postJson, startStack, test, testConfig } from './harness.mjs';

/** Lets wrangler write out what the Worker logged. */
const flushed = () => new Promise((resolve) => setTimeout(resolve, 500));

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
