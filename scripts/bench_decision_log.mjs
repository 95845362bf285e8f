// What the decision log adds to a request (issue D1): the same chat requests, answered whole by
// the fake upstream, through the built Worker under wrangler dev, with the decision log (local
// D1, migrated) and with a wrangler.toml that has no D1 binding at all. Each request names a
// model (no encoder, no upstream wait beyond the fake's), so the difference is the log's.
// RUNS rounds (default 3) alternate the two setups; REQUESTS per round (default 200), one at a
// time. Prints JSON: client-side wall time p50/p90 per setup and round, and the rows written.
import { openaiClient, startStack } from '../tests/e2e/harness.mjs';

const runs = Number(process.env.RUNS ?? 3);
const requests = Number(process.env.REQUESTS ?? 200);
// A pause between requests lets the previous request's write finish first (local D1 is SQLite in
// the same workerd process, so a write still running takes CPU from the next request).
const gapMs = Number(process.env.GAP_MS ?? 0);

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};

/** `setup`: "log" (D1 migrated: rows written), "failing" (the binding, no tables: every write
 * fails at once) or "none" (no D1 binding). */
async function round(setup) {
  const withLog = setup === 'log';
  const stack = await startStack({ withoutDecisionLog: setup === 'none', migrate: setup !== 'failing' });
  try {
    const client = openaiClient(stack.base);
    const ask = () => client.chat.completions.create({ model: 'primary', messages: [{ role: 'user', content: 'hello there' }] });
    for (let i = 0; i < 20; i++) await ask(); // warm-up
    const wall = [];
    for (let i = 0; i < requests; i++) {
      const started = performance.now();
      await ask();
      wall.push(performance.now() - started);
      if (gapMs) await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const rows = withLog ? (await stack.query('SELECT count(*) AS n FROM decisions'))[0].n : 0;
    return { setup, p50_ms: +quantile(wall, 0.5).toFixed(2), p90_ms: +quantile(wall, 0.9).toFixed(2), rows };
  } finally {
    await stack.stop();
  }
}

const results = [];
const setups = (process.env.SETUPS ?? 'log,none').split(',');
for (let i = 0; i < runs; i++) {
  for (const setup of setups) results.push(await round(setup));
}
const median = (setup, key) => quantile(results.filter((r) => r.setup === setup).map((r) => r[key]), 0.5);
console.log(
  JSON.stringify(
    {
      requests_per_round: requests,
      gap_ms: gapMs,
      ...Object.fromEntries(setups.map((setup) => [setup, { p50_ms: median(setup, 'p50_ms'), p90_ms: median(setup, 'p90_ms') }])),
      rounds: results,
    },
    null,
    2,
  ),
);
