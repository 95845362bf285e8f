// A fake OpenAI-compatible upstream for the end-to-end tests, listening on loopback only.
//
// By default it answers every chat completion with an echo of the last user message and the
// model it was asked for, streamed as SSE (with a pause between chunks) when `stream` is true.
// Tests script faults by queueing them: POST /__script {"status", "body", "delay_ms",
// "chunk_delay_ms", "echo_auth"} applies to the next chat request. GET /__requests returns what it
// received (bodies and headers), so tests can check what the router forwarded.
import http from 'node:http';

export async function startFakeUpstream() {
  const script = [];
  const requests = [];

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, 'http://fake');

    if (url.pathname === '/__script' && req.method === 'POST') {
      script.push(JSON.parse(raw));
      return send(res, 200, { queued: script.length });
    }
    if (url.pathname === '/__requests') {
      return send(res, 200, requests);
    }
    if (url.pathname === '/__reset') {
      script.length = 0;
      requests.length = 0;
      return send(res, 200, {});
    }
    if (url.pathname !== '/v1/chat/completions' || req.method !== 'POST') {
      return send(res, 404, { error: { message: `fake upstream has no ${req.method} ${url.pathname}`, type: 'not_found' } });
    }

    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      return send(res, 400, { error: { message: 'fake upstream got invalid JSON', type: 'invalid_request_error' } });
    }
    requests.push({ headers: req.headers, body });
    const step = script.shift() ?? {};
    if (step.delay_ms) await sleep(step.delay_ms);
    if (step.status) {
      let errorBody = step.body ?? { error: { message: `scripted failure ${step.status}`, type: 'server_error', code: 'scripted' } };
      if (step.echo_auth) {
        // A careless upstream that repeats the credentials it was sent.
        errorBody = { error: { message: `Incorrect API key provided: ${req.headers.authorization}`, type: 'invalid_request_error', code: 'invalid_api_key' } };
      }
      return send(res, step.status, errorBody);
    }

    const lastUser = [...body.messages].reverse().find((m) => m.role === 'user');
    const text = typeof lastUser?.content === 'string' ? lastUser.content : JSON.stringify(lastUser?.content ?? '');
    const answer = `echo from ${body.model}: ${text}`;
    const usage = { prompt_tokens: 10, completion_tokens: answer.split(' ').length, total_tokens: 10 + answer.split(' ').length };
    const base = { id: 'chatcmpl-fake', created: 1700000000, model: body.model };

    if (!body.stream) {
      return send(res, 200, {
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }],
        usage,
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const event = (data) => res.write(`data: ${JSON.stringify(data)}\n\n`);
    const chunk = (delta, finish_reason = null) =>
      event({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason }] });
    chunk({ role: 'assistant', content: '' });
    const words = answer.split(' ');
    for (let i = 0; i < words.length; i++) {
      await sleep(step.chunk_delay_ms ?? 20);
      chunk({ content: (i ? ' ' : '') + words[i] });
    }
    chunk({}, 'stop');
    if (body.stream_options?.include_usage) event({ ...base, object: 'chat.completion.chunk', choices: [], usage });
    res.end('data: [DONE]\n\n');
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    script: (step) => script.push(step),
    requests: () => requests,
    reset: () => {
      script.length = 0;
      requests.length = 0;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
