//! Native-only IO for the CLI: calling upstream models from a machine rather than from the
//! Worker. Same provider translations and the same retry rules as the Worker (`core`), only
//! the transport differs (blocking HTTP, ureq); the Worker never compiles this module. Also what only the CLI draws: the evaluation page.

pub mod evaluation_page;
pub mod upstream;
