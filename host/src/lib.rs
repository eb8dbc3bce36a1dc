//! omnigent: a host for AI coding agent sessions.
//!
//! Data flows one way: HTTP/CLI input → the session's actor (its only writer) → the event log (store) → the
//! live channel → SSE subscribers. See `session` for the actor, `store` for the log and `stream` for replay.

pub mod cli;
pub mod config;
pub mod files;
pub mod ids;
pub mod llm;
pub mod model;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod session;
pub mod sse;
pub mod store;
pub mod stream;
pub mod subagent;
pub mod tools;
pub mod turn;

/// A reqwest client builder with the process's TLS crypto provider (ring) installed.
pub fn http_client() -> reqwest::ClientBuilder {
    // Idempotent: the first caller installs it, later calls are no-ops.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
