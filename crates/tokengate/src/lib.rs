//! `tokengate`: the binary's code, as a library so the integration tests can build the HTTP
//! router and drive it without sockets. Thin by design: the logic lives in `jose`, `oauth`
//! and `store`; here are the CLI, the configuration, and the wiring.

pub mod boot;
pub mod cli;
pub mod commands;
pub mod config;
mod demo;
pub mod error;
mod input;
pub mod log;
pub mod server;
