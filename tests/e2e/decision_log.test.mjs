// End-to-end: the decision log in D1 through `wrangler dev` (local D1, persisted to a temp dir,
// tables from migrations/). Every routed chat request gets an id in x-switchyard-decision-id and
// one row, written after the response; the routing text is kept only as [log] store_text allows;
// a broken database never fails a request.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe } from 'node:test';
import { ADMIN_KEY, fetchWithDeadline, openaiClient, postJson, ROUTER_KEY, startStack, test, testConfig } from './harness.mjs';

/** The row for `id`, once written (the write runs after the response). */
async function rowOf(stack, id) {
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  for (let i = 0; i < 20; i++) {
    const rows = await stack.query(`SELECT * FROM decisions WHERE id = '${id}'`);
    if (rows.length) return rows[0];
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`no row for decision ${id}`);
}

const SECRET_PROMPT = 'Write a short poem about the sea for my aunt Philomena';

describe('the decision log, with the default store_text = "none"', () => {
  let stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack?.stop();
  });

  test('a whole answer: one row with the id from the header, nothing of the text', async () => {
    const { data, response } = await openaiClient(stack.base)
      .chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: SECRET_PROMPT }] })
      .withResponse();
    const row = await rowOf(stack, response.headers.get('x-switchyard-decision-id'));
    assert.equal(row.route, response.headers.get('x-switchyard-route'));
    assert.equal(row.level, response.headers.get('x-switchyard-level'));
    assert.equal(row.model, response.headers.get('x-switchyard-model'));
    assert.deepEqual([row.status, row.outcome, row.stream], [200, 'complete', 0]);
    assert.deepEqual(JSON.parse(row.usage), { prompt_tokens: data.usage.prompt_tokens, completion_tokens: data.usage.completion_tokens });
    assert.ok(row.prompt_tokens > 0);
    assert.ok(JSON.parse(row.reasons).length > 0);
    assert.ok('parse' in JSON.parse(row.timing) && 'upstream' in JSON.parse(row.timing));
    assert.equal(row.attempts, response.headers.get('x-switchyard-attempts'));
    assert.deepEqual([row.text, row.text_sha256], [null, null]);
    assert.doesNotMatch(JSON.stringify(row), /Philomena/);
  });

  test('a stream: the row is written when it ends, with its usage', async () => {
    const stream = await openaiClient(stack.base)
      .chat.completions.create({ model: 'auto', stream: true, messages: [{ role: 'user', content: 'What is the capital of Peru?' }] })
      .withResponse();
    let text = '';
    for await (const chunk of stream.data) text += chunk.choices[0]?.delta?.content ?? '';
    assert.ok(text.length > 0);
    const row = await rowOf(stack, stream.response.headers.get('x-switchyard-decision-id'));
    assert.deepEqual([row.stream, row.outcome, row.status], [1, 'complete', 200]);
    assert.ok(JSON.parse(row.usage).completion_tokens > 0);
  });

  test('an upstream error: the row says so, with every attempt', async () => {
    stack.fake.reset();
    for (let i = 0; i < 4; i++) stack.fake.script({ status: 500 });
    const res = await fetch(`${stack.base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ROUTER_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'failover', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(res.status, 500);
    const row = await rowOf(stack, res.headers.get('x-switchyard-decision-id'));
    assert.deepEqual([row.route, row.level, row.status, row.outcome], ['failover', 'explicit', 500, 'error']);
    assert.equal(row.attempts, res.headers.get('x-switchyard-attempts'));
  });

  test('feedback is stored with its decision; unknown ids get a 404, bad fields a 400, no key a 401', async () => {
    const { response } = await openaiClient(stack.base)
      .chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'Tell me about tides' }] })
      .withResponse();
    const id = response.headers.get('x-switchyard-decision-id');
    await rowOf(stack, id);
    const sent = await postJson(stack.base, '/v1/feedback', { decision_id: id, rating: 'bad', route: 'creative' });
    assert.equal(sent.status, 200, JSON.stringify(sent.json));
    assert.deepEqual(sent.json, { object: 'feedback', decision_id: id, rating: 'bad', route: 'creative' });
    const row = await rowOf(stack, id);
    assert.deepEqual([row.feedback_rating, row.feedback_route], ['bad', 'creative']);
    assert.ok(row.feedback_at >= row.created_at);

    const unknown = await postJson(stack.base, '/v1/feedback', { decision_id: '00000000-0000-4000-8000-000000000000', rating: 'good' });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.param, 'decision_id');
    const badRoute = await postJson(stack.base, '/v1/feedback', { decision_id: id, rating: 'good', route: 'legal' });
    assert.deepEqual([badRoute.status, badRoute.json.error.param], [400, 'route']);
    const noKey = await postJson(stack.base, '/v1/feedback', { decision_id: id, rating: 'good' }, { authorization: '' });
    assert.equal(noKey.status, 401);
  });

  test('GET /v1/admin/decisions: JSON Lines, filtered and paged, for admin keys only', async () => {
    const get = (query, key = ADMIN_KEY) =>
      fetchWithDeadline(`${stack.base}/v1/admin/decisions${query}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
    const lines = async (res) => (await res.text()).split('\n').filter(Boolean).map((line) => JSON.parse(line));
    const all = await get('?limit=1000');
    assert.equal(all.status, 200);
    assert.match(all.headers.get('content-type'), /application\/x-ndjson/);
    const rows = await lines(all);
    assert.ok(rows.length >= 3, `${rows.length} rows`);
    assert.equal(all.headers.get('x-switchyard-next-cursor'), null);
    assert.ok(Array.isArray(rows[0].reasons) && typeof rows[0].signals === 'object' && typeof rows[0].stream === 'boolean');
    // Oldest first; two at a time, the cursor walks the same rows.
    const walked = [];
    let cursor = '';
    for (let page = 0; page < 50; page++) {
      const res = await get(`?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      walked.push(...(await lines(res)));
      cursor = res.headers.get('x-switchyard-next-cursor');
      if (!cursor) break;
    }
    assert.deepEqual(walked.map((r) => r.id), rows.map((r) => r.id));
    const explicit = await lines(await get('?level=explicit'));
    assert.ok(explicit.length >= 1 && explicit.every((r) => r.level === 'explicit'));
    const since = await lines(await get(`?since=${rows.at(-1).created_at}`));
    assert.ok(since.every((r) => r.created_at >= rows.at(-1).created_at));

    assert.equal((await get('?level=loud')).status, 400);
    assert.equal((await get('?verbose=1')).status, 400);
    // A router key cannot read the log; no key or a wrong one is a 401.
    const router = await get('', ROUTER_KEY);
    assert.equal(router.status, 403);
    assert.match((await router.json()).error.message, /router key cannot use the admin endpoints/);
    assert.equal((await get('', null)).status, 401);
    assert.equal((await get('', 'sk-guess')).status, 401);
  });

  test('GET /v1/stats: the window counted from the log, for admin keys only', async () => {
    const get = (query, key = ADMIN_KEY) =>
      fetchWithDeadline(`${stack.base}/v1/stats${query}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
    const rows = await stack.query('SELECT route, model, level FROM decisions');
    const res = await get('?hours=1');
    assert.equal(res.status, 200);
    const stats = await res.json();
    assert.equal(stats.decisions, rows.length);
    assert.equal(stats.truncated, false);
    const explicit = rows.filter((r) => r.level === 'explicit').length;
    assert.equal(stats.by_level.explicit, explicit);
    assert.equal(Object.values(stats.by_route).reduce((a, b) => a + b, 0), rows.length);
    assert.ok(stats.errors >= 1, 'the upstream error above is counted');
    assert.ok(typeof stats.routing_ms.p50 === 'number' && stats.routing_ms.p95 >= stats.routing_ms.p50);
    assert.equal(typeof stats.cost.saved_usd, 'number');
    assert.equal(stats.window.to_ms - stats.window.from_ms, 3_600_000);
    assert.equal((await get('?hours=0')).status, 400);
    assert.equal((await get('', ROUTER_KEY)).status, 403);
    assert.equal((await get('', null)).status, 401);
  });

  test('the daily clean-up deletes rows past retention_days and keeps the others', async () => {
    const columns = 'id, created_at, route, model, level, scores, signals, reasons, prompt_tokens, timing, stream, status, outcome';
    const old = Date.now() - 31 * 86_400_000;
    await stack.query(`INSERT INTO decisions (${columns}) VALUES ('expired-row', ${old}, 'chat', 'mini', 'default', '{}', '{}', '[]', 1, '{}', 0, 200, 'complete')`);
    const before = (await stack.query('SELECT count(*) AS n FROM decisions'))[0].n;
    const res = await fetch(`${stack.base}/__scheduled?cron=${encodeURIComponent('17 3 * * *')}`);
    assert.equal(res.status, 200);
    let left;
    for (let i = 0; i < 20; i++) {
      left = (await stack.query('SELECT id FROM decisions')).map((r) => r.id);
      if (!left.includes('expired-row')) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.ok(!left.includes('expired-row'));
    assert.equal(left.length, before - 1);
  });
});

describe('the decision log with store_text = "full"', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: (url) => `${testConfig(url)}\n[log]\nstore_text = "full"\n` });
  });
  after(async () => {
    await stack?.stop();
  });

  test('keeps the routing text and its SHA-256', async () => {
    const { response } = await openaiClient(stack.base)
      .chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: SECRET_PROMPT }] })
      .withResponse();
    const row = await rowOf(stack, response.headers.get('x-switchyard-decision-id'));
    assert.equal(row.text, SECRET_PROMPT);
    const { createHash } = await import('node:crypto');
    assert.equal(row.text_sha256, createHash('sha256').update(SECRET_PROMPT).digest('hex'));
  });
});

describe('a decision log that cannot be written', () => {
  let stack;
  before(async () => {
    stack = await startStack({ migrate: false });
  });
  after(async () => {
    await stack?.stop();
  });

  test('does not fail the request; the failure is logged', async () => {
    const { data, response } = await openaiClient(stack.base)
      .chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'hello there' }] })
      .withResponse();
    assert.match(data.choices[0].message.content, /^echo from/);
    const id = response.headers.get('x-switchyard-decision-id');
    const linesOf = () => readFileSync(stack.logFile, 'utf8').split('\n').filter((line) => line.includes(`"decision_id":"${id}"`));
    for (let i = 0; i < 20 && linesOf().length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    // The decision's own line, then the failed write, both with the id.
    const [decision, failure] = linesOf();
    assert.match(decision ?? '', /"event":"decision"/);
    assert.match(failure ?? '', /decision_log_failed/);
  });
});

describe('switchyard export', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const cli = join(root, 'target/debug/switchyard');
  let stack;
  before(async () => {
    // The LLM router decides what rules and meaning leave open; the log keeps the text.
    const config = (url) =>
      `${testConfig(url).replace('[[routes]]\nname = "short"\nmax_tokens = 60\nmodels = ["small"]\n', '')}
[llm_router]
model = "primary"
routes = ["code", "creative", "chat"]

[log]
store_text = "full"
`;
    stack = await startStack({ config });
  });
  after(async () => {
    await stack?.stop();
  });

  const chat = async (content) => {
    const { response } = await openaiClient(stack.base)
      .chat.completions.create({ model: 'auto', messages: [{ role: 'user', content }] })
      .withResponse();
    const id = response.headers.get('x-switchyard-decision-id');
    await rowOf(stack, id);
    return { id, level: response.headers.get('x-switchyard-level') };
  };

  test('turns LLM decisions and feedback corrections into training rows', async () => {
    stack.fake.script({ model: 'fake-primary', answer: { route: 'creative' } });
    const llm = await chat('Something nice for my grandmother birthday card');
    assert.equal(llm.level, 'llm');
    // A rule decision, corrected by feedback; and one nobody labelled.
    const corrected = await chat('Explain the SQL of love in a sonnet');
    assert.equal(corrected.level, 'rules');
    const sent = await postJson(stack.base, '/v1/feedback', { decision_id: corrected.id, rating: 'bad', route: 'creative' });
    assert.equal(sent.status, 200);
    await chat('Write a SQL query that counts orders per day');

    const { stdout, stderr } = await promisify(execFile)(cli, ['export', '--url', stack.base], {
      env: { ...process.env, SWITCHYARD_ADMIN_KEY: ADMIN_KEY },
    });
    const rows = stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line));
    assert.deepEqual(rows, [
      { text: 'Something nice for my grandmother birthday card', label: 'creative', source: 'llm' },
      { text: 'Explain the SQL of love in a sonnet', label: 'creative', source: 'feedback' },
    ]);
    assert.match(stderr, /exported 2 rows: 1 from LLM-router decisions, 1 from feedback/);

    // A router key cannot export.
    await assert.rejects(
      promisify(execFile)(cli, ['export', '--url', stack.base], { env: { ...process.env, SWITCHYARD_ADMIN_KEY: ROUTER_KEY } }),
      /answered 403: A router key cannot use the admin endpoints/,
    );
  });
});
