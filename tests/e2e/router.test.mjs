// End-to-end: the built Worker in local workerd (`wrangler dev`), a fake upstream on loopback,
// and the official `openai` npm client as the caller.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe } from 'node:test';
import { ADMIN_KEY, ALLOWED_ORIGIN, ROUTER_KEY, UPSTREAM_KEY, fetchWithDeadline, healthDetails, openaiClient, postJson, startStack, test } from './harness.mjs';

let stack;
let client;

before(async () => {
  stack = await startStack();
  client = openaiClient(stack.base);
});

after(async () => {
  await stack?.stop();
});

const user = (content) => [{ role: 'user', content }];

/** The reference embeddings: ../shared/golden when present, else the copy in tests/data. */
function readGolden() {
  for (const path of ['../../../shared/golden/minilm-l6-v2.jsonl', '../data/minilm-l6-v2.golden.jsonl']) {
    try {
      return readFileSync(new URL(path, import.meta.url), 'utf8');
    } catch {}
  }
  throw new Error('no golden embeddings found');
}

const post = (path, body, headers) => postJson(stack.base, path, body, headers);

function assertOpenAIError(res, status, type) {
  assert.equal(res.status, status, res.text);
  assert.equal(typeof res.json?.error?.message, 'string', res.text);
  assert.equal(res.json.error.type, type, res.text);
  assert.ok('code' in res.json.error && 'param' in res.json.error, res.text);
}

describe('chat completions', () => {
  test('non-streaming answer comes back with the decision headers', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'auto', messages: user('hi there') })
      .withResponse();
    assert.equal(data.choices[0].message.content, 'echo from fake-small: hi there');
    assert.equal(response.headers.get('x-switchyard-route'), 'short');
    assert.equal(response.headers.get('x-switchyard-model'), 'small');
    assert.equal(response.headers.get('x-switchyard-level'), 'rules');
    assert.match(response.headers.get('server-timing'), /^parse;dur=[\d.]+, .*route;dur=[\d.]+, upstream;dur=[\d.]+$/);
  });

  test('streaming answer is passed through chunk by chunk, with headers', async () => {
    stack.fake.script({ chunk_delay_ms: 150 });
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'auto', messages: user('one two three four five'), stream: true })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-route'), 'short');
    assert.equal(response.headers.get('x-switchyard-level'), 'rules');
    assert.ok(response.headers.get('server-timing'));
    assert.match(response.headers.get('content-type'), /text\/event-stream/);
    const arrivals = [];
    let text = '';
    let finish;
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta?.content;
      if (delta) {
        text += delta;
        arrivals.push(Date.now());
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, 'echo from fake-small: one two three four five');
    assert.equal(finish, 'stop');
    // Eight words, 150 ms apart upstream: a buffering router would deliver them all at once.
    assert.ok(arrivals.at(-1) - arrivals[0] >= 600, `chunks arrived within ${arrivals.at(-1) - arrivals[0]} ms`);
  });

  test('the keyword rule sends SQL to the code route', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'auto', messages: user('Write a SQL query that lists the ten newest users') })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-route'), 'code');
    assert.equal(response.headers.get('x-switchyard-model'), 'coder');
    assert.match(data.choices[0].message.content, /^echo from fake-coder:/);
  });

  test('"Tell me a joke about Python" is not a coding request', async () => {
    const { response } = await client.chat.completions
      .create({ model: 'auto', messages: user('Tell me a joke about Python') })
      .withResponse();
    assert.notEqual(response.headers.get('x-switchyard-route'), 'code');
    assert.equal(response.headers.get('x-switchyard-route'), 'short');
  });

  test('a long prompt goes to the long-context route', async () => {
    const longText = 'Summarise the history of the printing press in Europe. '.repeat(300);
    const { response } = await client.chat.completions
      .create({ model: 'auto', messages: user(longText) })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-route'), 'long');
    assert.equal(response.headers.get('x-switchyard-model'), 'big');
  });

  test('a prompt no rule matches goes to the default route', async () => {
    const medium =
      'Please describe, in a few friendly paragraphs, what a good weekend in the mountains looks like for a family with two young children who enjoy hiking, swimming and campfires. ' +
      'Include where to sleep, what to pack for changeable weather, and one rainy-day plan that keeps everyone happy.';
    const { response } = await client.chat.completions
      .create({ model: 'auto', messages: user(medium) })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-route'), 'chat');
    assert.equal(response.headers.get('x-switchyard-level'), 'default');
    assert.equal(response.headers.get('x-switchyard-model'), 'mini');
  });

  test('the model field can name a model or a route', async () => {
    const byModel = await client.chat.completions.create({ model: 'big', messages: user('hi') }).withResponse();
    assert.equal(byModel.response.headers.get('x-switchyard-level'), 'explicit');
    assert.equal(byModel.response.headers.get('x-switchyard-model'), 'big');
    assert.match(byModel.data.choices[0].message.content, /^echo from fake-big:/);
    const byRoute = await client.chat.completions.create({ model: 'code', messages: user('hi') }).withResponse();
    assert.equal(byRoute.response.headers.get('x-switchyard-route'), 'code');
    assert.equal(byRoute.response.headers.get('x-switchyard-level'), 'explicit');
  });

  test('an unknown model is a 404 model_not_found', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'gpt-17', messages: user('hi') }), (err) => {
      assert.equal(err.status, 404);
      assert.equal(err.code, 'model_not_found');
      return true;
    });
  });

  test('the upstream gets its own key, the rewritten model and every other field untouched', async () => {
    stack.fake.reset();
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }];
    await client.chat.completions.create({
      model: 'auto',
      messages: user('Write Python to parse a CSV file'),
      temperature: 0.2,
      tools,
      response_format: { type: 'json_object' },
      user: 'end-user-7',
    });
    const [forwarded] = stack.fake.requests();
    assert.equal(forwarded.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
    assert.equal(forwarded.body.model, 'fake-coder');
    assert.equal(forwarded.body.temperature, 0.2);
    assert.deepEqual(forwarded.body.tools, tools);
    assert.deepEqual(forwarded.body.response_format, { type: 'json_object' });
    assert.equal(forwarded.body.user, 'end-user-7');
    assert.ok(!JSON.stringify(forwarded).includes(ROUTER_KEY), 'the router key must not reach the upstream');
  });

  test('a keyless provider gets no authorization header', async () => {
    stack.fake.reset();
    await client.chat.completions.create({ model: 'small', messages: user('hi') });
    assert.equal(stack.fake.requests()[0].headers.authorization, undefined);
  });
});

describe('semantic routing and embeddings', () => {
  test('a request is routed by meaning to the most similar route', async () => {
    const { response } = await client.chat.completions
      .create({ model: 'auto', messages: user('Compose a little poem about the ocean waves') })
      .withResponse();
    assert.equal(response.headers.get('x-switchyard-route'), 'creative');
    assert.equal(response.headers.get('x-switchyard-level'), 'semantic');
    assert.match(response.headers.get('server-timing'), /tokenize;dur=[\d.]+, embed;dur=[\d.]+/);
  });

  test('/v1/route reports every semantic score', async () => {
    const res = await post('/v1/route', { messages: user('Write a haiku about the winter moon') });
    assert.equal(res.status, 200);
    assert.equal(res.json.route, 'creative');
    assert.equal(typeof res.json.scores.creative, 'number');
    assert.ok(res.json.scores.creative >= 0.35, JSON.stringify(res.json.scores));
    assert.equal(res.json.signals.semantic_available, true);
    assert.ok('embed' in res.json.timing_ms);
  });

  test('/v1/embeddings matches the fp32 reference through the openai client', async () => {
    const golden = readGolden().split('\n').filter(Boolean).map((l) => JSON.parse(l));
    // The openai client asks for base64 by default and decodes it: both formats are exercised.
    for (const encoding_format of [undefined, 'float']) {
      const cosines = [];
      for (let at = 0; at < golden.length; at += 64) {
        const batch = golden.slice(at, at + 64);
        const result = await client.embeddings.create({
          model: 'all-MiniLM-L6-v2',
          input: batch.map((g) => g.text),
          ...(encoding_format ? { encoding_format } : {}),
        });
        assert.equal(result.data.length, batch.length);
        assert.equal(result.model, 'all-MiniLM-L6-v2');
        assert.ok(result.usage.prompt_tokens > 0);
        result.data.forEach((item, i) => {
          const v = Array.from(item.embedding);
          assert.equal(v.length, 384);
          const g = batch[i].embedding;
          const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
          cosines.push(v.reduce((a, x, j) => a + x * g[j], 0) / norm);
        });
      }
      const mean = cosines.reduce((a, c) => a + c, 0) / cosines.length;
      const min = Math.min(...cosines);
      console.log(`worker parity over ${cosines.length} golden texts: mean cosine ${mean.toFixed(5)}, min ${min.toFixed(5)}`);
      assert.ok(mean >= 0.999, `mean cosine ${mean}`);
      assert.ok(min >= 0.995, `min cosine ${min}`);
    }
  });

  test('/v1/embeddings refuses what it cannot serve', async () => {
    const wrongModel = await post('/v1/embeddings', { model: 'text-embedding-3-small', input: 'hi' });
    assertOpenAIError(wrongModel, 404, 'invalid_request_error');
    const tokens = await post('/v1/embeddings', { input: [1, 2, 3] });
    assertOpenAIError(tokens, 400, 'invalid_request_error');
    const empty = await post('/v1/embeddings', { input: '' });
    assertOpenAIError(empty, 400, 'invalid_request_error');
    const noAuth = await post('/v1/embeddings', { input: 'hi' }, { authorization: '' });
    assertOpenAIError(noAuth, 401, 'authentication_error');
  });

  test('/healthz reports the loaded encoder, its load step by step, and the wasm memory', async () => {
    const body = await healthDetails(stack.base);
    assert.equal(body.encoder, 'ready');
    assert.ok(body.memory_bytes > 20_000_000, `memory_bytes ${body.memory_bytes}`);
    // The file is decoded out of a JS buffer, so wasm memory stays well under the 64 MiB budget.
    assert.ok(body.memory_bytes <= 64 * 1048576, `memory_bytes ${body.memory_bytes}`);
    const phases = body.encoder_load_phases_ms;
    const steps = ['fetch_tokenizer', 'tokenizer', 'fetch_encoder', 'decode', 'graph', 'typing', 'int8', 'optimise', 'index'];
    assert.deepEqual(Object.keys(phases).sort(), [...steps].sort());
    // Consecutive steps: together they are most of the load (the moments between them, a
    // garbage collection say, belong to none) and never more than it, as overlapping steps would.
    const sum = steps.reduce((total, step) => total + phases[step], 0);
    const load = body.encoder_load_ms;
    assert.ok(sum <= load + 5 && sum >= 0.9 * load - 10, `steps add up to ${sum} ms, the load took ${load} ms`);
  });
});

describe('route, models, health', () => {
  test('POST /v1/route explains the decision without calling an upstream', async () => {
    stack.fake.reset();
    const res = await post('/v1/route', { model: 'auto', messages: user('Tell me a joke about Python') });
    assert.equal(res.status, 200);
    assert.equal(res.json.route, 'short');
    assert.equal(res.json.level, 'rules');
    assert.equal(res.json.model, 'small');
    assert.deepEqual(res.json.candidates, ['small']);
    assert.equal(res.json.scores.code, 0);
    const code = res.json.signals.rules.find((r) => r.route === 'code');
    assert.equal(code.keyword.text, 'Python');
    assert.equal(code.excluded_by.text, 'joke');
    assert.ok(res.json.signals.prompt_tokens > 0);
    assert.ok('parse' in res.json.timing_ms && 'route' in res.json.timing_ms);
    assert.equal(res.headers.get('x-switchyard-route'), 'short');
    assert.equal(stack.fake.requests().length, 0);
  });

  test('GET /v1/models lists auto, the routes and the models', async () => {
    const list = await client.models.list();
    const ids = list.data.map((m) => m.id);
    for (const id of ['auto', 'long', 'code', 'creative', 'short', 'chat', 'small', 'coder', 'big', 'mini']) {
      assert.ok(ids.includes(id), `${id} missing from ${ids}`);
    }
  });

  test('GET /healthz says only "ok" without a key, and its details with a router or admin key', async () => {
    const res = await fetchWithDeadline(`${stack.base}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });
    const wrong = await fetchWithDeadline(`${stack.base}/healthz`, { headers: { authorization: 'Bearer sk-not-a-key-0123456789' } });
    assert.deepEqual(await wrong.json(), { status: 'ok' });
    for (const key of [ROUTER_KEY, ADMIN_KEY]) {
      const body = await (await fetchWithDeadline(`${stack.base}/healthz`, { headers: { authorization: `Bearer ${key}` } })).json();
      assert.equal(body.status, 'ok');
      assert.equal(body.config, 'SWITCHYARD_CONFIG');
      assert.ok(Number.isInteger(body.memory_bytes) && body.memory_bytes > 0);
    }
  });
});

describe('auth', () => {
  test('a missing key is a 401 in OpenAI form', async () => {
    const res = await post('/v1/chat/completions', { messages: user('hi') }, { authorization: '' });
    assertOpenAIError(res, 401, 'authentication_error');
  });

  test('a wrong key is a 401 through the openai client too', async () => {
    const wrong = openaiClient(stack.base, 'sk-wrong');
    await assert.rejects(wrong.chat.completions.create({ model: 'auto', messages: user('hi') }), (err) => {
      assert.equal(err.status, 401);
      return true;
    });
    await assert.rejects(wrong.models.list(), (err) => err.status === 401);
    const res = await post('/v1/route', { messages: user('hi') }, { authorization: 'Bearer sk-wrong' });
    assertOpenAIError(res, 401, 'authentication_error');
  });
});

describe('CORS', () => {
  test('a preflight from an allowed origin is answered', async () => {
    const res = await fetchWithDeadline(`${stack.base}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: ALLOWED_ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
    assert.match(res.headers.get('access-control-allow-methods'), /POST/);
    assert.match(res.headers.get('access-control-allow-headers'), /authorization/);
  });

  test('a preflight from another origin is refused', async () => {
    const res = await fetchWithDeadline(`${stack.base}/v1/chat/completions`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
  });

  test('responses to an allowed origin expose the decision headers', async () => {
    const res = await post('/v1/chat/completions', { messages: user('hi') }, { origin: ALLOWED_ORIGIN });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
    assert.match(res.headers.get('access-control-expose-headers'), /x-switchyard-route/);
    assert.match(res.headers.get('access-control-expose-headers'), /server-timing/);
    assert.match(res.headers.get('access-control-expose-headers'), /x-switchyard-cost-usd/);
  });
});

describe('bad input gets a 4xx in OpenAI form', () => {
  const cases = [
    ['malformed JSON', '{"messages": [', 400, null],
    ['a body that is not an object', '[1, 2]', 400, null],
    ['model of the wrong type', { model: 5, messages: user('hi') }, 400, 'model'],
    ['stream of the wrong type', { stream: 'yes', messages: user('hi') }, 400, 'stream'],
    ['messages of the wrong type', { messages: 'hi' }, 400, 'messages'],
    ['missing messages', { model: 'auto' }, 400, null],
    ['empty messages', { messages: [] }, 400, 'messages'],
    ['an unknown role', { messages: [{ role: 'robot', content: 'hi' }] }, 400, 'messages[0].role'],
    ['content of the wrong type', { messages: [{ role: 'user', content: 42 }] }, 400, 'messages[0].content'],
    ['a user message without content', { messages: [{ role: 'user' }] }, 400, 'messages[0].content'],
    ['a content part without a type', { messages: [{ role: 'user', content: [{ text: 'hi' }] }] }, 400, 'messages[0].content[0].type'],
  ];
  for (const [name, body, status, param] of cases) {
    test(name, async () => {
      for (const path of ['/v1/chat/completions', '/v1/route']) {
        const res = await post(path, body);
        assertOpenAIError(res, status, 'invalid_request_error');
        if (param) assert.equal(res.json.error.param, param, res.text);
      }
    });
  }

  test('an oversize body is a 413', async () => {
    const res = await post('/v1/chat/completions', { messages: user('x'.repeat(70_000)) });
    assertOpenAIError(res, 413, 'invalid_request_error');
    assert.match(res.json.error.message, /65536 bytes/);
  });

  test('unknown paths and wrong methods', async () => {
    const missing = await post('/v1/completions', { prompt: 'hi' });
    assertOpenAIError(missing, 404, 'invalid_request_error');
    const res = await fetchWithDeadline(`${stack.base}/v1/chat/completions`, { headers: { authorization: `Bearer ${ROUTER_KEY}` } });
    assert.equal(res.status, 405);
    assert.equal((await res.json()).error.code, 'method_not_allowed');
  });

  test('the isolate still answers after every bad request', async () => {
    const data = await client.chat.completions.create({ model: 'auto', messages: user('still alive?') });
    assert.match(data.choices[0].message.content, /still alive/);
  });
});

describe('upstream failures', () => {
  test('an upstream 429 is passed on with its status, as a rate-limit error', async () => {
    // retry-after is beyond max_retry_after_ms: no retry, and the route has no other model.
    stack.fake.script({ status: 429, headers: { 'retry-after': '30' }, body: { error: { message: 'Rate limit reached for requests', type: 'requests', code: 'rate_limit_exceeded' } } });
    const res = await post('/v1/chat/completions', { messages: user('hi') });
    assert.equal(res.status, 429);
    assert.match(res.json.error.message, /Rate limit reached/);
    assert.equal(res.json.error.code, 'rate_limit_exceeded');
    assert.equal(res.headers.get('x-switchyard-model'), 'small');
    assert.equal(res.headers.get('x-switchyard-attempts'), 'small=http_429');
    assert.ok(res.headers.get('server-timing'));
  });

  test('an upstream 500 reaches the openai client as a 500', async () => {
    stack.fake.script({ status: 500 });
    stack.fake.script({ status: 500 });
    await assert.rejects(client.chat.completions.create({ model: 'auto', messages: user('hi') }), (err) => {
      assert.equal(err.status, 500);
      assert.match(err.message, /scripted failure 500/);
      return true;
    });
  });

  test('an upstream that echoes its key does not leak it', async () => {
    stack.fake.script({ status: 401, echo_auth: true });
    const res = await post('/v1/chat/completions', { model: 'coder', messages: user('hi') });
    assert.equal(res.status, 401);
    assert.ok(!res.text.includes(UPSTREAM_KEY), res.text);
    assert.match(res.json.error.message, /\[redacted\]/);
  });

  test('an unreachable upstream is a 502', async () => {
    const res = await post('/v1/chat/completions', { model: 'offline', messages: user('hi') });
    assertOpenAIError(res, 502, 'upstream_error');
    assert.equal(res.json.error.code, 'upstream_unreachable');
    assert.equal(res.headers.get('x-switchyard-model'), 'offline');
  });

  test('a provider whose key secret is missing: a generic 500; the log names the secret', async () => {
    const res = await post('/v1/chat/completions', { model: 'nokey', messages: user('hi') });
    assertOpenAIError(res, 500, 'server_error');
    assert.equal(res.json.error.code, 'configuration_error');
    assert.doesNotMatch(res.json.error.message, /NEVER_SET_KEY/);
    await new Promise((resolve) => setTimeout(resolve, 500)); // let wrangler flush its output
    assert.match(readFileSync(stack.logFile, 'utf8'), /NEVER_SET_KEY/);
  });

  test('streamed requests get upstream errors as JSON before any byte is sent', async () => {
    stack.fake.script({ status: 503 });
    stack.fake.script({ status: 503 });
    const res = await post('/v1/chat/completions', { stream: true, messages: user('hi') });
    assert.equal(res.status, 503);
    assert.equal(res.json.error.type, 'server_error');
  });
});

describe('logs', () => {
  test('carry one decision line per routed request and never a key or a prompt', async () => {
    const secretPrompt = 'my private prompt 5d41402abc4b2a76';
    await client.chat.completions.create({ model: 'auto', messages: user(secretPrompt) });
    await new Promise((resolve) => setTimeout(resolve, 500)); // let wrangler flush its output
    const log = readFileSync(stack.logFile, 'utf8');
    assert.match(log, /"event":"decision"/);
    assert.match(log, /"route":"short"/);
    for (const secret of [ROUTER_KEY, UPSTREAM_KEY, secretPrompt]) {
      assert.ok(!log.includes(secret), `the log contains ${secret}`);
    }
  });

  test('log a client error by code and field, never what the client sent', async () => {
    const marker = 'client-value-7f3a9c';
    const unknown = await post('/v1/chat/completions', { model: marker, messages: user('hi') });
    assert.equal(unknown.status, 404);
    const badRole = await post('/v1/chat/completions', { messages: [{ role: marker, content: 'hi' }] });
    assert.equal(badRole.status, 400);
    await new Promise((resolve) => setTimeout(resolve, 500)); // let wrangler flush its output
    const log = readFileSync(stack.logFile, 'utf8');
    assert.match(log, /"code":"model_not_found"/);
    assert.ok(!log.includes(marker), 'the log quotes the client');
  });
});

describe('an invalid SWITCHYARD_CONFIG', () => {
  let broken;
  before(async () => {
    broken = await startStack({ config: '[server]\nauth_keys = []\n\n[[routes]]\nname = "x"\nmodels = ["ghost"]\n' });
  });
  after(async () => {
    await broken?.stop();
  });

  test('every request gets a generic 500; the log names the file, line and reason', async () => {
    for (const path of ['/healthz', '/v1/models']) {
      const res = await fetchWithDeadline(`${broken.base}${path}`);
      const body = await res.json();
      assert.equal(res.status, 500);
      assert.equal(body.error.type, 'server_error');
      assert.equal(body.error.code, 'configuration_error');
      assert.doesNotMatch(body.error.message, /SWITCHYARD_CONFIG|ghost/);
    }
    await new Promise((resolve) => setTimeout(resolve, 500)); // let wrangler flush its output
    assert.match(readFileSync(broken.logFile, 'utf8'), /invalid Switchyard config: SWITCHYARD_CONFIG:\d+:\d+: /);
  });
});

// After answering an upload it did not read to the end, wrangler dev's local proxy fails the next
// request with "Your worker restarted mid-request": this case gets a stack of its own.
describe('an oversize chunked upload', () => {
  let own;
  before(async () => {
    own = await startStack();
  });
  after(async () => {
    await own?.stop();
  });

  test('an oversize body sent without content-length is a 413 too', async () => {
    // A chunked upload on a connection of its own: the router answers before the upload ends,
    // which leaves that connection unusable for the requests after it.
    const { status, body } = await new Promise((resolve, reject) => {
      const req = http.request(
        `${own.base}/v1/chat/completions`,
        { method: 'POST', agent: false, headers: { authorization: `Bearer ${ROUTER_KEY}`, 'content-type': 'application/json' } },
        (res) => {
          let text = '';
          res.on('data', (c) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode, body: text }));
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write('x'.repeat(5000));
      req.end();
    });
    assert.equal(status, 413);
    assert.equal(JSON.parse(body).error.code, 'payload_too_large');
  });
});

describe('the routing model loads in the background from the first request', () => {
  let fresh;
  before(async () => {
    // startStack waits for /healthz to answer: that is the isolate's first request.
    fresh = await startStack();
  });
  after(async () => {
    await fresh?.stop();
  });

  test('it is ready with no routed request, and the first routed request finds it loaded', async (t) => {
    const started = performance.now();
    let health;
    do {
      await new Promise((resolve) => setTimeout(resolve, 100));
      health = await healthDetails(fresh.base);
    } while (health.encoder === 'not_loaded' && performance.now() - started < 30_000);
    assert.equal(health.encoder, 'ready', JSON.stringify(health));
    const res = await postJson(fresh.base, '/v1/route', { model: 'auto', messages: user('Write a haiku about autumn leaves') });
    assert.equal(res.status, 200);
    const timing = res.headers.get('server-timing');
    assert.match(timing, /embed;dur=/);
    // Loading takes about a second; workerd's clock ticks by the millisecond, so a request that
    // only finds the loaded model may still show a `load` phase of a tick or two.
    const load = Number(/\bload;dur=([\d.]+)/.exec(timing)?.[1] ?? 0);
    assert.ok(load < 10, `the first routed request waited ${load} ms for the model: ${timing}`);
    t.diagnostic(`ready ${Math.round(performance.now() - started)} ms after the first /healthz answer; first routed request: ${timing}`);
  });
});
