// End-to-end: Anthropic and Gemini upstreams behind the OpenAI API, fallbacks, retries, cost,
// and every scripted fault of the fake upstream, with the official `openai` client as the caller.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, beforeEach, describe } from 'node:test';
import { ROUTER_KEY, UPSTREAM_KEY, fetchWithDeadline, openaiClient, postJson, startStack, test } from './harness.mjs';

let stack;
let client;

before(async () => {
  stack = await startStack();
  client = openaiClient(stack.base);
});

after(async () => {
  await stack?.stop();
});

beforeEach(() => stack.fake.reset());

const user = (content) => [{ role: 'user', content }];
const tools = [{
  type: 'function',
  function: { name: 'get_weather', description: 'Current weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
}];

/** Reads a streamed answer the way a client would: text, tool calls, finish reason, usage. */
async function collect(stream) {
  const out = { text: '', calls: [], finish: null, usage: null };
  for await (const chunk of stream) {
    if (chunk.usage) out.usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    out.text += choice.delta?.content ?? '';
    for (const call of choice.delta?.tool_calls ?? []) {
      out.calls[call.index] ??= { id: '', name: '', arguments: '' };
      if (call.id) out.calls[call.index].id = call.id;
      if (call.function?.name) out.calls[call.index].name = call.function.name;
      out.calls[call.index].arguments += call.function?.arguments ?? '';
    }
    out.finish = choice.finish_reason ?? out.finish;
  }
  return out;
}

async function rawStream(body) {
  const res = await fetchWithDeadline(`${stack.base}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ROUTER_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  return { res, text: await res.text() };
}

describe('Anthropic behind the OpenAI API', () => {
  test('a plain answer, with its cost in the headers', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'sonnet', messages: [{ role: 'system', content: 'Be brief.' }, ...user('hello claude')], max_tokens: 50 })
      .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.choices[0].message.content, 'echo from fake-sonnet: hello claude');
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.deepEqual(data.usage, { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 });
    assert.equal(response.headers.get('x-switchyard-model'), 'sonnet');
    // 10 input tokens at $3/M + 5 output tokens at $15/M
    assert.equal(Number(response.headers.get('x-switchyard-cost-usd')), 0.000105);
    const [sent] = stack.fake.requests();
    assert.equal(sent.path, '/anthropic/v1/messages');
    assert.equal(sent.headers['x-api-key'], UPSTREAM_KEY);
    assert.equal(sent.headers['anthropic-version'], '2023-06-01');
    assert.equal(sent.headers.authorization, undefined);
    assert.equal(sent.body.system, 'Be brief.');
    assert.equal(sent.body.max_tokens, 50);
  });

  test('a streamed tool call, with usage and cost at the end', async () => {
    const stream = await client.chat.completions.create({
      model: 'sonnet', messages: user('weather in Paris?'), tools, stream: true, stream_options: { include_usage: true },
    });
    const out = await collect(stream);
    assert.deepEqual(out.calls, [{ id: 'call_fake_1', name: 'get_weather', arguments: '{"city":"Paris"}' }]);
    assert.equal(out.finish, 'tool_calls');
    assert.equal(out.usage.prompt_tokens, 10);
    assert.ok(out.usage.cost > 0);
    assert.equal(stack.fake.requests()[0].body.tools[0].input_schema.required[0], 'city');
  });

  test('a tool call, not streamed, routed by route name', async () => {
    const data = await client.chat.completions.create({ model: 'claude-first', messages: user('weather in Paris?'), tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } });
    assert.equal(data.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(data.choices[0].message.tool_calls, [{ id: 'call_fake_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }]);
    assert.deepEqual(stack.fake.requests()[0].body.tool_choice, { type: 'tool', name: 'get_weather' });
  });

  test('the tool result goes back as a tool_result block', async () => {
    const data = await client.chat.completions.create({
      model: 'sonnet',
      tools,
      messages: [
        ...user('weather in Paris?'),
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_fake_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_fake_1', content: 'sunny, 24 C' },
      ],
    });
    assert.equal(data.choices[0].message.content, 'tool said: sunny, 24 C');
    const sent = stack.fake.requests()[0].body;
    assert.deepEqual(sent.messages[1].content[0], { type: 'tool_use', id: 'call_fake_1', name: 'get_weather', input: { city: 'Paris' } });
    assert.deepEqual(sent.messages[2].content[0], { type: 'tool_result', tool_use_id: 'call_fake_1', content: 'sunny, 24 C' });
  });

  test('an error event mid-stream reaches the client as an error, not a clean end', async () => {
    stack.fake.script({ model: 'fake-sonnet', error_after: 4 });
    const stream = await client.chat.completions.create({ model: 'sonnet', messages: user('one two three four'), stream: true });
    let text = '';
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      })(),
      (err) => {
        assert.match(err.message, /scripted mid-stream failure/);
        return true;
      },
    );
    assert.ok(text.startsWith('echo'), text);
  });
});

describe('Gemini behind the OpenAI API', () => {
  test('a streamed answer', async () => {
    const out = await collect(await client.chat.completions.create({ model: 'flash', messages: user('hello gemini'), stream: true }));
    assert.equal(out.text, 'echo from fake-flash: hello gemini');
    assert.equal(out.finish, 'stop');
    const [sent] = stack.fake.requests();
    assert.equal(sent.path, '/gemini/v1beta/models/fake-flash:streamGenerateContent?alt=sse');
    assert.equal(sent.headers['x-goog-api-key'], UPSTREAM_KEY);
  });

  test('a streamed tool call, with usage', async () => {
    const out = await collect(await client.chat.completions.create({
      model: 'flash', messages: user('weather in Paris?'), tools, stream: true, stream_options: { include_usage: true },
    }));
    assert.deepEqual(out.calls, [{ id: 'call_0', name: 'get_weather', arguments: '{"city":"Paris"}' }]);
    assert.equal(out.finish, 'tool_calls');
    assert.equal(out.usage.prompt_tokens, 10);
  });

  test('a tool call and its result, not streamed', async () => {
    const first = await client.chat.completions.create({ model: 'flash', messages: user('weather in Paris?'), tools, tool_choice: 'required' });
    const call = first.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris' });
    assert.equal(first.choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(stack.fake.requests()[0].body.toolConfig, { functionCallingConfig: { mode: 'ANY' } });

    const second = await client.chat.completions.create({
      model: 'flash',
      tools,
      messages: [...user('weather in Paris?'), first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '{"temp_c": 24}' }],
    });
    assert.equal(second.choices[0].message.content, 'tool said: {"temp_c":24}');
  });

  test('an upstream client error keeps its status and is not retried elsewhere', async () => {
    stack.fake.script({ model: 'fake-flash', status: 400, body: { error: { code: 400, message: 'API key not valid', status: 'INVALID_ARGUMENT' } } });
    await assert.rejects(client.chat.completions.create({ model: 'flash', messages: user('hi') }), (err) => {
      assert.equal(err.status, 400);
      assert.equal(err.code, 'INVALID_ARGUMENT');
      return true;
    });
    assert.equal(stack.fake.requests().length, 1);
  });
});

describe('fallbacks', () => {
  test('a 5xx is retried once, then the next model answers', async () => {
    stack.fake.script({ model: 'fake-primary', status: 503 });
    stack.fake.script({ model: 'fake-primary', status: 503 });
    const { data, response } = await client.chat.completions.create({ model: 'failover', messages: user('hi') }).withResponse();
    assert.equal(data.choices[0].message.content, 'echo from fake-secondary: hi');
    assert.equal(response.headers.get('x-switchyard-model'), 'secondary');
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=http_503, primary=http_503, secondary=ok');
  });

  test('a 429 is retried after its retry-after', async () => {
    stack.fake.script({ model: 'fake-primary', status: 429, headers: { 'retry-after': '0.3' } });
    const started = Date.now();
    const { response } = await client.chat.completions.create({ model: 'failover', messages: user('hi') }).withResponse();
    assert.ok(Date.now() - started >= 300, 'the retry waited for retry-after');
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=http_429, primary=ok');
  });

  test('a model that does not answer in time is abandoned', async () => {
    stack.fake.script({ model: 'fake-primary', delay_ms: 3000 });
    stack.fake.script({ model: 'fake-primary', delay_ms: 3000 });
    const { response } = await client.chat.completions.create({ model: 'failover', messages: user('hi') }).withResponse();
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=timeout, primary=timeout, secondary=ok');
  });

  test('a per-model timeout overrides the default', async () => {
    stack.fake.script({ model: 'fake-patient', delay_ms: 2500 });
    const data = await client.chat.completions.create({ model: 'patient', messages: user('slow is fine') });
    assert.equal(data.choices[0].message.content, 'echo from fake-patient: slow is fine');
  });

  test('an unreachable upstream is a 502 naming the provider, not where it is', async () => {
    const res = await postJson(stack.base, '/v1/chat/completions', { model: 'offline', messages: user('hi') });
    assert.equal(res.status, 502);
    assert.match(res.json.error.message, /could not reach upstream "down"/);
    assert.doesNotMatch(res.text, /127\.0\.0\.1:9/);
  });

  test('a refused connection and a reset connection fall back', async () => {
    const { response } = await client.chat.completions.create({ model: 'down-first', messages: user('hi') }).withResponse();
    assert.equal(response.headers.get('x-switchyard-attempts'), 'offline=unreachable, offline=unreachable, primary=ok');
    stack.fake.script({ model: 'fake-primary', refuse: true });
    stack.fake.script({ model: 'fake-primary', refuse: true });
    const second = await client.chat.completions.create({ model: 'failover', messages: user('hi') }).withResponse();
    assert.equal(second.response.headers.get('x-switchyard-attempts'), 'primary=unreachable, primary=unreachable, secondary=ok');
  });

  test('an error whose body stalls is given up on and its connection closed', async () => {
    stack.fake.script({ model: 'fake-primary', status: 500, stall_body: true });
    stack.fake.script({ model: 'fake-primary', status: 500 });
    stack.fake.script({ model: 'fake-secondary', delay_ms: 1400 });
    const answer = client.chat.completions.create({ model: 'failover', messages: user('hi') }).withResponse();
    // The body read gives up after idle_timeout_ms (1.5 s); the request goes on until ~3 s.
    await new Promise((resolve) => setTimeout(resolve, 2200));
    const stalled = stack.fake.requests()[0];
    assert.equal(stalled.model, 'fake-primary');
    assert.equal(stalled.closed, true, 'the stalled connection is still open');
    const { response } = await answer;
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=http_500, primary=http_500, secondary=ok');
  });

  test('a malformed answer falls back at once', async () => {
    stack.fake.script({ model: 'fake-primary', malformed: true });
    const { response } = await client.chat.completions.create({ model: 'failover', messages: user('hi') }).withResponse();
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=malformed, secondary=ok');
  });

  test('a stream that fails before its first byte falls back unseen', async () => {
    stack.fake.script({ model: 'fake-primary', malformed: true });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'failover', messages: user('hi'), stream: true })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=malformed, secondary=ok');
    assert.equal((await collect(stream)).text, 'echo from fake-secondary: hi');
  });

  test('a stream that says nothing in time falls back', async () => {
    stack.fake.script({ model: 'fake-primary', stall_after: 0 });
    stack.fake.script({ model: 'fake-primary', stall_after: 0 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'failover', messages: user('hi'), stream: true })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=timeout, primary=timeout, secondary=ok');
    assert.equal((await collect(stream)).text, 'echo from fake-secondary: hi');
  });

  test('models too small for the prompt, or without their key, are skipped and never called', async () => {
    const prompt = 'please summarise this: ' + 'lorem ipsum dolor sit amet '.repeat(20);
    const { response } = await client.chat.completions.create({ model: 'skipping', messages: user(prompt) }).withResponse();
    assert.equal(response.headers.get('x-switchyard-skipped'), 'tiny=context_window, nokey=missing_secret');
    assert.equal(response.headers.get('x-switchyard-attempts'), 'primary=ok');
    assert.deepEqual(stack.fake.requests().map((r) => r.model), ['fake-primary']);
  });

  test('/v1/route shows the fallback plan without calling anything', async () => {
    const prompt = 'please summarise this: ' + 'lorem ipsum dolor sit amet '.repeat(20);
    const body = (await postJson(stack.base, '/v1/route', { model: 'skipping', messages: user(prompt) })).json;
    assert.deepEqual(body.plan.map((p) => [p.model, p.skip]), [['tiny', 'context_window'], ['nokey', 'missing_secret'], ['primary', null]]);
    assert.match(body.plan[1].detail, /NEVER_SET_KEY/);
    assert.equal(stack.fake.requests().length, 0);
  });

  test('a prompt no model can hold is a 400 context_length_exceeded', async () => {
    const prompt = 'lorem ipsum dolor sit amet '.repeat(20);
    await assert.rejects(client.chat.completions.create({ model: 'only-small', messages: user(prompt) }), (err) => {
      assert.equal(err.status, 400);
      assert.equal(err.code, 'context_length_exceeded');
      return true;
    });
    assert.equal(stack.fake.requests().length, 0);
  });

  test('JSON mode skips Anthropic (which has none) for Gemini (which has it)', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'claude-first', messages: user('colours as JSON'), response_format: { type: 'json_object' } })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-skipped'), 'sonnet=unsupported');
    assert.equal(response.headers.get('x-switchyard-model'), 'flash');
    assert.match(data.choices[0].message.content, /fake-flash/);
    assert.equal(stack.fake.requests()[0].body.generationConfig.responseMimeType, 'application/json');
  });

  test('an Anthropic stream overloaded before saying anything is retried, then falls back, unseen', async () => {
    // error_after 2: after message_start and ping, an overloaded_error event (a 503 in all but name).
    stack.fake.script({ model: 'fake-sonnet', error_after: 2 });
    stack.fake.script({ model: 'fake-sonnet', error_after: 2 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'claude-first', messages: user('hi'), stream: true })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-attempts'), 'sonnet=http_503, sonnet=http_503, flash=ok');
    assert.equal((await collect(stream)).text, 'echo from fake-flash: hi');
  });

  test('a request one API cannot express goes to the next model, uncalled', async () => {
    const audio = { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } };
    const { response } = await client.chat.completions
      .create({ model: 'mixed', messages: [{ role: 'user', content: [{ type: 'text', text: 'transcribe' }, audio] }] })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-skipped'), 'sonnet=unsupported');
    assert.equal(response.headers.get('x-switchyard-model'), 'primary');
    assert.deepEqual(stack.fake.requests().map((r) => r.model), ['fake-primary']);
  });

  test('a provider refusing its key falls back to another provider', async () => {
    stack.fake.script({ model: 'fake-sonnet', status: 401, body: { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } } });
    const { response } = await client.chat.completions.create({ model: 'mixed', messages: user('hi') }).withResponse();
    assert.equal(response.headers.get('x-switchyard-attempts'), 'sonnet=http_401, primary=ok');
  });

  test('an overloaded Anthropic (529) falls back to Gemini', async () => {
    stack.fake.script({ model: 'fake-sonnet', status: 529 });
    stack.fake.script({ model: 'fake-sonnet', status: 529 });
    const { response } = await client.chat.completions.create({ model: 'claude-first', messages: user('hi') }).withResponse();
    assert.equal(response.headers.get('x-switchyard-attempts'), 'sonnet=http_503, sonnet=http_503, flash=ok');
  });
});

describe('after the first byte', () => {
  test('a stream cut mid-answer ends with an error event, never [DONE]', async () => {
    stack.fake.script({ model: 'fake-primary', cut_after: 3 });
    const { res, text } = await rawStream({ model: 'failover', messages: user('one two three four five six') });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-switchyard-model'), 'primary');
    assert.ok(!text.includes('[DONE]'), text);
    const events = text.split('\n\n').filter(Boolean).map((e) => JSON.parse(e.replace(/^data: /, '')));
    assert.equal(events.at(-1).error.type, 'upstream_error');
    assert.ok(events.some((e) => e.choices?.[0]?.delta?.content), 'the first chunks were delivered');
  });

  test('the openai client raises the cut as an error', async () => {
    stack.fake.script({ model: 'fake-primary', cut_after: 3 });
    const stream = await client.chat.completions.create({ model: 'failover', messages: user('one two three four five'), stream: true });
    await assert.rejects(collect(stream), (err) => {
      assert.match(err.message, /stream/i);
      return true;
    });
  });

  test('a stream that stalls mid-answer ends with a timeout error event', async () => {
    stack.fake.script({ model: 'fake-primary', stall_after: 3 });
    const { text } = await rawStream({ model: 'failover', messages: user('one two three four five six') });
    const last = JSON.parse(text.trim().split('\n\n').at(-1).replace(/^data: /, ''));
    assert.equal(last.error.code, 'upstream_timeout');
  });

  test('a client that goes away mid-answer: the upstream is hung up on, and the end logged once as client_closed', async () => {
    // A long, slow answer: the router is still relaying it when the client leaves.
    stack.fake.script({ model: 'fake-primary', chunk_delay_ms: 200 });
    const gone = new AbortController();
    const res = await fetch(`${stack.base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ROUTER_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'failover', messages: user('word '.repeat(40)), stream: true }),
      signal: AbortSignal.any([gone.signal, AbortSignal.timeout(20_000)]),
    });
    const id = res.headers.get('x-switchyard-decision-id');
    const first = await res.body.getReader().read();
    assert.ok(first.value.length > 0, 'the first chunks came');
    gone.abort();
    let lines = [];
    for (let i = 0; i < 100 && lines.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      lines = readFileSync(stack.logFile, 'utf8').split('\n').filter((l) => l.includes('"event":"decision"') && l.includes(id));
    }
    assert.equal(lines.length, 1, 'the end is logged exactly once');
    const logged = JSON.parse(lines[0].slice(lines[0].indexOf('{')));
    assert.equal(logged.stream_outcome, 'client_closed', JSON.stringify(logged));
    assert.equal(stack.fake.requests()[0].closed, true, 'the upstream is still generating');
  });

  test('a Gemini error event mid-stream is an error too', async () => {
    stack.fake.script({ model: 'fake-flash', error_after: 2 });
    const { text } = await rawStream({ model: 'flash', messages: user('one two three four five six') });
    assert.ok(!text.includes('[DONE]'));
    assert.match(text, /scripted mid-stream failure/);
  });
});

describe('a model server behind a tunnel', () => {
  test('gets the provider headers, their values read from secrets', async () => {
    const data = await client.chat.completions.create({ model: 'home', messages: user('hi from the edge') });
    assert.equal(data.choices[0].message.content, 'echo from fake-home: hi from the edge');
    const [sent] = stack.fake.requests();
    assert.equal(sent.headers['cf-access-client-secret'], UPSTREAM_KEY);
    assert.equal(sent.headers.authorization, undefined);
  });
});

describe('cost and usage', () => {
  test('streamed usage is counted even when the client did not ask for it', async () => {
    const stream = await client.chat.completions.create({ model: 'failover', messages: user('count me please'), stream: true });
    const out = await collect(stream);
    assert.equal(out.usage, null, 'no usage chunk the client did not ask for');
    assert.deepEqual(stack.fake.requests()[0].body.stream_options, { include_usage: true });
    await new Promise((resolve) => setTimeout(resolve, 500)); // let wrangler flush its output
    const lines = readFileSync(stack.logFile, 'utf8').split('\n').filter((l) => l.includes('"event":"decision"') && l.includes('"stream":true'));
    const logged = JSON.parse(lines.at(-1).slice(lines.at(-1).indexOf('{')));
    assert.equal(logged.stream_outcome, 'complete');
    assert.deepEqual(logged.usage, { prompt_tokens: 10, completion_tokens: 6 });
    // 10 * $1/M + 6 * $2/M
    assert.ok(Math.abs(logged.cost_usd - 0.000022) < 1e-12, JSON.stringify(logged));
    assert.equal(logged.attempts, 'primary=ok');
  });

  test('with include_usage the last chunk carries usage and cost', async () => {
    const stream = await client.chat.completions.create({
      model: 'failover', messages: user('count me please'), stream: true, stream_options: { include_usage: true },
    });
    const out = await collect(stream);
    assert.deepEqual({ ...out.usage, cost: undefined }, { prompt_tokens: 10, completion_tokens: 6, total_tokens: 16, cost: undefined });
    assert.ok(Math.abs(out.usage.cost - 0.000022) < 1e-12);
  });

  test('a routed request that fails logs an error line and its decision line under one id', async () => {
    // `offline` is on a port nothing listens on: unreachable, retried once, then a 502.
    const res = await postJson(stack.base, '/v1/chat/completions', { model: 'offline', messages: user('count me please') });
    assert.equal(res.status, 502);
    const id = res.headers.get('x-switchyard-decision-id');
    let lines = [];
    for (let i = 0; i < 40 && lines.length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      lines = readFileSync(stack.logFile, 'utf8').split('\n').filter((l) => l.includes(`"decision_id":"${id}"`));
    }
    // wrangler dev prints error-level lines in colour: the JSON is between the outer braces.
    const parsed = lines.map((l) => JSON.parse(l.slice(l.indexOf('{'), l.lastIndexOf('}') + 1)));
    const error = parsed.find((l) => l.event === 'error');
    const decision = parsed.find((l) => l.event === 'decision');
    assert.deepEqual(
      { status: error?.status, origin: error?.origin, code: error?.code },
      { status: 502, origin: 'upstream', code: 'upstream_unreachable' },
      JSON.stringify(parsed),
    );
    assert.equal(decision?.status, 502, JSON.stringify(parsed));
    assert.equal(decision.attempts, 'offline=unreachable, offline=unreachable');
  });

  test('no key or prompt reaches the log', async () => {
    const log = readFileSync(stack.logFile, 'utf8');
    for (const secret of [ROUTER_KEY, UPSTREAM_KEY, 'count me please']) assert.ok(!log.includes(secret), secret);
  });
});
