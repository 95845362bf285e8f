// The playground page (issue F): served at / from the static assets beside the Worker, while the
// model files in the same assets stay the Worker's own.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { fetchWithDeadline, startStack, test } from './harness.mjs';

describe('the playground', () => {
  let stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  test('is served at / without a key, with headers that keep it to its own origin', async () => {
    const res = await fetchWithDeadline(`${stack.base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    assert.match(await res.text(), /<!doctype html>/i);
    const csp = res.headers.get('content-security-policy');
    for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(directive), `${directive} in ${csp}`);
    }
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    const post = await fetchWithDeadline(`${stack.base}/`, { method: 'POST', body: '{}' });
    assert.equal(post.status, 405);
  });

  test('does not hand out the model files that share its assets, however the path is spelled', async () => {
    for (const path of [
      '/encoder.onnx',
      '/tokenizer.json',
      '/router.static',
      '/index.json',
      '/playground/../encoder.onnx',
      '/playground/%2e%2e/encoder.onnx',
      '/playground/..%2fencoder.onnx',
      '/playground/nothing.js',
    ]) {
      const res = await fetchWithDeadline(`${stack.base}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal((await res.json()).error.code, 'not_found', path);
    }
  });
});
