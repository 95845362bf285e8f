// A fake upstream for the end-to-end tests, on loopback only, speaking three APIs:
//   OpenAI     POST /v1/chat/completions
//   Anthropic  POST /anthropic/v1/messages
//   Gemini     POST /gemini/v1beta/models/{model}:generateContent
//              POST /gemini/v1beta/models/{model}:streamGenerateContent?alt=sse
//
// By default it answers with an echo of the last user message and the model it was asked for,
// streamed word by word in the API's own event format when asked to stream. When the request
// offers tools and the last message is not a tool result, it calls the first tool instead, with
// arguments {"city": "Paris"}; given a tool result, it answers "tool said: ...".
//
// Tests script faults by queueing steps: POST /__script (or `script(step)`) with
//   model           only a request for this upstream model takes the step (default: any)
//   status, body    answer with this error status (and body); headers: extra response headers
//   echo_auth       the error message repeats the credentials received (a careless upstream)
//   delay_ms        wait before answering; chunk_delay_ms: pause between stream events
//   refuse          destroy the connection without answering
//   stall_body      with status: send the status and the start of the body, then go silent
//   malformed       answer 200 with a body (or a first stream event) that is not JSON
//   cut_after       send this many stream events, then drop the connection
//   stall_after     send this many stream events, then go silent without closing
//   ping_after      send this many stream events, then a keep-alive comment every 200 ms, forever
//   trickle_body    a whole answer: send its first bytes, then one more every 200 ms, forever
//   answer_bytes    answer with a text of this many bytes
//   error_after     send this many stream events, then an error event in the API's format
//   answer          answer with this instead of the echo: a string is the text, an object its
//                   JSON; when the request offers tools (Anthropic's forced tool), the tool call's
//                   arguments (a string becomes {"text": ...})
//   refusal         refuse in the API's own way: OpenAI `message.refusal`, Anthropic
//                   `stop_reason: "refusal"`, Gemini `finishReason: "SAFETY"`
//   logprob         OpenAI, whole answers asked for `logprobs`: every token's log-probability
//                   (default -0.05)
// GET /__requests returns what it received (path, headers, body).
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
    if (url.pathname === '/__requests') return send(res, 200, requests);
    if (url.pathname === '/__reset') {
      script.length = 0;
      requests.length = 0;
      return send(res, 200, {});
    }

    const api = apiOf(url);
    if (!api || req.method !== 'POST') {
      return send(res, 404, { error: { message: `fake upstream has no ${req.method} ${url.pathname}`, type: 'not_found' } });
    }
    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      return send(res, 400, { error: { message: 'fake upstream got invalid JSON', type: 'invalid_request_error' } });
    }
    const model = api.model ?? body.model;
    const record = { path: url.pathname + url.search, headers: req.headers, body, model, closed: false };
    requests.push(record);
    // Whether the router hung up on this request (before or after its answer ended).
    res.on('close', () => {
      record.closed = true;
    });
    const at = script.findIndex((s) => !s.model || s.model === model);
    const step = at >= 0 ? script.splice(at, 1)[0] : {};

    if (step.refuse) return req.socket.destroy();
    if (step.delay_ms) await sleep(step.delay_ms);
    if (step.status && step.stall_body) {
      res.writeHead(step.status, { 'content-type': 'application/json' });
      return res.write('{"error": {"message": "scripted stall');
    }
    if (step.status) {
      let errorBody = step.body ?? api.error(step.status, `scripted failure ${step.status}`);
      if (step.echo_auth) {
        const credentials = req.headers.authorization ?? req.headers['x-api-key'] ?? req.headers['x-goog-api-key'];
        errorBody = api.error(step.status, `Incorrect API key provided: ${credentials}`);
      }
      return send(res, step.status, errorBody, step.headers);
    }
    const stream = api.stream ?? body.stream === true;
    if (step.malformed && !stream) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('<html>upstream proxy error</html>');
    }

    const answer = plan(api.name, body);
    answer.model = model;
    if (step.answer !== undefined) {
      if (answer.tool) answer.tool.args = typeof step.answer === 'object' ? step.answer : { text: step.answer };
      else answer.text = typeof step.answer === 'string' ? step.answer : JSON.stringify(step.answer);
    }
    if (step.answer_bytes) answer.text = 'x'.repeat(step.answer_bytes);
    if (step.refusal) Object.assign(answer, { refusal: step.refusal, text: null, tool: null });
    answer.logprob = step.logprob ?? -0.05;
    if (!stream && step.trickle_body) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"id": "trickle", ');
      const timer = setInterval(() => res.write(' '), 200);
      return res.on('close', () => clearInterval(timer));
    }
    if (!stream) return send(res, 200, api.whole(answer, body));

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    let sent = 0;
    for (const event of api.events(answer, body)) {
      if (step.malformed && sent === 0) {
        res.write('data: {"this is": not json\n\n');
        return res.end();
      }
      if (step.cut_after !== undefined && sent === step.cut_after) return res.socket.destroy();
      if (step.stall_after !== undefined && sent === step.stall_after) return; // silent, open
      if (step.ping_after !== undefined && sent === step.ping_after) {
        const timer = setInterval(() => res.write(': ping\n\n'), 200);
        return res.on('close', () => clearInterval(timer));
      }
      if (step.error_after !== undefined && sent === step.error_after) {
        res.write(api.errorEvent('scripted mid-stream failure'));
        return res.end();
      }
      if (sent > 0) await sleep(step.chunk_delay_ms ?? 20);
      res.write(event);
      sent++;
    }
    res.end();
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const base = `http://127.0.0.1:${port}`;
  return {
    url: base,
    script: (step) => script.push(step),
    requests: () => requests,
    reset: () => {
      script.length = 0;
      requests.length = 0;
    },
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Which API a path belongs to. */
function apiOf(url) {
  if (url.pathname === '/v1/chat/completions') return openai;
  if (url.pathname === '/anthropic/v1/messages') return anthropic;
  const gemini = url.pathname.match(/^\/gemini\/v1beta\/models\/([^:]+):(generateContent|streamGenerateContent)$/);
  if (gemini) {
    return { ...geminiApi, model: decodeURIComponent(gemini[1]), stream: gemini[2] === 'streamGenerateContent' };
  }
  return null;
}

/** What to answer: a tool call, or text. Reads the request in its own API's shape. */
function plan(api, body) {
  let lastUser = '';
  let toolResult = null;
  let tools = [];
  if (api === 'gemini') {
    const last = body.contents.at(-1);
    for (const part of last.parts) {
      if (part.text) lastUser = part.text;
      if (part.functionResponse) toolResult = JSON.stringify(part.functionResponse.response);
    }
    tools = body.tools?.[0]?.functionDeclarations?.map((f) => f.name) ?? [];
  } else {
    const last = body.messages.at(-1);
    const content = typeof last.content === 'string' ? [{ type: 'text', text: last.content }] : (last.content ?? []);
    for (const part of content) {
      if (part.type === 'text') lastUser = part.text;
      if (part.type === 'tool_result') toolResult = typeof part.content === 'string' ? part.content : JSON.stringify(part.content);
    }
    if (last.role === 'tool') toolResult = last.content;
    tools = (body.tools ?? []).map((t) => t.function?.name ?? t.name);
  }
  if (toolResult !== null) return { text: `tool said: ${toolResult}` };
  if (tools.length) return { tool: { id: 'call_fake_1', name: tools[0], args: { city: 'Paris' } } };
  return { text: null, lastUser };
}

const words = (text) => text.split(' ').map((w, i) => (i ? ' ' : '') + w);
const usage = (text) => ({ input: 10, output: text ? text.split(' ').length : 5 });
const sse = (data, event) => `${event ? `event: ${event}\n` : ''}data: ${JSON.stringify(data)}\n\n`;
const textOf = (answer) => answer.text ?? (answer.tool ? null : `echo from ${answer.model}: ${answer.lastUser}`);

const openai = {
  name: 'openai',
  error: (status, message) => ({ error: { message, type: status === 429 ? 'rate_limit_error' : 'server_error', code: 'scripted' } }),
  errorEvent: (message) => sse({ error: { message, type: 'server_error', code: 'scripted' } }),
  whole(answer, body) {
    const text = textOf(answer);
    const u = usage(text);
    const message = { role: 'assistant', content: answer.refusal ? null : text };
    if (answer.refusal) message.refusal = answer.refusal;
    if (answer.tool) {
      message.tool_calls = [{ id: answer.tool.id, type: 'function', function: { name: answer.tool.name, arguments: JSON.stringify(answer.tool.args) } }];
    }
    const logprobs = body.logprobs && text ? { content: words(text).map((token) => ({ token, logprob: answer.logprob, bytes: null, top_logprobs: [] })) } : null;
    return {
      id: 'chatcmpl-fake', object: 'chat.completion', created: 1700000000, model: answer.model,
      choices: [{ index: 0, message, logprobs, finish_reason: answer.tool ? 'tool_calls' : 'stop' }],
      usage: { prompt_tokens: u.input, completion_tokens: u.output, total_tokens: u.input + u.output },
    };
  },
  *events(answer, body) {
    const base = { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 1700000000, model: answer.model };
    const chunk = (delta, finish_reason = null) => sse({ ...base, choices: [{ index: 0, delta, finish_reason }] });
    const text = textOf(answer);
    yield chunk({ role: 'assistant', content: '' });
    if (answer.tool) {
      const args = JSON.stringify(answer.tool.args);
      yield chunk({ tool_calls: [{ index: 0, id: answer.tool.id, type: 'function', function: { name: answer.tool.name, arguments: '' } }] });
      yield chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(0, 5) } }] });
      yield chunk({ tool_calls: [{ index: 0, function: { arguments: args.slice(5) } }] });
    } else {
      for (const w of words(text)) yield chunk({ content: w });
    }
    yield chunk({}, answer.tool ? 'tool_calls' : 'stop');
    const u = usage(text);
    if (body.stream_options?.include_usage) {
      yield sse({ ...base, choices: [], usage: { prompt_tokens: u.input, completion_tokens: u.output, total_tokens: u.input + u.output } });
    }
    yield 'data: [DONE]\n\n';
  },
};

const anthropic = {
  name: 'anthropic',
  error: (status, message) => ({ type: 'error', error: { type: status === 529 ? 'overloaded_error' : 'api_error', message } }),
  errorEvent: (message) => sse({ type: 'error', error: { type: 'overloaded_error', message } }, 'error'),
  whole(answer) {
    const text = textOf(answer);
    const content = [];
    if (text && !answer.refusal) content.push({ type: 'text', text });
    if (answer.tool) content.push({ type: 'tool_use', id: answer.tool.id, name: answer.tool.name, input: answer.tool.args });
    const u = usage(text);
    return {
      id: 'msg_fake', type: 'message', role: 'assistant', model: answer.model, content,
      stop_reason: answer.refusal ? 'refusal' : answer.tool ? 'tool_use' : 'end_turn', stop_sequence: null,
      usage: { input_tokens: u.input, output_tokens: u.output },
    };
  },
  *events(answer) {
    const text = textOf(answer);
    const u = usage(text);
    yield sse({ type: 'message_start', message: { id: 'msg_fake', type: 'message', role: 'assistant', model: answer.model, content: [], usage: { input_tokens: u.input, output_tokens: 1 } } }, 'message_start');
    yield sse({ type: 'ping' }, 'ping');
    if (text) {
      yield sse({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }, 'content_block_start');
      for (const w of words(text)) yield sse({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: w } }, 'content_block_delta');
      yield sse({ type: 'content_block_stop', index: 0 }, 'content_block_stop');
    }
    if (answer.tool) {
      const args = JSON.stringify(answer.tool.args);
      yield sse({ type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: answer.tool.id, name: answer.tool.name, input: {} } }, 'content_block_start');
      yield sse({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: args.slice(0, 5) } }, 'content_block_delta');
      yield sse({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: args.slice(5) } }, 'content_block_delta');
      yield sse({ type: 'content_block_stop', index: 0 }, 'content_block_stop');
    }
    yield sse({ type: 'message_delta', delta: { stop_reason: answer.tool ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: u.output } }, 'message_delta');
    yield sse({ type: 'message_stop' }, 'message_stop');
  },
};

const geminiApi = {
  name: 'gemini',
  error: (status, message) => ({ error: { code: status, message, status: status === 429 ? 'RESOURCE_EXHAUSTED' : 'UNAVAILABLE' } }),
  errorEvent: (message) => sse({ error: { code: 503, message, status: 'UNAVAILABLE' } }),
  whole(answer) {
    const text = textOf(answer);
    const parts = [];
    if (text && !answer.refusal) parts.push({ text });
    if (answer.tool) parts.push({ functionCall: { name: answer.tool.name, args: answer.tool.args } });
    const u = usage(text);
    return {
      candidates: [{ content: { role: 'model', parts }, finishReason: answer.refusal ? 'SAFETY' : 'STOP', index: 0 }],
      usageMetadata: { promptTokenCount: u.input, candidatesTokenCount: u.output, totalTokenCount: u.input + u.output },
      modelVersion: answer.model, responseId: 'rsp-fake',
    };
  },
  *events(answer) {
    const text = textOf(answer);
    const u = usage(text);
    const event = (parts, finishReason) => {
      const candidate = { content: { role: 'model', parts }, index: 0 };
      if (finishReason) candidate.finishReason = finishReason;
      const data = { candidates: [candidate], modelVersion: answer.model, responseId: 'rsp-fake' };
      if (finishReason) data.usageMetadata = { promptTokenCount: u.input, candidatesTokenCount: u.output, totalTokenCount: u.input + u.output };
      return `data: ${JSON.stringify(data)}\r\n\r\n`;
    };
    if (text) {
      const pieces = words(text);
      for (const [i, w] of pieces.entries()) yield event([{ text: w }], !answer.tool && i === pieces.length - 1 ? 'STOP' : undefined);
    }
    if (answer.tool) yield event([{ functionCall: { name: answer.tool.name, args: answer.tool.args } }], 'STOP');
  },
};

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
