// The Switchyard playground. It routes what is typed through POST /v1/route and shows each
// level's signals against the settings they were weighed with, then streams the chosen model's
// answer from POST /v1/chat/completions with its cost and timing. The stats tab draws
// GET /v1/stats. No framework and no build step: the browser loads this file as it is.
//
// Safety: every text that comes from the router or a model is set as text, never as HTML; the
// keys live in sessionStorage (this tab only) and are sent only to this origin (the page's CSP
// allows no other).

const ROUTER_KEY = 'switchyard.routerKey';
const ADMIN_KEY = 'switchyard.adminKey';
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- building the page

/** An element with attributes and children (strings become text, never HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

/**
 * A horizontal bar for `value` in [0, max], with an optional threshold mark. Decoration only
 * (aria-hidden): the numbers beside it say the same to a screen reader.
 */
function bar(value, max = 1, threshold = null) {
  const share = (v) => Math.max(0, Math.min(1, max > 0 ? v / max : 0)) * 100;
  const chart = svgEl('svg', { class: 'bars', viewBox: '0 0 100 10', preserveAspectRatio: 'none', 'aria-hidden': 'true', focusable: 'false' });
  chart.append(svgEl('rect', { class: 'track', x: 0, y: 1, width: 100, height: 8 }));
  const under = threshold != null && value < threshold;
  chart.append(svgEl('rect', { class: under ? 'fill under' : 'fill', x: 0, y: 1, width: share(value), height: 8 }));
  if (threshold != null) {
    const x = share(threshold);
    chart.append(svgEl('line', { class: 'threshold', x1: x, x2: x, y1: 0, y2: 10, 'vector-effect': 'non-scaling-stroke' }));
  }
  return chart;
}

const fixed = (n, digits = 3) => (typeof n === 'number' ? n.toFixed(digits) : '—');
const yesNo = (ok, yes, no) => el('span', { class: ok ? 'badge yes' : 'badge no' }, ok ? yes : no);

/**
 * A table with a caption. Each cell is labelled with its column's name (data-label), so a narrow
 * screen can show each row as a card (playground.css); explicit roles keep it a table to screen
 * readers when the CSS changes how it is displayed.
 */
function table(caption, columns, rows) {
  const node = el('table', { class: 'cards', role: 'table' },
    el('caption', { class: 'note' }, caption),
    el('thead', { role: 'rowgroup' }, el('tr', { role: 'row' }, columns.map(([label, cls]) => el('th', { scope: 'col', role: 'columnheader', class: cls }, label)))),
    el('tbody', { role: 'rowgroup' }, rows));
  for (const row of node.tBodies[0].rows) {
    row.setAttribute('role', 'row');
    [...row.cells].forEach((cell, i) => {
      cell.setAttribute('role', cell.tagName === 'TH' ? 'rowheader' : 'cell');
      cell.dataset.label = columns[i]?.[0] ?? '';
    });
  }
  return node;
}

function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.filter(([, v]) => v != null && v !== '').map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function say(text, isError = false, where = 'status') {
  const node = $(where);
  node.textContent = text;
  node.classList.toggle('error', isError);
}

// ---------------------------------------------------------------- talking to the router

function authHeaders(key) {
  return key ? { authorization: `Bearer ${key}` } : {};
}

async function call(path, { method = 'GET', body, headers = {}, key = sessionStorage.getItem(ROUTER_KEY) } = {}) {
  return fetch(path, {
    method,
    headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...authHeaders(key), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
}

/** The OpenAI-style error of a failed response, as `{status, code, message}`. */
async function errorOf(res) {
  let error = {};
  try {
    error = (await res.json()).error ?? {};
  } catch {}
  return { status: res.status, code: error.code ?? '', message: error.message ?? res.statusText };
}

// ---------------------------------------------------------------- the router key

/** On the developer's own machine, where the key comes from (README, "What a newcomer sees"). */
const LOCAL_HINT = ['localhost', '127.0.0.1', '[::1]'].includes(location.hostname)
  ? ' Running wrangler dev with the README’s set-up? The key is SWITCHYARD_KEY in .dev.vars (sk-switchyard-dev).'
  : '';

function askForKey(reason) {
  $('key-panel').hidden = false;
  $('key-reason').textContent = reason + LOCAL_HINT;
  say(reason, true);
  $('forget-key').hidden = true;
  $('key').focus();
}

function setUpKey() {
  $('key-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    sessionStorage.setItem(ROUTER_KEY, $('key').value.trim());
    $('key').value = '';
    $('key-panel').hidden = true;
    $('forget-key').hidden = false;
    if (await loadModels()) say('Key set for this tab.');
  });
  $('forget-key').addEventListener('click', () => {
    sessionStorage.removeItem(ROUTER_KEY);
    askForKey('The key is forgotten. Enter one to route again.');
  });
  $('forget-key').hidden = !sessionStorage.getItem(ROUTER_KEY);
}

/** Fills the model list from GET /v1/models: true when it could; a 401 asks for the key. */
async function loadModels() {
  let data;
  try {
    const res = await call('/v1/models');
    if (res.status === 401) {
      const { message } = await errorOf(res);
      askForKey(sessionStorage.getItem(ROUTER_KEY) ? `That key was refused: ${message}` : 'This router needs a key to route.');
      return false;
    }
    if (!res.ok) {
      const { status, message } = await errorOf(res);
      say(`The router answered ${status}: ${message}`, true);
      return false;
    }
    ({ data } = await res.json());
  } catch (e) {
    say(`The router cannot be reached: ${e.message}`, true);
    return false;
  }
  const select = $('model');
  const chosen = select.value;
  select.replaceChildren(el('option', { value: 'auto' }, 'auto (let the router choose)'));
  const group = (label, kind) => {
    const entries = data.filter((m) => m.switchyard?.kind === kind);
    if (entries.length) select.append(el('optgroup', { label }, entries.map((m) => el('option', { value: m.id }, m.id))));
  };
  group('Routes (skip routing, use the route’s models)', 'route');
  group('Models (skip routing, use this model)', 'model');
  select.value = [...select.options].some((o) => o.value === chosen) ? chosen : 'auto';
  return true;
}

// ---------------------------------------------------------------- the conversation form

let turnCount = 0;

function addTurn(role = 'user', text = '', focus = false) {
  const item = $('turn-template').content.firstElementChild.cloneNode(true);
  turnCount += 1;
  for (const field of item.querySelectorAll('[data-id]')) field.id = `turn-${turnCount}-${field.dataset.id}`;
  for (const label of item.querySelectorAll('[data-for]')) label.htmlFor = `turn-${turnCount}-${label.dataset.for}`;
  item.querySelector('[data-id="role"]').value = role;
  item.querySelector('[data-id="text"]').value = text;
  item.querySelector('.remove').addEventListener('click', () => {
    item.remove();
    renumberTurns();
    $('turns').querySelector('textarea')?.focus();
  });
  $('turns').append(item);
  renumberTurns();
  if (focus) item.querySelector('textarea').focus();
}

/** Labels say which turn they belong to, so a screen reader tells them apart. */
function renumberTurns() {
  const turns = [...$('turns').children];
  turns.forEach((item, i) => {
    const n = turns.length > 1 ? ` ${i + 1}` : '';
    item.querySelector('[data-for="role"]').textContent = `Role${n}`;
    item.querySelector('[data-for="text"]').textContent = `Message${n}`;
    const remove = item.querySelector('.remove');
    remove.hidden = turns.length === 1;
    remove.setAttribute('aria-label', `Remove message${n}`);
  });
}

function typedMessages() {
  return [...$('turns').children]
    .map((item) => ({ role: item.querySelector('select').value, content: item.querySelector('textarea').value.trim() }))
    .filter((m) => m.content);
}

// ---------------------------------------------------------------- the decision

const LEVELS = {
  rules: 'the rules (level 1): a route’s size bounds and keywords matched',
  semantic: 'meaning (level 2): the prompt was closest to the route’s examples and cleared its threshold',
  classifier: 'the trained classifier (level 3): it was confident enough',
  llm: 'the LLM router (level 3): a model read the prompt and chose',
  default: 'the default route: no level matched',
  explicit: 'the request itself: it named the route or model',
  conversation: 'the conversation (level 4): earlier turns went badly, so it was escalated',
};

function levelSection(title, what, decided, ...content) {
  return el('section', { class: decided ? 'level decided' : 'level' },
    el('h3', {}, title, decided ? el('span', { class: 'badge yes' }, 'decided') : null),
    el('p', { class: 'what' }, what),
    ...content);
}

function boundsText(bounds) {
  if (!bounds) return 'any size';
  if (bounds.min != null && bounds.max != null) return `${bounds.min}–${bounds.max} tokens`;
  return bounds.min != null ? `at least ${bounds.min} tokens` : `at most ${bounds.max} tokens`;
}

function hitCell(hit) {
  return el('td', {}, hit ? el('span', {}, `“${hit.text}”`, el('br'), el('code', {}, hit.pattern)) : '—');
}

function rulesLevel(d) {
  const s = d.signals;
  const bounds = d.settings?.token_bounds ?? {};
  const size = `The prompt counts about ${s.prompt_tokens} tokens` +
    (s.max_output_tokens != null ? `, and asks for up to ${s.max_output_tokens} more in the answer.` : '.');
  const rows = s.rules.map((r) => el('tr', {},
    el('th', { scope: 'row' }, r.route),
    el('td', {}, boundsText(bounds[r.route]), ' ', yesNo(r.tokens_in_bounds, 'fits', 'does not fit')),
    hitCell(r.keyword),
    hitCell(r.excluded_by),
    el('td', {}, yesNo(r.matched, 'matched', 'no match'))));
  return levelSection('Size and keywords', 'Level 1. A route with rules matches when the prompt’s size is within its bounds and one of its keywords is found, unless an exclusion is found too. Routes are tried in the config’s order, rules and meaning alike: the first that matches wins.',
    d.level === 'rules',
    el('p', {}, size),
    rows.length
      ? table('Each route with rules', [['Route'], ['Size'], ['Keyword found'], ['Excluded by'], ['Result']], rows)
      : el('p', {}, 'No route has rules.'));
}

function meaningLevel(d) {
  const s = d.signals;
  if (!('semantic_available' in s)) return null;
  const what = 'Level 2. The prompt is embedded in the Worker and compared with each route’s examples; the closest route wins if its score clears its threshold (the red mark).';
  if (!s.semantic_available) {
    return levelSection('Meaning', what, false, el('p', { class: 'error' }, 'The encoder could not be used, so this request was routed without meaning.'));
  }
  const thresholds = d.settings?.thresholds ?? {};
  const routes = Object.keys(thresholds).sort((a, b) => (d.scores[b] ?? 0) - (d.scores[a] ?? 0));
  const rows = routes.map((route) => {
    const score = d.scores[route] ?? 0;
    const t = thresholds[route];
    return el('tr', {},
      el('th', { scope: 'row' }, route),
      el('td', { class: 'num' }, fixed(score)),
      el('td', { class: 'num' }, fixed(t)),
      el('td', { class: 'bar' }, bar(score, 1, t)),
      el('td', {}, yesNo(score >= t, 'clears', 'below')));
  });
  return levelSection('Meaning', what, d.level === 'semantic',
    table('Similarity to each route’s examples, highest first', [['Route'], ['Score', 'num'], ['Threshold', 'num'], ['Score against threshold'], ['Result']], rows));
}

function classifierLevel(d) {
  const c = d.signals.classifier;
  if (!c) return null;
  const least = d.settings?.classifier_min_confidence;
  const what = `Level 3. A classifier trained on labelled prompts picks a route; it decides when its confidence is at least ${fixed(least, 2)}.`;
  if (c.available === false) return levelSection('Trained classifier', what, false, el('p', {}, 'Configured, but not available (its file is missing or was refused).'));
  return levelSection('Trained classifier', what, d.level === 'classifier',
    el('p', {}, `It picked `, el('strong', {}, c.route), ` with confidence ${fixed(c.confidence)} `, yesNo(c.confidence >= least, 'enough to decide', 'not enough')),
    bar(c.confidence, 1, least));
}

function llmLevel(d) {
  const l = d.signals.llm;
  if (!l) return null;
  const what = 'Level 3. When the earlier levels are unsure, a small model reads the prompt and answers with a route name, under constrained output.';
  let text;
  if (!l.asked) text = 'Not asked: an earlier level was sure.';
  else if (l.route) text = `It chose “${l.route}”${l.cached ? ' (remembered from an identical prompt: no call, no cost)' : ''}${l.cost_usd != null ? `, for ${dollars(l.cost_usd)}` : ''}.`;
  else text = `It gave no usable answer (${l.declined}); routing went on without it.`;
  return levelSection('LLM router', what, d.level === 'llm', el('p', {}, text));
}

function cascadeLevel(d) {
  const c = d.settings?.cascades?.[d.route];
  if (!c) return null;
  return levelSection('Cascade', 'Level 4. This route’s cheapest model answers first; its answer is rated and replaced by the next model’s when the score is too low.', false,
    el('p', {}, `Chain: ${c.chain.join(' → ')}; rated by ${c.score}; kept at a score of at least ${c.min_score}. Each step appears with the answer.`));
}

function conversationLevel(d) {
  const j = d.signals.conversation;
  if (!j) return null;
  const detail = j.why ?? (j.similarity != null ? `similarity ${fixed(j.similarity)} to the previous message` : '');
  return levelSection('Conversation', 'Level 4. Each turn is judged against the previous one; repeated frustration or unresolved turns hand the whole conversation to a frontier model.',
    d.level === 'conversation',
    el('p', {}, `This turn reads as “${j.turn.replaceAll('_', ' ')}”${detail ? ` (${detail})` : ''}. Routing alone does not count the turn; asking the model does, under the conversation name if one is given.`),
    standing(d.conversation));
}

/** Where the conversation stands before this turn, against the limits that escalate it. */
function standing(c) {
  if (!c) return el('p', {}, 'No conversation is counted yet: give it a name above, or it is derived once an answer is in the history.');
  if (c.escalated_at_turn != null) {
    return el('p', {}, `Conversation ${c.id} escalated to ${c.escalate_to} at turn ${c.escalated_at_turn}: ${c.escalation_reason ?? 'its limits were crossed'}.`);
  }
  return table(`Conversation ${c.id}, before this turn (${c.turns} turn${c.turns === 1 ? '' : 's'} so far)`, [['Count'], ['Now', 'num'], ['Escalates at', 'num'], ['Toward it']], [
    el('tr', {}, el('th', { scope: 'row' }, 'unresolved turns in a row'), el('td', { class: 'num' }, c.unresolved_in_a_row), el('td', { class: 'num' }, c.escalates_at_unresolved), el('td', { class: 'bar' }, bar(c.unresolved_in_a_row, c.escalates_at_unresolved))),
    el('tr', {}, el('th', { scope: 'row' }, 'frustrated turns'), el('td', { class: 'num' }, c.frustrated), el('td', { class: 'num' }, c.escalates_at_frustrated), el('td', { class: 'bar' }, bar(c.frustrated, c.escalates_at_frustrated))),
  ]);
}

function planSection(d) {
  return levelSection('Models, in order', 'The route’s first model answers; the rest are fallbacks if it fails. A model the request cannot use is skipped.', false,
    el('ol', {}, planLines(d.plan, Boolean(d.settings?.cascades?.[d.route]))));
}

/** Each model of the plan: skipped (and why), or the first to be called, or the next one. */
function planLines(plan, cascade) {
  const next = cascade ? 'answers if the answer before it is rated too low, or fails' : 'fallback, if the ones before it fail';
  let called = 0;
  return plan.map((p) => {
    const role = p.skip ? el('span', { class: 'no' }, `skipped: ${p.detail ?? p.skip}`) : called++ === 0 ? 'answers first' : next;
    return el('li', {}, el('strong', {}, p.model), ' ', role);
  });
}

function timingSection(d) {
  const phases = Object.entries(d.timing_ms ?? {});
  if (!phases.length) return null;
  return levelSection('Router time', 'Milliseconds the router spent deciding, by phase.', false,
    facts(phases.map(([name, ms]) => [name, `${fixed(ms, 1)} ms`])));
}

function showDecision(d) {
  $('decision').hidden = false;
  const level = LEVELS[d.level] ?? d.level;
  $('verdict').replaceChildren('Goes to route ', el('strong', {}, d.route), ', model ', el('strong', {}, d.model), `. Decided by ${level}.`);
  $('reasons').replaceChildren(...d.reasons.map((r) => el('li', {}, r)));
  // A request that names its route or model is not routed: no level ran.
  const levels = d.level === 'explicit'
    ? [el('p', {}, 'Routing was skipped: the request named ', el('strong', {}, d.route === 'explicit' ? d.model : d.route), '.'), cascadeLevel(d), conversationLevel(d)]
    : [rulesLevel(d), meaningLevel(d), classifierLevel(d), llmLevel(d), cascadeLevel(d), conversationLevel(d)];
  $('levels').replaceChildren(...[...levels, planSection(d), timingSection(d)].filter(Boolean));
}

// ---------------------------------------------------------------- the answer

/** `Server-Timing` as [name, ms] pairs. */
function serverTiming(header) {
  return (header ?? '').split(',').map((part) => {
    const [name, ...params] = part.trim().split(';');
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith('dur='));
    return [name, dur ? Number(dur.slice(4)) : null];
  }).filter(([name, ms]) => name && ms != null);
}

/** `x-switchyard-cascade`: `model;score=0.42;verdict=rejected;cost_usd=…` per answer. */
function cascadeSteps(header) {
  if (!header) return [];
  return header.split(',').map((step) => {
    const [model, ...params] = step.trim().split(';');
    return { model, ...Object.fromEntries(params.map((p) => p.split('='))) };
  });
}

/** Reads an OpenAI SSE stream, calling `onEvent` with each parsed `data:` object; true at [DONE]. */
async function readEvents(body, onEvent) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, '');
      buffer = buffer.slice(newline + 1);
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') return true;
      try {
        onEvent(JSON.parse(data));
      } catch {}
    }
  }
}

function answeredBy(res) {
  const h = (name) => res.headers.get(name);
  return facts([
    ['Route', h('x-switchyard-route')],
    ['Model', h('x-switchyard-model')],
    ['Decided by', h('x-switchyard-level')],
    ['Calls', h('x-switchyard-attempts')],
    ['Skipped', h('x-switchyard-skipped')],
    ['Conversation', h('x-switchyard-conversation')],
    ['Decision id', h('x-switchyard-decision-id')],
  ]);
}

function cascadeTable(steps) {
  if (!steps.length) return null;
  return table('Cascade: each answer in order', [['Model'], ['Score', 'num'], ['Verdict'], ['Cost (USD)', 'num']],
    steps.map((s) => el('tr', {}, el('th', { scope: 'row' }, s.model), el('td', { class: 'num' }, s.score ?? '—'), el('td', {}, s.verdict ?? '—'), el('td', { class: 'num' }, s.cost_usd ?? '—'))));
}

/**
 * What was paid, in parts. `headerCost` (x-switchyard-cost-usd) is the whole request's when the
 * router could send it (an answer read whole: a cascade's kept answer, or an error); otherwise the
 * answer's own (its usage chunk) plus the cascade's rated answers (their steps). The LLM router's
 * call is the dry run's, made for the decision shown above.
 */
function costText(headerCost, answerCost, steps, routingCost) {
  const parts = [];
  let total = 0;
  const add = (label, usd) => {
    if (typeof usd !== 'number' || Number.isNaN(usd)) return;
    parts.push(`${label} ${dollars(usd)}`);
    total += usd;
  };
  if (headerCost) add('the request', Number(headerCost));
  else {
    add('the answer', answerCost);
    const rated = steps.filter((s) => s.verdict && s.verdict !== 'final' && s.cost_usd);
    if (rated.length) add('the cascade’s rated answers', rated.reduce((sum, s) => sum + Number(s.cost_usd), 0));
  }
  add('the LLM router’s call for the decision above', routingCost);
  if (!parts.length) return 'not reported (the model reported no usage, or has no price)';
  return parts.length === 1 ? dollars(total) : `${dollars(total)}: ${parts.join(', ')}`;
}

/**
 * Streams the chosen model's answer into the page. `decision` is the dry run's: when the real
 * request goes elsewhere (a fallback, an LLM router, a conversation escalated), the page says so.
 */
async function streamAnswer(request, conversation, decision) {
  const answer = $('answer');
  $('answer-section').hidden = false;
  $('answered-by').replaceChildren();
  $('answer-facts').replaceChildren();
  answer.textContent = '';
  answer.classList.remove('error');
  answer.setAttribute('aria-busy', 'true');
  say('Asking the chosen model…');
  try {
    await readAnswer(request, conversation, decision, answer);
  } finally {
    answer.setAttribute('aria-busy', 'false');
  }
}

async function readAnswer(request, conversation, decision, answer) {
  const started = performance.now();
  const res = await call('/v1/chat/completions', {
    method: 'POST',
    body: { ...request, stream: true, stream_options: { include_usage: true } },
    headers: conversation ? { 'x-switchyard-conversation': conversation } : {},
  });
  const headersAt = performance.now();
  const model = res.headers.get('x-switchyard-model');
  const steps = cascadeSteps(res.headers.get('x-switchyard-cascade'));
  const cascaded = steps.some((step) => step.verdict === 'rejected');
  const why = cascaded
    ? 'the cascade did not keep the cheaper answer (its steps are below)'
    : 'see Calls (a fallback after a failure), or the real request was decided otherwise';
  const elsewhere = model && model !== decision.model ? el('p', {}, `Answered by ${model}, not ${decision.model}: ${why}.`) : null;
  $('answered-by').replaceChildren(answeredBy(res), elsewhere ?? '');
  const cascade = () => cascadeTable(steps) ?? '';
  if (!res.ok) {
    const { status, code, message } = await errorOf(res);
    answer.classList.add('error');
    answer.textContent = `No answer (${status}${code ? `, ${code}` : ''}): ${message}`;
    // What was paid all the same: the LLM router's call, a cascade's rated answers.
    const paid = costText(res.headers.get('x-switchyard-cost-usd'), null, steps, decision.signals.llm?.cost_usd);
    $('answer-facts').replaceChildren(facts([['Cost', paid]]), cascade());
    return say(`The model did not answer: ${message}`, true);
  }
  let firstAt = null;
  let usage = null;
  let failure = null;
  let finished = false;
  try {
    finished = await readEvents(res.body, (event) => {
      if (event.error) failure = event.error;
      const piece = event.choices?.[0]?.delta?.content;
      if (piece) {
        firstAt ??= performance.now();
        answer.append(piece);
      }
      if (event.usage) usage = event.usage;
    });
  } catch (e) {
    failure = { message: `the connection was lost (${e.message})` };
  }
  const doneAt = performance.now();
  if (failure) answer.append(el('p', { class: 'error' }, `The stream failed: ${failure.message ?? failure.code}`));
  else if (!finished) answer.append(el('p', { class: 'error' }, 'The stream ended before the answer was complete.'));
  const ms = (t) => (t == null ? null : `${Math.round(t - started)} ms`);
  // The usage chunk's `cost` is the answer's own (README, "Cost and usage"); the header, when
  // the router sends one, is the whole request's.
  const answerCost = typeof usage?.cost === 'number' ? usage.cost : null;
  $('answer-facts').replaceChildren(
    facts([
      ['Cost', costText(res.headers.get('x-switchyard-cost-usd'), answerCost, steps, decision.signals.llm?.cost_usd)],
      ['Tokens', usage ? `${usage.prompt_tokens} in, ${usage.completion_tokens} out` : null],
      ['Headers after', ms(headersAt)],
      ['First words after', ms(firstAt)],
      ['Complete after', ms(doneAt)],
    ]),
    el('h3', {}, 'Router phases (Server-Timing)'),
    facts(serverTiming(res.headers.get('server-timing')).map(([name, v]) => [name, `${fixed(v, 1)} ms`])),
    cascade(),
  );
  const cut = Boolean(failure || !finished);
  say(cut ? 'The answer was cut short.' : `Answer complete in ${ms(doneAt)}.`, cut);
}

// ---------------------------------------------------------------- routing what was typed

let busy = false;

async function route(event) {
  event.preventDefault();
  if (busy) return;
  const messages = typedMessages();
  if (!messages.length || messages.at(-1).role !== 'user') {
    say('Type a message; the last one must be the user’s.', true);
    return [...$('turns').querySelectorAll('textarea')].at(-1)?.focus();
  }
  const conversation = $('conversation').value.trim();
  if (conversation && !$('conversation').checkValidity()) {
    say('A conversation name is 1 to 128 letters, digits and . _ : -', true);
    return $('conversation').focus();
  }
  const request = { model: $('model').value, messages };
  // aria-disabled rather than disabled: the button keeps the keyboard's focus.
  const button = $('route-button');
  busy = true;
  button.setAttribute('aria-disabled', 'true');
  try {
    say('Routing…');
    const res = await call('/v1/route', { method: 'POST', body: request, headers: conversation ? { 'x-switchyard-conversation': conversation } : {} });
    if (res.status === 401) {
      const { message } = await errorOf(res);
      return askForKey(`The router refused the key: ${message}`);
    }
    if (!res.ok) {
      const { status, message } = await errorOf(res);
      return say(`The router answered ${status}: ${message}`, true);
    }
    const decision = await res.json();
    showDecision(decision);
    say(`Goes to route ${decision.route}, model ${decision.model}, by ${decision.level}.`);
    if ($('ask-model').checked) await streamAnswer(request, conversation, decision);
    else $('answer-section').hidden = true;
  } catch (e) {
    say(`Something went wrong: ${e.message}`, true);
  } finally {
    busy = false;
    button.removeAttribute('aria-disabled');
  }
}

// ---------------------------------------------------------------- stats

function countsTable(caption, counts, total) {
  const rows = Object.entries(counts ?? {}).sort((a, b) => b[1] - a[1]).map(([name, n]) => el('tr', {},
    el('th', { scope: 'row' }, name),
    el('td', { class: 'num' }, n),
    el('td', { class: 'num' }, total ? `${Math.round((100 * n) / total)}%` : '—'),
    el('td', { class: 'bar' }, bar(n, total))));
  return rows.length ? table(caption, [['Name'], ['Decisions', 'num'], ['Share', 'num'], ['Share of all']], rows) : null;
}

function figure(label, value) {
  return el('div', { class: 'figure' }, el('span', { class: 'value' }, value), label);
}

/** Dollars to four decimals, or three significant digits below a cent. */
function dollars(n) {
  if (typeof n !== 'number') return '—';
  if (n === 0 || Math.abs(n) >= 0.01) return `$${n.toFixed(n === 0 ? 0 : 4)}`;
  return `$${n.toPrecision(3)}`;
}

function showStats(s) {
  const saved = s.cost?.saved_usd;
  $('stats').replaceChildren(
    el('h2', {}, 'Routing stats'),
    el('p', { class: 'note' }, `From ${new Date(s.window.from_ms).toLocaleString()} to ${new Date(s.window.to_ms).toLocaleString()}.`,
      s.truncated ? ' Only the newest decisions were counted: the window held more.' : ''),
    el('div', { class: 'figures' },
      figure('decisions', s.decisions),
      figure('errors', s.errors),
      figure('fallbacks (another model answered after the first failed)', s.fallbacks),
      figure('escalated conversation turns', s.escalations),
      figure('router’s own time, p50 / p95', `${fixed(s.routing_ms?.p50, 1)} / ${fixed(s.routing_ms?.p95, 1)} ms`),
      figure(`paid, for the ${s.cost?.priced_decisions ?? 0} answers that reported their usage`, dollars(s.cost?.cost_usd)),
      figure('had every request gone to its route’s priciest model', dollars(s.cost?.at_most_expensive_usd)),
      figure(typeof saved === 'number' && saved < 0 ? 'more than that (routing cost more)' : 'saved by routing', dollars(typeof saved === 'number' ? Math.abs(saved) : null))),
    el('h3', {}, 'By route'), countsTable('Decisions by route', s.by_route, s.decisions) ?? el('p', {}, 'No decisions in this window.'),
    el('h3', {}, 'By model'), countsTable('Decisions by model', s.by_model, s.decisions) ?? el('p', {}, '—'),
    el('h3', {}, 'By level'), countsTable('Decisions by the level that decided', s.by_level, s.decisions) ?? el('p', {}, '—'));
}

async function loadStats(event) {
  event.preventDefault();
  const key = $('admin-key').value.trim();
  sessionStorage.setItem(ADMIN_KEY, key);
  say('Counting…', false, 'stats-status');
  try {
    const res = await call(`/v1/stats?hours=${encodeURIComponent($('hours').value)}`, { key });
    if (!res.ok) {
      const { status, message } = await errorOf(res);
      return say(status === 401 ? `That admin key was refused: ${message}` : `The router answered ${status}: ${message}`, true, 'stats-status');
    }
    const stats = await res.json();
    showStats(stats);
    say(`${stats.decisions} decisions counted.`, false, 'stats-status');
  } catch (e) {
    say(`Something went wrong: ${e.message}`, true, 'stats-status');
  }
}

// ---------------------------------------------------------------- tabs

function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab) => {
    for (const t of tabs) {
      const chosen = t === tab;
      t.setAttribute('aria-selected', String(chosen));
      t.tabIndex = chosen ? 0 : -1;
      $(t.getAttribute('aria-controls')).hidden = !chosen;
    }
    tab.focus();
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener('click', () => select(tab));
    tab.addEventListener('keydown', (event) => {
      const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      select(tabs[(next + tabs.length) % tabs.length]);
    });
  });
}

// ---------------------------------------------------------------- start

setUpTabs();
setUpKey();
addTurn();
$('add-turn').addEventListener('click', () => {
  const last = [...$('turns').children].at(-1)?.querySelector('select').value;
  addTurn(last === 'user' ? 'assistant' : 'user', '', true);
});
$('prompt-form').addEventListener('submit', route);
$('prompt-form').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) $('prompt-form').requestSubmit();
});
$('stats-form').addEventListener('submit', loadStats);
$('admin-key').value = sessionStorage.getItem(ADMIN_KEY) ?? '';
loadModels();
