-- The decision log: one row per routed chat request (src/core/decision_log.rs writes it).
-- Applied with `wrangler d1 migrations apply switchyard-decisions --local` (scripts/setup.sh,
-- the tests) and `--remote` before a deploy that needs it (README, "Decision log").
CREATE TABLE decisions (
  id TEXT PRIMARY KEY,                 -- x-switchyard-decision-id
  created_at INTEGER NOT NULL,         -- ms since the Unix epoch
  route TEXT NOT NULL,
  model TEXT NOT NULL,                 -- the model that answered (else the route's first)
  level TEXT NOT NULL,                 -- rules | semantic | classifier | llm | conversation | default | explicit
  confidence REAL,                     -- the deciding level's score or confidence, when it has one
  scores TEXT NOT NULL,                -- JSON: every route's score
  signals TEXT NOT NULL,               -- JSON: what each level observed (as /v1/route's signals)
  reasons TEXT NOT NULL,               -- JSON array of strings
  prompt_tokens INTEGER NOT NULL,      -- the router's estimate before the call
  usage TEXT,                          -- JSON: the upstream's usage, when reported
  cost_usd REAL,                       -- answer and LLM-router call
  timing TEXT NOT NULL,                -- JSON: each Server-Timing phase in ms
  attempts TEXT,                       -- as x-switchyard-attempts
  skipped TEXT,                        -- as x-switchyard-skipped
  stream INTEGER NOT NULL,             -- 1 for a streamed answer
  status INTEGER NOT NULL,             -- the HTTP status sent
  outcome TEXT NOT NULL,               -- complete | error | client_closed
  text TEXT,                           -- the routing text, with [log] store_text = "full"
  text_sha256 TEXT,                    -- its SHA-256, with store_text = "hash" or "full"
  feedback_rating TEXT,                -- good | bad (POST /v1/feedback)
  feedback_route TEXT,                 -- the route it should have gone to
  feedback_at INTEGER
);
CREATE INDEX decisions_by_time ON decisions (created_at);
CREATE INDEX decisions_by_level ON decisions (level, created_at);
CREATE INDEX decisions_by_route ON decisions (route, created_at);
