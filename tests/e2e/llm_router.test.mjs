// End-to-end: the LLM router (level 3a) through `wrangler dev`, against the fake upstream, once per
// provider API. For each: the routing call carries the constrained-output schema in that API's
// wire format; a valid answer routes (level `llm`, its own Server-Timing phase, its cost in
// x-switchyard-cost-usd); invalid JSON, an unknown route, a refusal, a slow answer and an upstream
// error each fall back to the other levels with the reason in the decision.
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { openaiClient, postJson, startStack, test, testConfig } from './harness.mjs';

/** The test config without its `short` rule (which would decide every short prompt before the
 * LLM is asked), with an `[llm_router]` using `model`. */
const withLlmRouter = (model) => (url) =>
  `${testConfig(url).replace('[[routes]]\nname = "short"\nmax_tokens = 60\nmodels = ["small"]\n', '')}
[llm_router]
model = "${model}"
when = "uncertain"
timeout_ms = 700
routes = ["code", "creative", "chat"]
`;

const route = async (stack, prompt) => {
  const res = await postJson(stack.base, '/v1/route', { model: 'auto', messages: [{ role: 'user', content: prompt }] });
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res;
};

const PROVIDERS = [
  {
    api: 'OpenAI',
    model: 'primary',
    upstream: 'fake-primary',
    price: { input: 1.0, output: 2.0 },
    constrained: (body) => {
      assert.equal(body.response_format.type, 'json_schema');
      assert.equal(body.response_format.json_schema.strict, true);
      return body.response_format.json_schema.schema;
    },
  },
  {
    api: 'Anthropic',
    model: 'sonnet',
    upstream: 'fake-sonnet',
    price: { input: 3.0, output: 15.0 },
    constrained: (body) => {
      assert.deepEqual(body.tool_choice, { type: 'tool', name: 'choose_route' });
      return body.tools[0].input_schema;
    },
  },
  {
    api: 'Gemini',
    model: 'flash',
    upstream: 'fake-flash',
    price: { input: 0.3, output: 2.5 },
    constrained: (body) => {
      assert.equal(body.generationConfig.responseMimeType, 'application/json');
      return body.generationConfig.responseJsonSchema;
    },
  },
];

for (const provider of PROVIDERS) {
  describe(`the LLM router on the ${provider.api} API`, () => {
    let stack;
    before(async () => {
      stack = await startStack({ config: withLlmRouter(provider.model) });
    });
    after(async () => {
      await stack?.stop();
    });

    test('an uncertain prompt is routed by the constrained answer, timed and costed', async () => {
      stack.fake.reset();
      stack.fake.script({ model: provider.upstream, answer: { route: 'code' } });
      const client = openaiClient(stack.base);
      const { data, response } = await client.chat.completions
        .create({ model: 'auto', messages: [{ role: 'user', content: 'My build keeps failing after the upgrade' }] })
        .withResponse();
      assert.equal(response.headers.get('x-switchyard-route'), 'code');
      assert.equal(response.headers.get('x-switchyard-level'), 'llm');
      // The code route's first model answered.
      assert.match(data.choices[0].message.content, /^echo from fake-coder:/);
      assert.match(response.headers.get('server-timing'), /(^|, )llm;dur=/);
      const [routing, answer] = stack.fake.requests();
      assert.equal(routing.model, provider.upstream);
      const schema = provider.constrained(routing.body);
      assert.deepEqual(schema.properties.route.enum, ['code', 'creative', 'chat']);
      assert.equal(answer.model, 'fake-coder');
      // coder is free: the request's whole cost is the routing call's.
      const cost = Number(response.headers.get('x-switchyard-cost-usd'));
      assert.ok(cost > 0 && cost < (200 * provider.price.input + 50 * provider.price.output) / 1e6, `${cost}`);
    });

    test('a rule match is not sent to the LLM, and the same text is answered from the cache', async () => {
      stack.fake.reset();
      const rule = await route(stack, 'Write a SQL query for the top customers');
      assert.deepEqual([rule.json.route, rule.json.level, rule.json.signals.llm.asked], ['code', 'rules', false]);
      stack.fake.script({ model: provider.upstream, answer: { route: 'creative' } });
      const first = await route(stack, 'Something for my sister wedding toast');
      const again = await route(stack, 'Something for my sister wedding toast');
      assert.deepEqual([first.json.route, first.json.level], ['creative', 'llm']);
      assert.deepEqual([again.json.route, again.json.level, again.json.signals.llm.cached], ['creative', 'llm', true]);
      assert.equal(stack.fake.requests().length, 1);
      assert.equal(again.headers.get('x-switchyard-cost-usd'), null);
    });

    test('invalid JSON, an unknown route, a refusal, a slow answer and an error each fall back', async () => {
      const cases = [
        [{ answer: 'chat, I think' }, /not the JSON asked for/],
        [{ answer: { route: 'legal' } }, /chose "legal", which is not a route/],
        [{ refusal: 'I cannot help with that.' }, /refused/],
        [{ delay_ms: 1500 }, /failed: timeout/],
        [{ status: 500 }, /failed: http_500/],
      ];
      for (const [i, [step, reason]] of cases.entries()) {
        stack.fake.reset();
        stack.fake.script({ model: provider.upstream, ...step });
        const res = await route(stack, `A question about my garden, number ${i}`);
        const decision = res.json;
        assert.deepEqual([decision.route, decision.level], ['chat', 'default'], JSON.stringify(decision));
        assert.equal(decision.signals.llm.asked, true);
        assert.match(decision.signals.llm.declined, reason);
        assert.ok(decision.reasons.some((r) => r.startsWith('the LLM router gave no usable answer')), decision.reasons.join('; '));
        // No upstream URL or key in what the client sees.
        assert.doesNotMatch(JSON.stringify(decision), /127\.0\.0\.1|sk-upstream/);
      }
    });
  });
}
