//! Native harnesses: a vendor's own CLI (Claude Code) runs in a private tmux server owned by the session, and a
//! bridge makes it an omnigent session like any other — messages typed into it and confirmed delivered, what it
//! does mirrored from its own structured records, its tool calls judged by the session's policies, its consent
//! prompts answered from anywhere.
//!
//! - `tmux`: the session's tmux server (start, paste, keys, capture, attach argv);
//! - `claude`: the Claude Code bridge — `launch` (settings, hooks, trust, environment), `transcript` (its JSONL
//!   as items), `turn` (deliver, follow, end), `hooks` (answers to the CLI's hooks);
//! - `viewer`: a remote viewer of the terminal (tmux control mode), relayed by the WebSocket route;
//! - `files`: private files under `<data-dir>/native/<session>/`.
//!
//! The CLI outlives the server: tmux daemonizes, so a restart re-adopts it from its folder.

pub mod claude;
pub mod files;
pub mod tmux;
pub mod viewer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::ids::SessionId;
use crate::policy::PolicyEnv;
use crate::session::{Sessions, TurnRunner, TurnStart};
use claude::ClaudeBridge;

/// Why a native session could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error("{0}")]
    Launch(String),
    #[error("{what}: {source}")]
    Io { what: &'static str, source: std::io::Error },
    #[error(transparent)]
    Tmux(#[from] tmux::TmuxError),
}

impl NativeError {
    pub fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> NativeError {
        move |source| NativeError::Io { what, source }
    }
}

/// How the CLI's hooks reach this server: read by `omnigent native-hook` on every call, so a restarted server
/// (on another port, too) is found again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub url: String,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The native sessions of this server: one bridge per session that has a CLI.
pub struct Natives {
    /// `<data-dir>/native`: one folder per session.
    root: PathBuf,
    /// The server's own URL and token, for the hooks.
    url: String,
    token: Option<String>,
    /// The `omnigent` executable the hooks run.
    hook_exe: PathBuf,
    pub(crate) policies: Arc<PolicyEnv>,
    bridges: Mutex<HashMap<SessionId, Arc<ClaudeBridge>>>,
}

impl Natives {
    pub fn new(root: PathBuf, url: String, token: Option<String>, policies: Arc<PolicyEnv>) -> Natives {
        let hook_exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("omnigent"));
        Natives { root, url, token, hook_exe, policies, bridges: Mutex::default() }
    }

    /// The folder of a session's CLI.
    fn dir(&self, id: &SessionId) -> PathBuf {
        self.root.join(id.as_str())
    }

    pub fn hook_exe(&self) -> &Path {
        &self.hook_exe
    }

    /// The bridge of a session, made (not launched) on first use.
    pub fn bridge(&self, id: &SessionId) -> Arc<ClaudeBridge> {
        self.bridges
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_insert_with(|| Arc::new(ClaudeBridge::new(id.clone(), self.dir(id))))
            .clone()
    }

    /// The bridge of a session, if it has a native folder (it ran a CLI, in this process or before a restart).
    pub fn existing(&self, id: &SessionId) -> Option<Arc<ClaudeBridge>> {
        if let Some(b) = self.bridges.lock().unwrap().get(id) {
            return Some(b.clone());
        }
        self.dir(id).exists().then(|| self.bridge(id))
    }

    /// Writes the endpoint file the session's hooks read.
    fn write_endpoint(&self, dir: &Path, id: &SessionId) -> Result<(), NativeError> {
        let endpoint = Endpoint { url: self.url.clone(), session_id: id.to_string(), token: self.token.clone() };
        files::write_private(&dir.join("endpoint.json"), &serde_json::to_vec(&endpoint).expect("JSON"))
            .map_err(NativeError::io("writing the hook endpoint"))
    }

    /// Stops a session's CLI and removes its folder (the session was deleted).
    pub async fn stop(&self, id: &SessionId) {
        let bridge = self.bridges.lock().unwrap().remove(id);
        let dir = self.dir(id);
        if let Some(b) = bridge {
            b.stop().await;
        } else if dir.exists() {
            tmux::Tmux::in_dir(&dir).kill().await;
        }
        if dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            tracing::warn!(session = %id, error = %e, "could not remove the native session's folder");
        }
    }
}

/// Runs each turn with what its config names: a native CLI bridge, or the WASM harness runner.
pub struct Runners {
    pub wasm: Arc<dyn TurnRunner>,
    pub natives: Arc<Natives>,
}

impl TurnRunner for Runners {
    fn run(&self, sessions: Sessions, turn: TurnStart) -> BoxFuture<'static, ()> {
        if turn.config.executor.is_native() {
            claude::turn::run(self.natives.clone(), sessions, turn).boxed()
        } else {
            self.wasm.run(sessions, turn)
        }
    }
}
