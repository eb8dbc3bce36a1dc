//! Running a turn: the host side of the harness world. The harness (a WASM component) drives the loop; every
//! model call, tool call and result it makes through its imports becomes events in the session's log, written
//! through the session's actor (the only writer).
//!
//! - `driver`: a turn from start to end; `host`: the turn's state, routing the runtime's calls to one file per
//!   WIT interface (`llm_import`, `tools_import`, `session_import`);
//! - `compaction`: the older conversation summarized at the start of a turn (asked for, or when it fills the
//!   context window);
//! - `gate`: the policy chain at each phase (request, model call and response, tool call and result), with
//!   ask → paused → resolved — usable by any kind of turn;
//! - `journal`: each host call's result, committed with its events, so a turn cut by a restart replays instead
//!   of repeating a model or tool call (a harness has no clock, randomness or I/O of its own, so the replay
//!   retraces the original steps; if it ever asks for something else, the turn fails with `replay_diverged`).

mod compaction;
mod driver;
pub mod gate;
mod history;
mod host;
pub mod journal;
mod llm_import;
mod session_import;
mod tools_import;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use omnigent_runtime::Runtime;

use crate::credentials::Credentials;
use crate::policy::{PolicyEnv, PolicyMap};
use crate::session::{Sessions, TurnRunner, TurnStart};

/// What every turn needs from the server.
#[derive(Clone)]
pub struct TurnEnv {
    pub runtime: Arc<Runtime>,
    pub http: reqwest::Client,
    /// Bounds concurrently running harness instances below the instance pool's size.
    pub slots: Arc<tokio::sync::Semaphore>,
    pub policies: Arc<PolicyEnv>,
    /// Where a turn's model key comes from, looked up at each turn.
    pub credentials: Arc<Credentials>,
    /// How builtin tools are confined.
    pub sandbox: Arc<crate::sandbox::Sandbox>,
    /// The sessions' MCP servers.
    pub mcp: Arc<crate::mcp::McpHub>,
    /// The runners connected to this server: a session bound to one makes its model and tool calls there.
    pub runners: Option<Arc<crate::remote::RunnerHub>>,
}

impl TurnEnv {
    /// `server_policies`: the server-wide default policies, judged after each session's own and its config's.
    pub fn new(
        cache_dir: Option<PathBuf>,
        server_policies: PolicyMap,
        credentials: Arc<Credentials>,
        sandbox: Arc<crate::sandbox::Sandbox>,
    ) -> anyhow::Result<TurnEnv> {
        let runtime = Runtime::new(cache_dir)?;
        let http = crate::http_client().connect_timeout(Duration::from_secs(30)).build()?;
        Ok(TurnEnv {
            policies: Arc::new(PolicyEnv::new(runtime.clone(), server_policies)),
            runtime,
            mcp: Arc::new(crate::mcp::McpHub::new(http.clone())),
            http,
            slots: Arc::new(tokio::sync::Semaphore::new(omnigent_runtime::POOL_INSTANCES as usize / 2)),
            credentials,
            sandbox,
            runners: None,
        })
    }
}

/// Runs every turn as a WASM harness turn.
impl TurnRunner for TurnEnv {
    fn run(&self, sessions: Sessions, turn: TurnStart) -> BoxFuture<'static, ()> {
        driver::run(self.clone(), sessions, turn).boxed()
    }

    fn admit(&self, config: &crate::config::SessionConfig) -> Result<(), String> {
        self.sandbox.admit(config)
    }
}
