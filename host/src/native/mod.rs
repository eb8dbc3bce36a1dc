//! Native harnesses: a vendor's own CLI (Claude Code, Codex) runs in a private tmux server owned by the session, and a
//! bridge makes it an omnigent session like any other — messages typed into it and confirmed delivered, what it
//! does mirrored from its own structured records, its tool calls judged by the session's policies, its consent
//! prompts answered from anywhere.
//!
//! - `bridge`: what a session's CLI shares with the server (its folder, tmux, the live turn, its terminal);
//! - `tmux`: the session's tmux server (start, paste, keys, capture, attach argv);
//! - `claude`: the Claude Code bridge — `launch` (settings, hooks, trust, environment), `transcript` (its JSONL
//!   as items), `turn` (deliver, follow, end), `hooks` (answers to the CLI's hooks);
//! - `codex`: the Codex bridge — its app-server in tmux, `rpc` (JSON-RPC over its unix socket), `map` (its
//!   notifications as events), `turn`;
//! - `viewer`: a remote viewer of the terminal (tmux control mode), relayed by the WebSocket route;
//! - `turn`: the frame every native turn shares (policies, journal, live turn, request verdict, the end);
//! - `message`: the text a turn delivers to a CLI;
//! - `quote`: quoting paths into the shell command lines of the CLIs' hooks.
//!
//! The CLI outlives the server: tmux daemonizes, so a restart re-adopts it from its folder.

pub mod bridge;
pub mod claude;
pub mod codex;
pub mod message;
pub mod quote;
pub mod tmux;
pub mod turn;
pub mod viewer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::config::{Auth, AuthKind, SessionConfig};
use crate::credentials::Credentials;
use crate::ids::SessionId;
use crate::policy::PolicyEnv;
use crate::session::{Sessions, TurnRunner, TurnStart};
use bridge::{Bridge, NativeCli, Running};

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
    /// How long a hook that decides something waits for an unreachable server (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_s: Option<u64>,
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
    /// The key a session's `executor.auth` names, resolved at launch (none: the CLI's own login).
    credentials: Arc<Credentials>,
    bridges: Mutex<HashMap<SessionId, Arc<Bridge>>>,
}

impl Natives {
    pub fn new(
        root: PathBuf,
        url: String,
        token: Option<String>,
        policies: Arc<PolicyEnv>,
        credentials: Arc<Credentials>,
    ) -> Natives {
        let hook_exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("omnigent"));
        Natives { root, url, token, hook_exe, policies, credentials, bridges: Mutex::default() }
    }

    /// The folder of a session's CLI.
    fn dir(&self, id: &SessionId) -> PathBuf {
        self.root.join(id.as_str())
    }

    pub fn hook_exe(&self) -> &Path {
        &self.hook_exe
    }

    /// The bridge of a session, made (not launched) on first use.
    pub fn bridge(&self, id: &SessionId) -> Arc<Bridge> {
        self.bridges
            .lock()
            .unwrap()
            .entry(id.clone())
            .or_insert_with(|| Arc::new(Bridge::new(id.clone(), self.dir(id))))
            .clone()
    }

    /// The bridge of a session, if it has a native folder (it ran a CLI, in this process or before a restart).
    pub fn existing(&self, id: &SessionId) -> Option<Arc<Bridge>> {
        if let Some(b) = self.bridges.lock().unwrap().get(id) {
            return Some(b.clone());
        }
        self.dir(id).exists().then(|| self.bridge(id))
    }

    /// Writes the endpoint file the session's hooks read.
    pub(crate) fn write_endpoint(&self, dir: &Path, id: &SessionId) -> Result<(), NativeError> {
        let endpoint = Endpoint {
            url: self.url.clone(),
            session_id: id.to_string(),
            token: self.token.clone(),
            reconnect_s: None,
        };
        crate::private_files::write_private(&dir.join("endpoint.json"), &serde_json::to_vec(&endpoint).expect("JSON"))
            .map_err(NativeError::io("writing the hook endpoint"))
    }

    /// Makes sure the session's CLI runs (adopting a live one, or starting it), in `os_env.cwd`: one launch at a
    /// time per session, its folder private, the hooks' endpoint current.
    pub async fn ensure(&self, bridge: &Bridge, config: &SessionConfig) -> Result<Running, NativeError> {
        let cli = cli_of(config).unwrap_or(NativeCli::Claude);
        let config = &self.with_resolved_key(config)?;
        let _one = bridge.launching.lock().await;
        crate::private_files::private_dir(&bridge.dir)
            .map_err(NativeError::io("creating the native session's folder"))?;
        self.write_endpoint(&bridge.dir, &bridge.session)?;
        bridge.set_cli(cli).map_err(NativeError::io("recording the session's CLI"))?;
        let cwd = config.work_dir();
        match cli {
            NativeCli::Codex => codex::ensure(bridge, self, config, &cwd).await,
            NativeCli::Claude => claude::ensure(bridge, self, config, &cwd).await,
        }
    }

    /// The config with the key its `executor.auth` names (a `${VAR}` reference, a stored credential) written out,
    /// for the CLI's launch; unchanged when it names none (the CLI then uses its own login).
    fn with_resolved_key(&self, config: &SessionConfig) -> Result<SessionConfig, NativeError> {
        let found = self.credentials.for_config(config).map_err(|m| NativeError::Launch(m.message))?;
        let mut config = config.clone();
        if let Some(credential) = found {
            config.executor.auth = Some(Auth {
                kind: AuthKind::ApiKey,
                api_key: Some(credential.api_key),
                base_url: credential.base_url,
                name: None,
            });
        }
        Ok(config)
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

/// A CLI's executable: the config's `cli_path`, else the path in `env_var`, else `program` on the server's PATH.
pub fn find_cli(
    config: &SessionConfig,
    env_var: &str,
    program: &str,
    display: &str,
    install: &str,
) -> Result<PathBuf, NativeError> {
    let named = config.executor.cli_path.clone().or_else(|| std::env::var(env_var).ok().filter(|p| !p.is_empty()));
    if let Some(p) = named {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(NativeError::Launch(format!("{display} is not at {} (executor.cli_path or {env_var})", p.display())))
        };
    }
    crate::program::on_path(program).ok_or_else(|| {
        NativeError::Launch(format!(
            "{display} is not installed: no `{program}` on the server's PATH. Install it with `{install}`, or set \
                 executor.cli_path"
        ))
    })
}

/// The CLI a session's config runs, if it names a native harness.
pub fn cli_of(config: &SessionConfig) -> Option<NativeCli> {
    match config.executor.harness.as_str() {
        crate::config::CLAUDE_NATIVE => Some(NativeCli::Claude),
        crate::config::CODEX_NATIVE => Some(NativeCli::Codex),
        _ => None,
    }
}

/// Runs each turn with what its config names: a native CLI bridge, or the WASM harness runner.
pub struct Runners {
    pub wasm: Arc<dyn TurnRunner>,
    pub natives: Arc<Natives>,
}

impl TurnRunner for Runners {
    fn run(&self, sessions: Sessions, turn: TurnStart) -> BoxFuture<'static, ()> {
        match cli_of(&turn.config) {
            Some(_) => run_native(self.natives.clone(), sessions, turn).boxed(),
            None => self.wasm.run(sessions, turn),
        }
    }

    /// The working directory and sandbox rules are the server's, whichever runner runs the session.
    fn admit(&self, config: &crate::config::SessionConfig) -> Result<(), String> {
        self.wasm.admit(config)
    }
}

/// Runs a turn with the session's CLI to its end and reports the outcome to the session's actor.
async fn run_native(natives: Arc<Natives>, sessions: Sessions, turn: TurnStart) {
    let id = turn.record.id.clone();
    let response_id = turn.response_id.clone();
    let shared = turn.shared.clone();
    let bridge = natives.bridge(&id);
    let outcome = match cli_of(&turn.config) {
        Some(NativeCli::Codex) => codex::turn::drive(&natives, &bridge, &sessions, turn).await,
        _ => claude::turn::drive(&natives, &bridge, &sessions, turn).await,
    };
    bridge.set_live(None);
    crate::session::runner::report_end(&sessions, &shared, &id, &response_id, outcome).await;
}
