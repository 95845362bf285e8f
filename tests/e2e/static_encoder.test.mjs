// End-to-end: the static student, tuned end to end by the native CLI (`train --tune-encoder`),
// routes in the Worker from an assets folder that holds nothing else (no MiniLM, no
// tokenizer.json). The head trained with it decides in the Worker as it decides natively; its
// exemplar scores match the CLI's; /v1/embeddings, which serves MiniLM only, says it is off;
// /healthz shows the student's load.
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CLASSIFIER_ROWS, healthDetails, postJson, routeBothWays, runCli, startStack, test, testConfig } from './harness.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const withStudent = (url, table = 'router.tuned.static') =>
  `${testConfig(url)}\n[semantic]\nencoder = "${table}"\n\n[classifier]\npath = "classifier.json"\nmin_confidence = 0.5\n`;

describe('the static student in the Worker', () => {
  let stack;
  let scratch;
  let configFile;
  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'switchyard-static-'));
    copyFileSync(join(root, 'model', 'router.static'), join(scratch, 'router.static'));
    // Trained from the distilled table, tuned end to end into router.tuned.static, which the
    // Worker and the CLI then route with.
    const trainingConfig = join(scratch, 'training.toml');
    writeFileSync(trainingConfig, withStudent('http://127.0.0.1:9', 'router.static'));
    runCli(trainingConfig, scratch, ['train', '--tune-encoder', 'router.tuned.static', CLASSIFIER_ROWS]);
    configFile = join(scratch, 'config.toml');
    writeFileSync(configFile, withStudent('http://127.0.0.1:9'));
    stack = await startStack({ config: withStudent, assets: scratch });
  });
  after(async () => {
    await stack?.stop();
  });

  test('routes as the CLI does, with the same classifier and exemplar scores', async () => {
    for (const [prompt, route, level] of [
      ['Write a short poem about the ocean at night', 'creative', 'classifier'],
      ['My Ruby function crashes on empty input, how do I fix it?', 'code', 'classifier'],
      ['What is the capital of Australia?', 'short', 'rules'],
    ]) {
      const { res, worker, native } = await routeBothWays(stack.base, configFile, scratch, prompt);
      assert.equal(res.status, 200, JSON.stringify(worker));
      assert.deepEqual([worker.route, worker.level], [route, level], JSON.stringify(worker));
      assert.deepEqual([native.route, native.level], [worker.route, worker.level]);
      assert.equal(native.signals.classifier.route, worker.signals.classifier.route);
      // The same table and the same sums: natively and in wasm the numbers agree.
      assert.ok(Math.abs(native.signals.classifier.confidence - worker.signals.classifier.confidence) < 1e-5);
      for (const [name, score] of Object.entries(native.scores)) {
        assert.ok(Math.abs(score - worker.scores[name]) < 1e-5, JSON.stringify([native.scores, worker.scores]));
      }
    }
  });

  test('/healthz shows the student loaded step by step, and /v1/embeddings says MiniLM is not served', async () => {
    const health = await healthDetails(stack.base);
    assert.equal(health.encoder, 'ready');
    assert.deepEqual(Object.keys(health.encoder_load_phases_ms).sort(), ['classifier', 'decode', 'fetch', 'index']);
    const res = await postJson(stack.base, '/v1/embeddings', { model: 'all-MiniLM-L6-v2', input: 'hello' });
    assert.equal(res.status, 404, JSON.stringify(res.json));
    assert.equal(res.json.error.code, 'model_not_found');
    assert.match(res.json.error.message, /static encoder/);
  });
});
