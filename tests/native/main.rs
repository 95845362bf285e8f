//! Native tests of the routing core: one binary, a module per topic.

mod attempts;
mod cascade;
mod cli;
mod config;
mod conversation;
mod decision_log;
mod embedding;
mod evaluation_page;
mod fallback;
mod fuzz;
mod llm_router;
mod providers;
mod request;
mod routing;
mod static_encoder;
mod stats;
mod tokens;
mod upstream_call;
