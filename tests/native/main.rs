//! Native tests of the routing core: one binary, a module per topic.

mod cli;
mod config;
mod embedding;
mod request;
mod routing;
mod tokens;
