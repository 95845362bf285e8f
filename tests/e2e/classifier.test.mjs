// End-to-end: a classifier head trained by the native CLI routes in the Worker exactly as it
// routes natively. The head is trained on tests/data/classifier_rows.jsonl (poems, code questions,
// small talk: routes of the test config, shared with the native `train` test), served with the
// encoder from a scratch assets folder, and the Worker's /v1/route is compared with
// `switchyard route`.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLASSIFIER_ROWS, routeBothWays, runCli, startStack, test, testConfig } from './harness.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const withClassifier = (url) => `${testConfig(url)}\n[classifier]\npath = "classifier.json"\nmin_confidence = 0.5\n`;

describe('a trained classifier head in the Worker', () => {
  let stack;
  let scratch;
  let configFile;
  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'switchyard-classifier-'));
    for (const file of ['encoder.onnx', 'tokenizer.json']) copyFileSync(join(root, 'model', file), join(scratch, file));
    configFile = join(scratch, 'config.toml');
    // Training needs the routes, not the upstream: any URL will do in the file.
    writeFileSync(configFile, withClassifier('http://127.0.0.1:9'));
    runCli(configFile, scratch, ['train', CLASSIFIER_ROWS]);
    stack = await startStack({ config: withClassifier, assets: scratch });
  });
  after(async () => {
    await stack?.stop();
  });

  test('routes held-out prompts as the CLI does: the head at its route\'s place, rules before it', async () => {
    // In the test config `code` and `creative` come before the `short` rule (≤ 60 tokens), which
    // comes before `chat`: the head's pick of `chat` cannot outrank that rule.
    for (const [prompt, route, level] of [
      ['Write a short poem about the ocean at night', 'creative', 'classifier'],
      ['My Ruby function crashes on empty input, how do I fix it?', 'code', 'classifier'],
      ['What is the capital of Australia?', 'short', 'rules'],
    ]) {
      const { res, worker, native } = await routeBothWays(stack.base, configFile, scratch, prompt);
      assert.equal(res.status, 200, JSON.stringify(worker));
      assert.deepEqual([worker.route, worker.level], [route, level], JSON.stringify(worker));
      assert.equal(res.headers.get('x-switchyard-level'), level);
      assert.deepEqual([native.route, native.level], [worker.route, worker.level]);
      assert.equal(native.signals.classifier.route, worker.signals.classifier.route);
      // The encoder's integer matmuls are identical; its other float steps may round apart.
      assert.ok(Math.abs(native.signals.classifier.confidence - worker.signals.classifier.confidence) < 1e-3);
    }
  });
});
