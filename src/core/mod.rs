//! The routing core: plain Rust with no platform types.
//!
//! Nothing in here may name `worker`, `js-sys`, `wasm-bindgen`, `tokio` or `clap`; the target-gated
//! dependencies in Cargo.toml make that a compile error rather than a convention, so everything
//! here is tested natively and behaves identically inside the Worker.

pub mod admin_api;
pub mod api;
pub mod attempts;
pub mod auth;
pub mod body_limits;
pub mod cascade;
pub mod classifier;
pub mod config;
pub mod conversation;
pub mod cors;
pub mod decide;
pub mod decision;
pub mod decision_log;
pub mod embeddings_api;
pub mod error;
pub mod evaluation;
pub mod fallback;
pub mod feedback;
pub mod headers;
pub mod llm_router;
pub mod pipeline;
pub mod playground;
pub mod providers;
pub mod relay;
pub mod request;
pub mod rules;
pub mod semantic;
pub mod sse;
pub mod stats;
pub mod timing;
pub mod tokens;
pub mod upstream_call;
