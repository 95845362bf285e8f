//! Native tests of the routing core: one binary, a module per topic.

mod cli;
mod config;
mod request;
mod routing;
mod tokens;
