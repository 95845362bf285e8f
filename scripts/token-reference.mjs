// Adds real tokenizer counts to tests/data/token_sample.jsonl, the sample on which Switchyard's
// token estimate is checked (tests/native/tokens.rs). Counts are of the raw text, without chat
// framing, by js-tiktoken's bundled cl100k_base (GPT-4, GPT-3.5) and o200k_base (GPT-4o, GPT-4.1)
// vocabularies: no download needed.
//
//   node scripts/token-reference.mjs           rewrite the file with fresh counts
//   node scripts/token-reference.mjs --check   fail if the stored counts differ
import { readFileSync, writeFileSync } from 'node:fs';
import { Tiktoken } from 'js-tiktoken/lite';
import cl100k from 'js-tiktoken/ranks/cl100k_base';
import o200k from 'js-tiktoken/ranks/o200k_base';

const file = new URL('../tests/data/token_sample.jsonl', import.meta.url);
const encoders = { cl100k_base: new Tiktoken(cl100k), o200k_base: new Tiktoken(o200k) };
const rows = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
let stale = 0;
const out = rows.map((row) => {
  const fresh = { kind: row.kind, text: row.text };
  for (const [name, enc] of Object.entries(encoders)) {
    fresh[name] = enc.encode(row.text).length;
    if (row[name] !== fresh[name]) stale++;
  }
  return JSON.stringify(fresh);
});
if (process.argv.includes('--check')) {
  if (stale) {
    console.error(`token_sample.jsonl: ${stale} stored counts differ from js-tiktoken; run node scripts/token-reference.mjs`);
    process.exit(1);
  }
  console.log(`token_sample.jsonl: ${rows.length} rows match js-tiktoken`);
} else {
  writeFileSync(file, out.join('\n') + '\n');
  console.log(`wrote ${rows.length} rows`);
}
