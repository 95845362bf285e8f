//! Switchyard: a smart LLM router that runs at the edge.
//!
//! Clients send ordinary OpenAI Chat Completions requests; Switchyard decides per request which
//! configured upstream model answers, forwards the request and streams the answer back, so cheap
//! models take easy prompts and expensive ones are kept for hard problems.
//!
//! The crate is split by platform, not by workspace: [`core`] is platform-free routing logic used
//! by both the Cloudflare Worker (`worker`, wasm32 only) and the native `switchyard` CLI;
//! [`native`] (native only) is the CLI's own IO, such as calling a model from a machine.

pub mod core;
pub mod embed;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;

#[cfg(target_arch = "wasm32")]
mod worker;

/// The routing config compiled into the Worker and used by the CLI when no `--config` is given.
pub const BUILTIN_CONFIG: &str = include_str!("../switchyard.toml");
