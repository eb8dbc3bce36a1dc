//! omnigent: a host for AI coding agent sessions.
//!
//! Data flows one way: HTTP/CLI input → the session's actor (its only writer) → the event log (store) → the
//! live channel → SSE subscribers. Where each concern lives:
//! - `session`: the registry and one actor per live session (`actor`), the transaction it builds (`draft`), what
//!   each event changes (`fold`), and the seam through which it starts turns (`runner`);
//! - `turn`: a WASM harness turn — its driver, the policy `gate` any kind of turn calls, the `journal` that makes
//!   it durable, and one file per WIT interface the harness imports;
//! - `protocol`: the wire vocabulary, every event name and payload; `record`: the session records it folds into;
//!   `conversation`: the model's view of a transcript (items projected to harness messages);
//! - `store`: the log and its folds on SQLite or Postgres; `stream`: replay-then-live for subscribers;
//! - `cluster`: several replicas on one Postgres — who writes which session, commit wake-ups, adoption;
//! - `remote`: runners — another machine makes a session's model and tool calls (`omnigent runner`);
//! - `policy`: policy declarations, the chain, the components; `config`: session YAML; `llm`: model providers;
//! - `sandbox`: where a session's builtin `tools` may reach (bubblewrap, roots, the workspace root);
//! - `mcp`: MCP servers' tools (rmcp), per session;
//! - `skills`: SKILL.md instructions the model loads on demand (`load_skill`);
//! - `native`: vendor CLIs (Claude Code) run in a tmux terminal owned by the session, bridged into it;
//! - `server`: the HTTP API; `cli`: the `omnigent` command;
//! - `stages`: the turn path's stages as `tracing` spans, and their times when the server keeps them.

pub(crate) mod bounds;
pub mod cli;
pub mod cluster;
pub mod config;
pub(crate) mod conversation;
pub mod credentials;
pub mod files;
pub mod ids;
pub mod llm;
pub mod mcp;
pub mod native;
pub mod policy;
pub mod private_files;
pub(crate) mod program;
pub(crate) mod protocol;
pub mod record;
pub(crate) mod regular_file;
pub mod remote;
pub mod sandbox;
pub mod server;
pub mod session;
pub(crate) mod skills;
pub(crate) mod sse_reader;
pub mod stages;
pub mod store;
pub mod stream;
pub(crate) mod subagent;
pub(crate) mod tools;
pub mod turn;

/// A reqwest client builder with the process's TLS crypto provider (ring) installed.
pub fn http_client() -> reqwest::ClientBuilder {
    // Idempotent: the first caller installs it, later calls are no-ops.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
