// The playground page (issue F): served at / from the static assets beside the Worker, while the
// model files in the same assets stay the Worker's own; then the page itself, in Debian's
// chromium driven by playwright-core: a prompt typed, its route and streamed answer shown, the
// stats tab drawn, by mouse and by keyboard, on a desktop and a phone, with no serious
// accessibility violation (axe-core). Screenshots go to tests/e2e/.output/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe } from 'node:test';
import { chromium } from 'playwright-core';
import { ADMIN_KEY, CLASSIFIER_ROWS, fetchWithDeadline, ROUTER_KEY, runCli, startStack, test, testConfig } from './harness.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const OUTPUT = join(root, 'tests/e2e/.output');
const AXE = readFileSync(join(root, 'node_modules/axe-core/axe.min.js'), 'utf8');
/** What the fake model answers to the prompt the browser types. */
const HAIKU = 'Crimson leaves let go / the wind keeps none of them long / the branch learns the sky';

/** Debian's chromium (scripts/setup.sh installs it), or CHROMIUM. */
function chromiumPath() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('no chromium: run scripts/setup.sh (it installs Debian\'s chromium), or set CHROMIUM');
  }
}

/** Debian's chromium, headless, with the output folder for screenshots made. */
async function launchBrowser() {
  mkdirSync(OUTPUT, { recursive: true });
  return chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
}

/** The test config with a price on the model that answers, so the page has a cost to show, and
 * conversations counted. */
const pricedConfig = (url) => `${testConfig(url).replace('upstream = "fake-mini"\n', 'upstream = "fake-mini"\nprice = { input = 0.15, output = 0.60 }\n')}
[conversation]
escalate_to = "big"
unresolved_turns = 3
`;

/** A fresh page at the playground, collecting what the browser reports as errors. */
async function openPage(browser, base, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  // The page's first call is made without a key: the 401 it gets is how it knows to ask.
  const expected = (text) => text.includes('status of 401');
  page.on('console', (m) => m.type() === 'error' && !expected(m.text()) && problems.push(m.text()));
  page.on('pageerror', (e) => problems.push(e.message));
  page.setDefaultTimeout(20_000);
  await page.goto(`${base}/`);
  return { page, problems, close: () => context.close() };
}

/** axe-core's serious and critical violations of WCAG 2.1 A and AA on the page as it is. */
async function seriousViolations(page) {
  // Evaluated through the debugger protocol, which the page's CSP does not govern.
  const results = await page.evaluate(`${AXE}
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } })`);
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

/** The key the page asks for, given. */
async function giveKey(page) {
  await page.getByRole('heading', { name: 'Router key' }).waitFor();
  await page.getByRole('textbox', { name: 'Router key' }).fill(ROUTER_KEY);
  await page.getByRole('button', { name: 'Use this key' }).click();
  await page.getByRole('status').filter({ hasText: 'Key set' }).waitFor();
}


describe('the playground', () => {
  let stack;
  before(async () => {
    stack = await startStack({ config: pricedConfig });
  });
  after(async () => {
    await stack?.stop();
  });

  test('is served at / without a key, with headers that keep it to its own origin', async () => {
    const res = await fetchWithDeadline(`${stack.base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    assert.match(await res.text(), /<!doctype html>/i);
    const csp = res.headers.get('content-security-policy');
    for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(directive), `${directive} in ${csp}`);
    }
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
    const post = await fetchWithDeadline(`${stack.base}/`, { method: 'POST', body: '{}' });
    assert.equal(post.status, 405);
    const script = await fetchWithDeadline(`${stack.base}/playground/playground.js`);
    assert.equal(script.status, 200);
    assert.match(script.headers.get('content-type'), /javascript/);
  });

  test('does not hand out the model files that share its assets, however the path is spelled', async () => {
    for (const path of [
      '/encoder.onnx',
      '/tokenizer.json',
      '/router.static',
      '/index.json',
      '/playground/../encoder.onnx',
      '/playground/%2e%2e/encoder.onnx',
      '/playground/..%2fencoder.onnx',
      '/playground/nothing.js',
    ]) {
      const res = await fetchWithDeadline(`${stack.base}${path}`);
      assert.equal(res.status, 404, path);
      assert.equal((await res.json()).error.code, 'not_found', path);
    }
  });

  describe('in a browser', () => {
    let browser;
    before(async () => {
      browser = await launchBrowser();
    });
    after(async () => {
      await browser?.close();
    });

    test('routes a typed prompt, shows why, then streams the answer with its cost and timing', async () => {
      const { page, problems, close } = await openPage(browser, stack.base, { width: 1280, height: 900 });
      try {
        await giveKey(page);
        stack.fake.script({ answer: HAIKU, chunk_delay_ms: 20 });
        await page.getByRole('textbox', { name: 'Message', exact: true }).fill('Write a haiku about autumn leaves');
        await page.getByRole('button', { name: 'Route', exact: true }).click();

        const verdict = page.locator('#verdict');
        await verdict.filter({ hasText: 'creative' }).waitFor();
        assert.match(await verdict.innerText(), /Goes to route creative, model mini\. Decided by meaning \(level 2\)/);
        // Level 2's table: creative first, its score above its threshold.
        const first = page.locator('table:has(caption:text("Similarity")) tbody tr').first();
        assert.match(await first.innerText(), /^creative\s+[\d.]+\s+0\.350\s+clears/);
        // Level 1's table says why code did not take it.
        assert.match(await page.locator('table:has(caption:text("rules")) tbody').innerText(), /code/);

        const answer = page.locator('#answer');
        await answer.filter({ hasText: HAIKU }).waitFor();
        await page.getByRole('status').filter({ hasText: 'Answer complete' }).waitFor();
        assert.equal(await answer.getAttribute('aria-busy'), 'false');
        const facts = await page.locator('#answer-facts').innerText();
        assert.match(facts, /Cost\s+\$\d\.\d+e-\d|Cost\s+\$0\.0000\d/);
        assert.match(facts, /First words after\s+\d+ ms/);
        assert.match(facts, /upstream\s+[\d.]+ ms/);
        assert.match(await page.locator('#answered-by').innerText(), /Model\s+mini/);

        assert.deepEqual(await seriousViolations(page), []);
        await page.screenshot({ path: join(OUTPUT, 'playground-desktop.png'), fullPage: true });
        assert.deepEqual(problems, [], 'no errors in the browser (a CSP violation would be one)');
      } finally {
        await close();
      }
    });

    test('works by keyboard alone, and on a phone', async () => {
      const { page, problems, close } = await openPage(browser, stack.base, { width: 390, height: 844 });
      try {
        await giveKey(page);
        // Tab into the message, type, and send with Ctrl+Enter: no pointer involved.
        await page.getByRole('textbox', { name: 'Message', exact: true }).focus();
        await page.keyboard.type('Write a SQL query for the top customers');
        await page.keyboard.press('Control+Enter');
        await page.locator('#verdict').filter({ hasText: 'Decided by the rules' }).waitFor();
        assert.match(await page.locator('#verdict').innerText(), /route code, model coder/);
        await page.getByRole('status').filter({ hasText: /Answer complete|did not answer/ }).waitFor();
        // Nothing is wider than the phone's screen.
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        const widest = await page.evaluate(() =>
          [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 5).map((e) => `${e.tagName}#${e.id}.${e.className?.baseVal ?? e.className}`));
        assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone: ${widest}`);
        assert.deepEqual(await seriousViolations(page), []);
        await page.screenshot({ path: join(OUTPUT, 'playground-phone.png'), fullPage: true });

        // The tabs follow the arrow keys.
        await page.getByRole('tab', { name: 'Route a prompt' }).focus();
        await page.keyboard.press('ArrowRight');
        assert.equal(await page.getByRole('tab', { name: 'Routing stats' }).getAttribute('aria-selected'), 'true');
        assert.ok(await page.locator('#stats-view').isVisible());
        assert.deepEqual(problems, []);
      } finally {
        await close();
      }
    });

    test('shows where a named conversation stands, and counts a turn only when the model is asked', async () => {
      const { page, problems, close } = await openPage(browser, stack.base, { width: 1280, height: 900 });
      try {
        await giveKey(page);
        const message = (n) => page.getByRole('textbox', { name: `Message ${n}`, exact: true });
        await page.getByRole('textbox', { name: 'Message', exact: true }).fill('How do I center a div?');
        await page.getByRole('button', { name: 'Add a turn' }).click();
        await message(2).fill('Use flexbox on the parent.');
        await page.getByRole('button', { name: 'Add a turn' }).click();
        await message(3).fill('How do I center a div?');
        await page.getByLabel(/Conversation name/).fill(`playground-${Date.now()}`);
        const caption = page.locator('caption', { hasText: 'before this turn' });
        await page.getByRole('button', { name: 'Route', exact: true }).click();
        await page.getByRole('status').filter({ hasText: 'Answer complete' }).waitFor();
        assert.match(await caption.innerText(), /\(0 turns so far\)/);
        assert.match(await page.locator('.level', { hasText: 'Level 4. Each turn' }).innerText(), /reads as “rephrased”/);
        // The answer counted the turn: routed again, the conversation has one, unresolved.
        await page.getByRole('button', { name: 'Route', exact: true }).click();
        await caption.filter({ hasText: '(1 turn so far)' }).waitFor();
        const unresolved = await page.locator('tr', { hasText: 'unresolved turns in a row' }).innerText();
        assert.match(unresolved, /unresolved turns in a row\s+1\s+3/);
        assert.deepEqual(await seriousViolations(page), []);
        assert.deepEqual(problems, []);
      } finally {
        await close();
      }
    });

    test('draws the routing stats with an admin key', async () => {
      const { page, problems, close } = await openPage(browser, stack.base, { width: 1280, height: 900 });
      try {
        await page.getByRole('tab', { name: 'Routing stats' }).click();
        await page.getByLabel('Admin key').fill('not-the-admin-key');
        await page.getByRole('button', { name: 'Show stats' }).click();
        await page.locator('#stats-status').filter({ hasText: 'refused' }).waitFor();

        await page.getByLabel('Admin key').fill(ADMIN_KEY);
        await page.getByRole('button', { name: 'Show stats' }).click();
        await page.locator('#stats-status').filter({ hasText: 'decisions counted' }).waitFor();
        // The earlier tests' answers are in the log: creative and code among the routes.
        const byRoute = await page.locator('table:has(caption:text("by route")) tbody').innerText();
        assert.match(byRoute, /creative/);
        assert.match(byRoute, /code/);
        assert.deepEqual(await seriousViolations(page), []);
        await page.screenshot({ path: join(OUTPUT, 'playground-stats.png'), fullPage: true });
        assert.deepEqual(problems, [], 'only the refused keys are errors');
      } finally {
        await close();
      }
    });
  });
});

describe('the playground, with an LLM router and a cascade', () => {
  // Nothing decides "What is the boiling point of water?" before the LLM router (the `short`
  // rule is gone); it picks the cascade's route, whose cheap answer is graded low and replaced.
  const config = (url) => `${testConfig(url).replace('[[routes]]\nname = "short"\nmax_tokens = 60\nmodels = ["small"]\n', '')}
[[routes]]
name = "cascade-self"
description = "Questions of fact"
models = ["secondary"]
cascade = { chain = ["primary", "secondary"], score = "self", min_score = 0.7 }

[llm_router]
model = "sonnet"
when = "uncertain"
routes = ["code", "creative", "chat", "cascade-self"]
`;
  let stack;
  let browser;
  before(async () => {
    [stack, browser] = await Promise.all([startStack({ config }), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('shows the LLM router\'s choice and each step of the cascade', async () => {
    // The dry run asks the LLM router; the answer's request finds its choice remembered.
    stack.fake.script({ model: 'fake-sonnet', answer: { route: 'cascade-self' } });
    stack.fake.script({ model: 'fake-sonnet', answer: { route: 'cascade-self' } });
    stack.fake.script({ model: 'fake-primary', answer: 'WEAK ANSWER' });
    stack.fake.script({ model: 'fake-primary', answer: { grade: 2 } });
    const { page, problems, close } = await openPage(browser, stack.base, { width: 1280, height: 900 });
    try {
      await giveKey(page);
      await page.getByRole('textbox', { name: 'Message', exact: true }).fill('What is the boiling point of water?');
      await page.getByRole('button', { name: 'Route', exact: true }).click();
      await page.getByRole('status').filter({ hasText: 'Answer complete' }).waitFor();
      assert.match(await page.locator('#verdict').innerText(), /route cascade-self, model primary\. Decided by the LLM router/);
      assert.match(await page.locator('.level', { has: page.getByRole('heading', { name: /^LLM router/ }) }).innerText(), /It chose “cascade-self”, for \$/);
      assert.match(await page.locator('.level', { has: page.getByRole('heading', { name: 'Cascade' }) }).innerText(), /Chain: primary → secondary; rated by self; kept at a score of at least 0\.7/);
      assert.match(await page.locator('#answer').innerText(), /^echo from fake-secondary/);
      const steps = await page.locator('table:has(caption:text("Cascade")) tbody').innerText();
      assert.match(steps, /primary\s+0\.20\s+rejected/);
      assert.match(steps, /secondary\s+.*final/);
      assert.match(await page.locator('#answered-by').innerText(), /Answered by secondary, not primary: the cascade did not keep the cheaper answer/);
      // Paid: the strong answer, the weak one and its grading, and the LLM router's call.
      assert.match(await page.locator('#answer-facts').innerText(), /Cost\s+\$[\d.e-]+: the answer \$[\d.e-]+, the cascade’s rated answers \$[\d.e-]+, the LLM router’s call for the decision above \$[\d.e-]+/);
      assert.deepEqual(await seriousViolations(page), []);
      await page.screenshot({ path: join(OUTPUT, 'playground-cascade.png'), fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});

describe('the playground, with a trained classifier', () => {
  // A head trained by the CLI on tests/data/classifier_rows.jsonl, served with the encoder and
  // the page from a scratch assets folder (as scripts/assemble-assets.sh lays them out).
  const withClassifier = (url) => `${testConfig(url)}\n[classifier]\npath = "classifier.json"\nmin_confidence = 0.5\n`;
  let stack;
  let browser;
  before(async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'switchyard-playground-'));
    for (const file of ['encoder.onnx', 'tokenizer.json']) copyFileSync(join(root, 'model', file), join(scratch, file));
    cpSync(join(root, 'playground'), join(scratch, 'playground'), { recursive: true });
    const configFile = join(scratch, 'config.toml');
    writeFileSync(configFile, withClassifier('http://127.0.0.1:9'));
    runCli(configFile, scratch, ['train', CLASSIFIER_ROWS]);
    [stack, browser] = await Promise.all([startStack({ config: withClassifier, assets: scratch }), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('shows the classifier\'s pick and its confidence against the least it needs', async () => {
    const { page, problems, close } = await openPage(browser, stack.base, { width: 1280, height: 900 });
    try {
      await giveKey(page);
      await page.getByRole('textbox', { name: 'Message', exact: true }).fill('Write a short poem about the ocean at night');
      await page.getByRole('checkbox', { name: /ask the chosen model/ }).uncheck();
      await page.getByRole('button', { name: 'Route', exact: true }).click();
      await page.locator('#verdict').filter({ hasText: 'creative' }).waitFor();
      assert.match(await page.locator('#verdict').innerText(), /Decided by the trained classifier \(level 3\)/);
      const level = await page.locator('.level', { has: page.getByRole('heading', { name: /^Trained classifier/ }) }).innerText();
      assert.match(level, /decides when its confidence is at least 0\.50/);
      assert.match(level, /It picked creative with confidence [01]\.\d{3} enough to decide/);
      assert.ok(await page.locator('#answer-section').isHidden(), 'no model was asked');
      assert.deepEqual(await seriousViolations(page), []);
      assert.deepEqual(problems, []);
    } finally {
      await close();
    }
  });
});
