// End-to-end: level 4 across turns through `wrangler dev`, with conversation state in real
// (local, SQLite-backed) Durable Objects. A conversation that keeps asking the same thing
// escalates exactly at the configured turn and stays there; frustration escalates sooner; ten
// turns sent at once are all counted; the state survives a restart of wrangler dev; an admin key
// reads it; without the object the turn is routed statelessly, never refused.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe } from 'node:test';
import { ADMIN_KEY, fetchWithDeadline, openaiClient, postJson, ROUTER_KEY, startStack, test, testConfig } from './harness.mjs';

const withConversations = (url) => `${testConfig(url)}
[conversation]
escalate_to = "big"
unresolved_turns = 3
frustrated_turns = 2
`;

/** A conversation: the user's messages so far, with the assistant's answers between them. */
const history = (said) =>
  said.flatMap((text, i) => [...(i ? [{ role: 'assistant', content: `answer ${i}` }] : []), { role: 'user', content: text }]);

/** Sends the conversation's next turn; the response's headers and text. */
async function turn(base, said, { id, stream = false } = {}) {
  const client = openaiClient(base);
  const headers = id ? { 'x-switchyard-conversation': id } : {};
  const body = { model: 'auto', messages: history(said), stream };
  const { data, response } = await client.chat.completions.create(body, { headers }).withResponse();
  let text = '';
  if (stream) for await (const chunk of data) text += chunk.choices[0]?.delta?.content ?? '';
  else text = data.choices[0].message.content;
  const header = (name) => response.headers.get(name);
  return { level: header('x-switchyard-level'), model: header('x-switchyard-model'), conversation: header('x-switchyard-conversation'), decisionId: header('x-switchyard-decision-id'), text };
}

const admin = (base, id, key = ADMIN_KEY) =>
  fetchWithDeadline(`${base}/v1/admin/conversations/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${key}` } });

const unique = (name) => `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;

describe('conversations that escalate, in Durable Objects', () => {
  let stack;
  const stateDir = join(mkdtempSync(join(tmpdir(), 'switchyard-conversations-')), 'state');
  before(async () => {
    stack = await startStack({ config: withConversations, stateDir });
  });
  after(async () => {
    await stack?.stop();
  });

  test('a six-turn conversation escalates exactly at the configured turn and stays there', async () => {
    const id = unique('six-turns');
    const said = [];
    const levels = [];
    for (const text of ['How do I center a div?', 'How do I center a div?', 'How do I center a div?', 'How do I center a div?', 'Thanks, that works!', 'And vertically?']) {
      said.push(text);
      const answer = await turn(stack.base, said, { id });
      levels.push([answer.level, answer.model]);
      assert.match(answer.conversation, new RegExp(`^client:[0-9a-f]{16}:${id}$`));
    }
    // Turns 2–4 repeat the question: three unresolved turns, so turn 4 escalates; a thanks does
    // not step it down (sticky).
    assert.deepEqual(levels.map(([level]) => level === 'conversation'), [false, false, false, true, true, true]);
    assert.deepEqual(levels.slice(3).map(([, model]) => model), ['big', 'big', 'big']);
    // /v1/route, a dry run, reads the conversation without counting a turn.
    const dry = await postJson(stack.base, '/v1/route', { model: 'auto', messages: history([...said, 'And horizontally?']) }, { 'x-switchyard-conversation': id });
    assert.deepEqual([dry.json.level, dry.json.model], ['conversation', 'big']);
    // It shows where the conversation stands, as the playground draws it.
    assert.deepEqual(
      [dry.json.conversation.turns, dry.json.conversation.escalated_at_turn, dry.json.conversation.escalates_at_unresolved],
      [6, 4, 3],
    );
    const conversation = `client:${await keyTag(stack)}:${id}`;
    assert.equal((await (await admin(stack.base, conversation)).json()).state.turns, 6);
    const res = await admin(stack.base, `client:${'x'.repeat(16)}:${id}`);
    assert.equal(res.status, 404, 'another key tag is another conversation');
  });

  test('frustration escalates after two frustrated turns, streamed too, under a derived id', async () => {
    const opening = `Explain recursion to me (${unique('run')})`;
    const first = await turn(stack.base, [opening]);
    assert.equal(first.conversation, null, 'a first turn without a name makes no object');
    const second = await turn(stack.base, [opening, "No, that's not what I meant"], { stream: true });
    assert.notEqual(second.level, 'conversation');
    assert.match(second.conversation, /^derived:[0-9a-f]{32}$/);
    const third = await turn(stack.base, [opening, "No, that's not what I meant", 'Still wrong, you are not listening'], { stream: true });
    assert.equal(third.conversation, second.conversation, 'every later turn finds the same conversation');
    assert.equal(third.level, 'conversation');
    assert.match(third.text, /^echo from fake-big/);
    const state = await (await admin(stack.base, second.conversation)).json();
    assert.equal(state.state.frustrated, 2);
    assert.deepEqual(state.turns.map((t) => t.judgement.turn), ['frustrated', 'frustrated']);
    assert.equal(state.state.escalated_at_turn, 2);
  });

  test('a retried turn and a tool round are not counted again', async () => {
    const id = unique('retry');
    const said = ['What time is it in Tokyo right now?'];
    await turn(stack.base, said, { id });
    await turn(stack.base, said, { id });
    const tools = [{ type: 'function', function: { name: 'clock', parameters: { type: 'object', properties: {} } } }];
    const messages = [...history(said), { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'clock', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'c1', content: '09:00' }];
    const res = await postJson(stack.base, '/v1/chat/completions', { model: 'auto', messages, tools }, { 'x-switchyard-conversation': id });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const { state } = await (await admin(stack.base, res.headers.get('x-switchyard-conversation'))).json();
    assert.equal(state.turns, 1);
  });

  test('ten turns of one conversation sent at once are all counted', async () => {
    const id = unique('concurrent');
    await Promise.all(Array.from({ length: 10 }, (_, i) => turn(stack.base, [`Question number ${i} about tides`], { id })));
    const res = await admin(stack.base, `client:${await keyTag(stack)}:${id}`);
    assert.equal(res.status, 200);
    const { state, turns } = await res.json();
    assert.equal(state.turns, 10);
    assert.deepEqual(turns.map((t) => t.turn), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });

  test('the admin view needs an admin key; a bad id or header is a 400', async () => {
    const id = unique('keys');
    const { conversation } = await turn(stack.base, ['Hello there'], { id });
    assert.equal((await admin(stack.base, conversation, ROUTER_KEY)).status, 403);
    assert.equal((await admin(stack.base, 'not-an-id')).status, 400);
    const res = await postJson(stack.base, '/v1/chat/completions', { model: 'auto', messages: [{ role: 'user', content: 'hi' }] }, { 'x-switchyard-conversation': 'spaces are not allowed' });
    assert.equal(res.status, 400);
    assert.equal(res.json.error.param, 'x-switchyard-conversation');
  });

  test('bad ratings through /v1/feedback count as unresolved turns', async () => {
    const id = unique('feedback');
    const said = ['Summarise this contract for me', 'Summarise this contract for me'];
    const first = await turn(stack.base, said.slice(0, 1), { id });
    const second = await turn(stack.base, said, { id });
    // The same answer rated bad twice counts once; another answer's rating counts again.
    for (const decisionId of [second.decisionId, second.decisionId, first.decisionId]) {
      const res = await postJson(stack.base, '/v1/feedback', { decision_id: decisionId, rating: 'bad' });
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal(res.json.conversation, second.conversation);
    }
    const { state } = await (await admin(stack.base, second.conversation)).json();
    assert.deepEqual([state.turns, state.bad_feedback, state.escalated_at_turn], [2, 2, 2]);
    said.push('Something else entirely');
    assert.equal((await turn(stack.base, said, { id })).level, 'conversation');
  });

  test('state survives a restart of wrangler dev', async () => {
    const id = unique('restart');
    const said = ['Why is the sky blue?', 'Why is the sky blue?', 'Why is the sky blue?'];
    for (let i = 1; i <= said.length; i++) await turn(stack.base, said.slice(0, i), { id });
    await stack.stop();
    stack = await startStack({ config: withConversations, stateDir });
    said.push('Why is the sky blue?');
    const answer = await turn(stack.base, said, { id });
    assert.equal(answer.level, 'conversation', 'the fourth turn counts the three before the restart');
    const { state } = await (await admin(stack.base, answer.conversation)).json();
    assert.equal(state.turns, 4);
  });
});

/** The key tag of the harness's router key, read from a conversation's header. */
async function keyTag(stack) {
  const { conversation } = await turn(stack.base, ['What is the key tag?'], { id: unique('tag') });
  return conversation.split(':')[1];
}

describe('conversations without their Durable Object', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: withConversations, withoutConversations: true });
  });
  after(async () => {
    await stack?.stop();
  });

  test('a turn is routed statelessly, never refused', async () => {
    const said = [];
    for (let i = 0; i < 4; i++) {
      said.push('How do I center a div?');
      const answer = await turn(stack.base, said, { id: 'no-object' });
      assert.notEqual(answer.level, 'conversation');
      assert.match(answer.text, /^echo from/);
    }
  });
});

describe('idle conversations', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: (url) => `${withConversations(url)}idle_seconds = 2\n` });
  });
  after(async () => {
    await stack?.stop();
  });

  test('are deleted by their alarm', async () => {
    const { conversation } = await turn(stack.base, ['A question to forget'], { id: unique('idle') });
    assert.equal((await admin(stack.base, conversation)).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    assert.equal((await admin(stack.base, conversation)).status, 404);
  });
});
