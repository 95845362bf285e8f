// End-to-end: `switchyard distill` labels a prompt corpus with the config's LLM router, natively,
// against the fake upstream (no Worker needed): constrained requests in the provider's format,
// rate limits waited out, rows appended as they come, a second run resumes instead of paying
// again, and a refused key stops the run.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startFakeUpstream } from './fake-upstream.mjs';
import { test, testConfig, UPSTREAM_KEY } from './harness.mjs';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cli = join(root, 'target/debug/switchyard');

describe('switchyard distill', () => {
  let fake;
  let dir;
  let config;
  before(async () => {
    fake = await startFakeUpstream();
    dir = mkdtempSync(join(tmpdir(), 'switchyard-distill-'));
    config = join(dir, 'config.toml');
    writeFileSync(config, `${testConfig(fake.url)}\n[llm_router]\nmodel = "primary"\nroutes = ["code", "creative", "chat"]\n`);
  });
  after(async () => {
    await fake?.close();
  });

  const distill = (prompts, out, env = {}) =>
    promisify(execFile)(cli, ['--config', config, 'distill', prompts, '--out', out, '--concurrency', '2'], {
      env: { ...process.env, FAKE_UPSTREAM_KEY: UPSTREAM_KEY, ...env },
    });

  test('labels every prompt, waits out a rate limit, and resumes without asking again', async () => {
    const prompts = join(dir, 'prompts.jsonl');
    const out = join(dir, 'labelled.jsonl');
    const texts = ['Fix my Rust borrow error', 'A haiku about rain', 'What time is it in Lima?', 'A haiku about rain'];
    writeFileSync(prompts, texts.map((text) => JSON.stringify({ text, label: 'ignored' })).join('\n'));
    fake.reset();
    fake.script({ model: 'fake-primary', status: 429, headers: { 'retry-after': '1' } });
    for (let i = 0; i < 3; i++) fake.script({ model: 'fake-primary', answer: { route: 'chat' } });
    const { stderr } = await distill(prompts, out);
    assert.match(stderr, /3 prompts to label with "primary", 0 already in/);
    assert.match(stderr, /labelled 3, declined 0, cost \$0\.0000/);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    assert.deepEqual(rows.map((r) => r.text).sort(), [...new Set(texts)].sort());
    assert.ok(rows.every((r) => r.label === 'chat' && r.source === 'distill'));
    // The 429 was retried: four calls for three prompts, each constrained to the routes.
    const calls = fake.requests();
    assert.equal(calls.length, 4);
    assert.deepEqual(calls[0].body.response_format.json_schema.schema.properties.route.enum, ['code', 'creative', 'chat']);
    assert.equal(calls[0].headers.authorization, `Bearer ${UPSTREAM_KEY}`);

    // A second run finds everything labelled and calls nothing.
    fake.reset();
    const again = await distill(prompts, out);
    assert.match(again.stderr, /0 prompts to label with "primary", 3 already in/);
    assert.equal(fake.requests().length, 0);
  });

  test('an answer that is not a route is declined; a refused key stops the run', async () => {
    const prompts = join(dir, 'more.jsonl');
    const out = join(dir, 'more-labelled.jsonl');
    writeFileSync(prompts, ['one', 'two'].map((text) => JSON.stringify({ text })).join('\n'));
    fake.reset();
    fake.script({ model: 'fake-primary', answer: { route: 'legal' } });
    fake.script({ model: 'fake-primary', answer: { route: 'code' } });
    const { stderr } = await promisify(execFile)(cli, ['--config', config, 'distill', prompts, '--out', out, '--concurrency', '1'], {
      env: { ...process.env, FAKE_UPSTREAM_KEY: UPSTREAM_KEY },
    });
    assert.match(stderr, /labelled 1, declined 1/);
    assert.match(stderr, /declined 1: the LLM router chose "legal", which is not a route/);

    fake.reset();
    fake.script({ model: 'fake-primary', status: 401 });
    await assert.rejects(distill(prompts, join(dir, 'refused.jsonl')), /stopped: .*run again to resume/);
  });
});
