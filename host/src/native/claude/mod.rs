//! The Claude Code bridge of one session: its folder, its tmux server, the CLI's session id (chosen by us, so the
//! transcript's path is known before launch), and the turn the CLI is working on (which the hooks consult).

pub mod hooks;
pub mod launch;
pub mod screen;
pub mod transcript;
pub mod turn;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::mpsc;

use super::tmux::{Launch, Tmux};
use super::{NativeError, Natives, files};
use crate::config::SessionConfig;
use crate::ids::SessionId;
use crate::turn::gate::Gate;
use crate::turn::journal::Journal;
use launch::ClaudeHome;

/// The id of the session's one terminal, as Omnigent names it (`terminal_<name>_<session key>`).
pub const TERMINAL_ID: &str = "terminal_claude_main";

/// The terminal's size until a viewer resizes it.
const COLS: u16 = 120;
const ROWS: u16 = 40;

/// A hook call the CLI made, for the running turn.
#[derive(Debug)]
pub struct HookCall {
    pub event: String,
    pub body: Value,
}

/// The turn the CLI is working on: its policies and journal (for the hooks), and where hook reports go.
pub struct LiveTurn {
    pub response_id: String,
    pub gate: Gate,
    pub journal: Journal,
    pub hooks: mpsc::UnboundedSender<HookCall>,
    pub config: SessionConfig,
    /// Consent questions of the CLI still open here (also on its screen, where the human may answer first).
    pub consents: Mutex<Vec<String>>,
}

/// A prompt the human typed into the CLI while no turn ran: it becomes the session's message and turn, and
/// that turn must not type it again.
#[derive(Clone, Debug)]
pub struct Typed {
    pub text: String,
    /// The transcript's length when Claude took the prompt: the turn mirrors from there.
    pub offset: u64,
}

/// Where the CLI is, once launched.
#[derive(Clone, Debug)]
pub struct Running {
    pub transcript: PathBuf,
    /// The CLI was started just now (not adopted running).
    pub fresh: bool,
}

pub struct ClaudeBridge {
    pub session: SessionId,
    pub dir: PathBuf,
    pub tmux: Tmux,
    /// One launch at a time.
    launching: tokio::sync::Mutex<()>,
    live: Mutex<Option<Arc<LiveTurn>>>,
    typed: Mutex<Option<Typed>>,
}

impl ClaudeBridge {
    pub fn new(session: SessionId, dir: PathBuf) -> ClaudeBridge {
        ClaudeBridge {
            tmux: Tmux::in_dir(&dir),
            session,
            dir,
            launching: tokio::sync::Mutex::new(()),
            live: Mutex::default(),
            typed: Mutex::default(),
        }
    }

    /// The running turn, if any.
    pub fn live(&self) -> Option<Arc<LiveTurn>> {
        self.live.lock().unwrap().clone()
    }

    pub fn set_live(&self, turn: Option<Arc<LiveTurn>>) {
        *self.live.lock().unwrap() = turn;
    }

    pub fn set_typed(&self, typed: Typed) {
        *self.typed.lock().unwrap() = Some(typed);
    }

    /// The prompt typed in the terminal, if it is the one this turn answers.
    pub fn take_typed(&self, text: &str) -> Option<Typed> {
        let mut typed = self.typed.lock().unwrap();
        typed.as_ref().filter(|t| turn::normalize(&t.text).trim() == turn::normalize(text).trim())?;
        typed.take()
    }

    /// The CLI's session id: made once, kept in the folder (a restart resumes the same conversation).
    fn claude_session_id(&self) -> Result<String, NativeError> {
        let path = self.dir.join("claude-session-id");
        if let Ok(id) = std::fs::read_to_string(&path)
            && !id.trim().is_empty()
        {
            return Ok(id.trim().to_string());
        }
        let id = uuid_v4();
        files::write_private(&path, id.as_bytes()).map_err(NativeError::io("writing the CLI's session id"))?;
        Ok(id)
    }

    /// Makes sure the CLI runs: adopts a live one, or starts it (resuming its conversation if it had one).
    pub async fn ensure(&self, natives: &Natives, config: &SessionConfig, cwd: &Path) -> Result<Running, NativeError> {
        let _one = self.launching.lock().await;
        files::private_dir(&self.dir).map_err(NativeError::io("creating the native session's folder"))?;
        natives.write_endpoint(&self.dir, &self.session)?;
        let session_id = self.claude_session_id()?;
        let home = ClaudeHome::of(&self.dir, config)?;
        let transcript = home.transcript(cwd, &session_id);
        if self.tmux.alive().await {
            match self.tmux.pane().await {
                Ok(pane) if !pane.dead => return Ok(Running { transcript, fresh: false }),
                _ => {
                    tracing::info!(session = %self.session, "the CLI's pane is dead; starting it again");
                    self.tmux.kill().await;
                }
            }
        }
        let program = cli_path(config)?;
        home.trust(cwd)?;
        let settings = launch::settings(&self.dir, natives.hook_exe(), config)?;
        let resume = transcript.exists();
        let args = launch::arguments(&settings, &session_id, resume, config);
        let env = launch::environment(&home, config);
        tracing::info!(session = %self.session, cli = %program.display(), cwd = %cwd.display(), resume, "starting Claude Code");
        self.tmux.start(Launch { cwd, env, program: &program, args }, COLS, ROWS).await?;
        Ok(Running { transcript, fresh: true })
    }

    /// The terminal as a session resource; None when its tmux server is gone.
    pub async fn resource(&self) -> Option<Value> {
        if !self.tmux.alive().await {
            return None;
        }
        let pane = self.tmux.pane().await.ok()?;
        Some(serde_json::json!({
            "id": TERMINAL_ID, "object": "session.resource", "type": "terminal", "session_id": self.session.as_str(),
            "name": "claude:main",
            "metadata": {"terminal_name": "claude", "session_key": "main", "running": !pane.dead,
                "pane_dead": pane.dead, "cols": pane.cols, "rows": pane.rows,
                "tmux_socket": self.tmux.socket(), "tmux_target": super::tmux::TARGET},
        }))
    }

    /// Stops the CLI and its tmux server.
    pub async fn stop(&self) {
        self.tmux.kill().await;
    }
}

/// The CLI to run: the config's `cli_path`, else `OMNIGENT_CLAUDE_PATH`, else `claude` on the PATH.
fn cli_path(config: &SessionConfig) -> Result<PathBuf, NativeError> {
    let named = config
        .executor
        .cli_path
        .clone()
        .or_else(|| std::env::var("OMNIGENT_CLAUDE_PATH").ok().filter(|p| !p.is_empty()));
    if let Some(p) = named {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(NativeError::Launch(format!("Claude Code is not at {} (executor.cli_path)", p.display())))
        };
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("claude"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            NativeError::Launch(
                "Claude Code is not installed: no `claude` on the server's PATH. Install it with \
                 `npm install -g @anthropic-ai/claude-code`, or set executor.cli_path"
                    .into(),
            )
        })
}

/// A random (version 4) UUID, as Claude's `--session-id` wants.
fn uuid_v4() -> String {
    let mut n = rand::random::<u128>();
    n = (n & !(0xf << 76)) | (0x4 << 76);
    n = (n & !(0x3 << 62)) | (0x2 << 62);
    let h = format!("{n:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids_are_v4_uuids() {
        let id = super::uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]), "{id}");
    }
}
