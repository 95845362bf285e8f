// Level 4's costs in the request path (issue E), through the built Worker under wrangler dev,
// against the fake upstream:
//   - conversations: the time a turn's Durable Object round trip adds. Setups `conversation`
//     (a [conversation] section: every turn recorded in its object) and `none` (the same config
//     without it), alternated for RUNS rounds (default 3). Each round sends REQUESTS (default 200)
//     chat turns one at a time, each the third turn of one of 20 conversations (named with
//     x-switchyard-conversation, a new message each time, so every turn is counted), naming
//     their route (no encoder, so no `judge` phase: the object alone). Per round: the client's
//     wall time p50/p90 and, with conversations, the `conversation` phase of Server-Timing.
//   - cascades: the time a cascade holds a stream. Streamed requests to a route whose cascade
//     keeps the cheap model's answer (the fake grades it 9/10), against the same model's stream
//     on a route without a cascade, alternated. Per round: time to the first content byte and
//     to the end at the client, and the `cascade` phase. The fake answers a whole request at
//     once and streams an event every 20 ms, so the hold measured here is the router's own
//     work plus two local calls; in production it is the cheap model's whole generation plus
//     the rating call.
// Prints JSON.
import { openaiClient, startStack } from '../tests/e2e/harness.mjs';

const runs = Number(process.env.RUNS ?? 3);
const requests = Number(process.env.REQUESTS ?? 200);

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return +sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(2);
};
const phase = (header, name) => {
  const entry = (header ?? '').split(', ').find((p) => p.startsWith(`${name};`));
  return entry ? Number(entry.split('dur=')[1]) : null;
};

const config = (conversations) => (url) => `
[server]
auth_keys = ["ROUTER_KEY"]

[providers.fake]
kind = "openai"
base_url = "${url}/v1"
api_key = "FAKE_UPSTREAM_KEY"

[models.primary]
provider = "fake"
upstream = "fake-primary"
context_window = 8192

[models.big]
provider = "fake"
upstream = "fake-big"
context_window = 8192

[[routes]]
name = "chat"
models = ["primary"]

[[routes]]
name = "cascaded"
cascade = { chain = ["primary", "big"], score = "self", min_score = 0.7 }

[default]
route = "chat"
${conversations ? '\n[conversation]\nescalate_to = "big"\n' : ''}`;

async function conversationRound(setup) {
  const stack = await startStack({ config: config(setup === 'conversation') });
  try {
    const client = openaiClient(stack.base);
    const turn = async (i) => {
      const messages = [
        { role: 'user', content: `Conversation ${i % 20}: how do tides work?` },
        { role: 'assistant', content: 'They follow the moon.' },
        { role: 'user', content: `Question ${i}: and why are there two a day?` },
      ];
      const headers = { 'x-switchyard-conversation': `bench-${i % 20}` };
      const started = performance.now();
      const { response } = await client.chat.completions.create({ model: 'chat', messages }, { headers }).withResponse();
      return { wall: performance.now() - started, conversation: phase(response.headers.get('server-timing'), 'conversation') };
    };
    for (let i = 0; i < 20; i++) await turn(i); // warm-up: every conversation's object exists
    const seen = [];
    for (let i = 0; i < requests; i++) seen.push(await turn(20 + i));
    const wall = seen.map((s) => s.wall);
    const lookups = seen.map((s) => s.conversation).filter((v) => v !== null);
    return {
      setup,
      p50_ms: quantile(wall, 0.5),
      p90_ms: quantile(wall, 0.9),
      ...(lookups.length ? { conversation_phase_p50_ms: quantile(lookups, 0.5), conversation_phase_p90_ms: quantile(lookups, 0.9) } : {}),
    };
  } finally {
    await stack.stop();
  }
}

async function cascadeRound() {
  const stack = await startStack({ config: config(false) });
  try {
    const client = openaiClient(stack.base);
    const answer = 'High tide comes twice a day because the moon pulls the near and far sides.';
    const stream = async (route) => {
      if (route === 'cascaded') {
        stack.fake.script({ model: 'fake-primary', answer });
        stack.fake.script({ model: 'fake-primary', answer: { grade: 9 } });
      } else {
        stack.fake.script({ model: 'fake-primary', answer });
      }
      const started = performance.now();
      const { data, response } = await client.chat.completions
        .create({ model: route, stream: true, messages: [{ role: 'user', content: 'Why are there two tides a day?' }] })
        .withResponse();
      let first = null;
      let text = '';
      for await (const chunk of data) {
        const piece = chunk.choices[0]?.delta?.content ?? '';
        if (piece && first === null) first = performance.now() - started;
        text += piece;
      }
      if (text !== answer) throw new Error(`${route} answered ${JSON.stringify(text)}`);
      return { first, end: performance.now() - started, hold: phase(response.headers.get('server-timing'), 'cascade') };
    };
    for (let i = 0; i < 10; i++) {
      await stream('chat');
      await stream('cascaded');
    }
    const seen = { chat: [], cascaded: [] };
    for (let i = 0; i < requests / 2; i++) {
      seen.chat.push(await stream('chat'));
      seen.cascaded.push(await stream('cascaded'));
    }
    const summary = (list) => ({
      first_content_p50_ms: quantile(list.map((s) => s.first), 0.5),
      first_content_p90_ms: quantile(list.map((s) => s.first), 0.9),
      end_p50_ms: quantile(list.map((s) => s.end), 0.5),
      ...(list[0].hold !== null ? { cascade_phase_p50_ms: quantile(list.map((s) => s.hold), 0.5), cascade_phase_p90_ms: quantile(list.map((s) => s.hold), 0.9) } : {}),
    });
    return { plain_stream: summary(seen.chat), cascade_kept: summary(seen.cascaded) };
  } finally {
    await stack.stop();
  }
}

const conversations = [];
const cascades = [];
for (let i = 0; i < runs; i++) {
  for (const setup of ['conversation', 'none']) conversations.push(await conversationRound(setup));
  cascades.push(await cascadeRound());
}
console.log(JSON.stringify({ requests_per_round: requests, conversations, cascades }, null, 2));
