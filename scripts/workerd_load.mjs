// What the workerd benchmark and profiler send: the built-in config (its router key swapped for
// the test harness's) and the four prompts of `switchyard bench`, as `/v1/route` requests.
import { readFileSync } from 'node:fs';

export const config = readFileSync(new URL('../switchyard.toml', import.meta.url), 'utf8').replace(
  'auth_keys = ["SWITCHYARD_KEY"]',
  'auth_keys = ["ROUTER_KEY"]',
);

export const prompts = [
  'How do I write a SQL join across three tables?',
  'Tell me a joke about Python and the people who love it',
  "What's a good way to plan a weekend hiking trip in the Alps with kids?",
  "Can you refactor this Rust function so it doesn't clone the vector on every call?",
];

/** POSTs `text` to the stack's /v1/route; returns the response (status checked by the caller). */
export function route(base, text) {
  return fetch(`${base}/v1/route`, {
    method: 'POST',
    headers: { authorization: 'Bearer sk-router-e2e-0123456789', 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'auto', messages: [{ role: 'user', content: text }] }),
  });
}
