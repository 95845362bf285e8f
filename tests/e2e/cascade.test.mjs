// End-to-end: level 4's single-turn cascade through `wrangler dev`, against the fake upstream
// scripted to grade answers low or high. A low grade throws the cheap answer away and the client
// sees only the strong one, whole or streamed; a high grade keeps it, and a streamed answer is
// held until the verdict, then streamed. Each rater (self, a judge on another API, the answer's
// log-probabilities) is exercised; every step is in x-switchyard-cascade, its cost in
// x-switchyard-cost-usd, its time in Server-Timing, and its row in the decision log.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { openaiClient, startStack, test, testConfig } from './harness.mjs';

const withCascades = (url) => `${testConfig(url)}
[[routes]]
name = "cascade-self"
models = ["secondary"]
cascade = { chain = ["primary", "secondary"], score = "self", min_score = 0.7 }

[[routes]]
name = "cascade-judge"
models = ["secondary"]
cascade = { chain = ["primary", "secondary"], score = "judge:sonnet", min_score = 0.7 }

[[routes]]
name = "cascade-logprobs"
models = ["secondary"]
cascade = { chain = ["primary", "secondary"], score = "logprobs", min_score = 0.5 }
`;

const ask = (route, extra = {}) => ({ model: route, messages: [{ role: 'user', content: 'What is the boiling point of water?' }], ...extra });

/** The upstream requests made for `upstream` (its model name at the fake). */
const requestsTo = (stack, upstream) => stack.fake.requests().filter((r) => r.model === upstream);

/** Server-Timing's phases as { name: ms }. */
const phases = (header) => Object.fromEntries(header.split(', ').map((p) => [p.split(';')[0], Number(p.split('dur=')[1])]));

/** The steps of x-switchyard-cascade as [{ model, score, verdict, cost_usd }]. */
const steps = (header) =>
  header.split(', ').map((step) => {
    const [model, ...fields] = step.split(';');
    return { model, ...Object.fromEntries(fields.map((f) => f.split('='))) };
  });

describe('a single-turn cascade', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: withCascades });
  });
  after(async () => {
    await stack?.stop();
  });

  test('a low self-grade throws the cheap answer away: the client sees only the strong one', async () => {
    stack.fake.reset();
    stack.fake.script({ model: 'fake-primary', answer: 'WEAK ANSWER' });
    stack.fake.script({ model: 'fake-primary', answer: { grade: 2 } });
    const { data, response } = await openaiClient(stack.base).chat.completions.create(ask('cascade-self')).withResponse();
    assert.match(data.choices[0].message.content, /^echo from fake-secondary/);
    assert.equal(response.headers.get('x-switchyard-model'), 'secondary');
    const [cheap, strong] = steps(response.headers.get('x-switchyard-cascade'));
    assert.deepEqual([cheap.model, cheap.score, cheap.verdict], ['primary', '0.20', 'rejected']);
    assert.deepEqual([strong.model, strong.verdict], ['secondary', 'final']);
    // Both answers and the grading call were paid for: primary's answer (10 in, 2 out) and grade
    // (10 in, 1 out) at $1/$2 per million, secondary's answer at $5/$10.
    const paid = Number(cheap.cost_usd) + Number(strong.cost_usd);
    assert.ok(Math.abs(Number(response.headers.get('x-switchyard-cost-usd')) - paid) < 1e-12);
    assert.ok(Math.abs(Number(cheap.cost_usd) - (10 * 1 + 2 * 2 + 10 * 1 + 1 * 2) / 1e6) < 1e-12, cheap.cost_usd);
    assert.ok('cascade' in phases(response.headers.get('server-timing')));
    // The grading call: the question and the answer between markers, a strict 0–10 schema.
    const [answered, graded] = requestsTo(stack, 'fake-primary');
    assert.equal(answered.body.stream, false);
    assert.equal(graded.body.response_format.json_schema.strict, true);
    assert.match(graded.body.messages[1].content, /<answer>\nWEAK ANSWER\n<\/answer>/);
  });

  test('a low grade on a stream: nothing of the weak answer reaches the client', async () => {
    stack.fake.reset();
    stack.fake.script({ model: 'fake-primary', answer: 'WEAK ANSWER' });
    stack.fake.script({ model: 'fake-primary', answer: { grade: 1 } });
    const { data: stream, response } = await openaiClient(stack.base)
      .chat.completions.create(ask('cascade-self', { stream: true }))
      .withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.match(text, /^echo from fake-secondary/);
    assert.doesNotMatch(text, /WEAK/);
    assert.equal(response.headers.get('x-switchyard-model'), 'secondary');
    assert.deepEqual(steps(response.headers.get('x-switchyard-cascade')).map((s) => s.verdict), ['rejected', 'final']);
    // The cheap model was asked for a whole answer; the strong one streams as asked.
    assert.equal(requestsTo(stack, 'fake-primary')[0].body.stream, false);
    assert.equal(requestsTo(stack, 'fake-secondary')[0].body.stream, true);
  });

  test('a high grade keeps the cheap answer: held until the verdict, then streamed with its usage', async () => {
    stack.fake.reset();
    stack.fake.script({ model: 'fake-primary', answer: 'One hundred degrees Celsius at sea level.' });
    stack.fake.script({ model: 'fake-primary', answer: { grade: 9 } });
    const { data: stream, response } = await openaiClient(stack.base)
      .chat.completions.create(ask('cascade-self', { stream: true, stream_options: { include_usage: true } }))
      .withResponse();
    let text = '';
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, 'One hundred degrees Celsius at sea level.');
    assert.equal(finish, 'stop');
    assert.equal(usage.completion_tokens, 7);
    assert.equal(response.headers.get('x-switchyard-model'), 'primary');
    const [step] = steps(response.headers.get('x-switchyard-cascade'));
    assert.deepEqual([step.model, step.score, step.verdict], ['primary', '0.90', 'accepted']);
    assert.equal(requestsTo(stack, 'fake-secondary').length, 0);
  });

  test('a high grade, not streamed, answers from the cheap model alone', async () => {
    stack.fake.reset();
    stack.fake.script({ model: 'fake-primary', answer: 'Good answer.' });
    stack.fake.script({ model: 'fake-primary', answer: { grade: 7 } });
    const { data, response } = await openaiClient(stack.base).chat.completions.create(ask('cascade-self')).withResponse();
    assert.equal(data.choices[0].message.content, 'Good answer.');
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=ok');
    assert.equal(steps(response.headers.get('x-switchyard-cascade'))[0].verdict, 'accepted');
  });

  test('a judge on another API grades with its forced tool', async () => {
    stack.fake.reset();
    stack.fake.script({ model: 'fake-sonnet', answer: { grade: 3 } });
    const { data, response } = await openaiClient(stack.base).chat.completions.create(ask('cascade-judge')).withResponse();
    assert.match(data.choices[0].message.content, /^echo from fake-secondary/);
    const [judged] = steps(response.headers.get('x-switchyard-cascade'));
    assert.deepEqual([judged.model, judged.score, judged.verdict], ['primary', '0.30', 'rejected']);
    const [grading] = requestsTo(stack, 'fake-sonnet');
    assert.deepEqual(grading.body.tool_choice, { type: 'tool', name: 'grade_answer' });
  });

  test('log-probabilities grade without a second call', async () => {
    stack.fake.reset();
    stack.fake.script({ model: 'fake-primary', logprob: -0.1 });
    let { response } = await openaiClient(stack.base).chat.completions.create(ask('cascade-logprobs')).withResponse();
    assert.equal(response.headers.get('x-switchyard-model'), 'primary');
    assert.equal(steps(response.headers.get('x-switchyard-cascade'))[0].score, Math.exp(-0.1).toFixed(2));
    assert.equal(requestsTo(stack, 'fake-primary').length, 1);
    assert.equal(requestsTo(stack, 'fake-primary')[0].body.logprobs, true);

    stack.fake.script({ model: 'fake-primary', logprob: -3 });
    ({ response } = await openaiClient(stack.base).chat.completions.create(ask('cascade-logprobs')).withResponse());
    assert.equal(response.headers.get('x-switchyard-model'), 'secondary');
  });

  test('a rater that fails counts as a low grade; a strong model that fails leaves the cheap answer', async () => {
    stack.fake.reset();
    stack.fake.script({ model: 'fake-primary', answer: 'Cheap answer.' });
    stack.fake.script({ model: 'fake-primary', status: 400 });
    stack.fake.script({ model: 'fake-secondary', status: 500 });
    stack.fake.script({ model: 'fake-secondary', status: 500 });
    const { data, response } = await openaiClient(stack.base).chat.completions.create(ask('cascade-self')).withResponse();
    assert.equal(data.choices[0].message.content, 'Cheap answer.');
    assert.equal(response.headers.get('x-switchyard-cascade').split(';').slice(0, 3).join(';'), 'primary;score=error;verdict=kept');
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=ok, secondary=http_500, secondary=http_500');
  });

  test('the decision log keeps every step', async () => {
    stack.fake.reset();
    stack.fake.script({ model: 'fake-primary', answer: { grade: 4 } });
    stack.fake.script({ model: 'fake-primary', answer: { grade: 4 } });
    const { response } = await openaiClient(stack.base).chat.completions.create(ask('cascade-self')).withResponse();
    const id = response.headers.get('x-switchyard-decision-id');
    let rows = [];
    for (let i = 0; i < 20 && !rows.length; i++) {
      rows = await stack.query(`SELECT cascade, cost_usd, timing FROM decisions WHERE id = '${id}'`);
      if (!rows.length) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.equal(rows[0].cascade, response.headers.get('x-switchyard-cascade'));
    assert.equal(rows[0].cost_usd, Number(response.headers.get('x-switchyard-cost-usd')));
    assert.ok('cascade' in JSON.parse(rows[0].timing));
  });
});
