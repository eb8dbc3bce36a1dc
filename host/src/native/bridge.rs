//! A native session's bridge: its folder, its tmux server, which CLI runs there, and the turn the CLI is working
//! on (which the CLI's hooks and requests consult). One per session that has a CLI, kept by `Natives`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::tmux::Tmux;
use crate::config::SessionConfig;
use crate::ids::SessionId;
use crate::record::{now_us, secs};
use crate::session::{ApprovalAction, Input, Sessions};
use crate::turn::gate::Gate;
use crate::turn::journal::Journal;

/// The vendor CLIs a session can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeCli {
    Claude,
    Codex,
}

impl NativeCli {
    pub fn name(self) -> &'static str {
        match self {
            NativeCli::Claude => "claude",
            NativeCli::Codex => "codex",
        }
    }

    /// The id of the session's terminal, as Omnigent names it (`terminal_<name>_<session key>`).
    pub fn terminal_id(self) -> &'static str {
        match self {
            NativeCli::Claude => "terminal_claude_main",
            NativeCli::Codex => "terminal_codex_main",
        }
    }

    fn of_name(name: &str) -> Option<NativeCli> {
        [NativeCli::Claude, NativeCli::Codex].into_iter().find(|c| c.name() == name.trim())
    }
}

/// A hook call (or request) the CLI made, for the running turn.
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

impl LiveTurn {
    /// A transcript item of this turn, as `response.output_item.done`.
    pub fn item_done(&self, id: &str, item_type: &str, mut fields: Value) -> crate::protocol::NewEvent {
        // As for any harness: `model` names the agent, `llm_model` the model the CLI called.
        if let Some(fields) = fields.as_object_mut()
            && let Some(llm) = fields.remove("model")
        {
            fields.insert("llm_model".into(), llm);
            fields.insert("model".into(), self.config.name.clone().into());
        }
        let item = crate::protocol::item(id, item_type, "completed", &self.response_id, secs(now_us()), fields);
        crate::protocol::output_item_done(item)
    }

    /// The turn's successful end: its tokens as the gate counted them, priced for `model`.
    pub fn completed(&self, model: String) -> crate::session::TurnOutcome {
        let usage = self.gate.turn_usage();
        let cost_usd = self.config.executor.cost_usd(usage.input_tokens, usage.output_tokens);
        crate::session::TurnOutcome::Completed { usage, model, cost_usd }
    }

    /// Resolves the CLI's open consent questions as answered in its terminal: the turn moved on (a tool's
    /// result, its end), which the CLI's dialog would not have let it do unanswered.
    pub async fn answered_in_terminal(&self, sessions: &Sessions, session: &SessionId) {
        let open: Vec<String> = std::mem::take(&mut *self.consents.lock().unwrap());
        for eid in open {
            resolve_elsewhere(sessions, session, &eid).await;
        }
    }
}

/// A prompt the human typed into the CLI while no turn ran: it becomes the session's message and turn, and
/// that turn must not type it again.
#[derive(Clone, Debug)]
pub struct Typed {
    pub text: String,
    /// The transcript's length when the CLI took the prompt: the turn mirrors from there.
    pub offset: u64,
    /// The CLI's own id of the turn it started for the prompt, when it reports one (codex).
    pub external_id: Option<String>,
}

/// Where the CLI is, once launched.
#[derive(Clone, Debug)]
pub struct Running {
    /// Claude's transcript (unused for codex, which reports over its app-server).
    pub transcript: PathBuf,
    /// The CLI was started just now (not adopted running).
    pub fresh: bool,
}

pub struct Bridge {
    pub session: SessionId,
    pub dir: PathBuf,
    pub tmux: Tmux,
    /// One launch at a time.
    pub(super) launching: tokio::sync::Mutex<()>,
    live: Mutex<Option<Arc<LiveTurn>>>,
    typed: Mutex<Option<Typed>>,
    /// A task that watches the CLI between turns (codex: prompts typed into its TUI); stops with the bridge.
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Bridge {
    pub fn new(session: SessionId, dir: PathBuf) -> Bridge {
        Bridge {
            tmux: Tmux::in_dir(&dir),
            session,
            dir,
            launching: tokio::sync::Mutex::new(()),
            live: Mutex::default(),
            typed: Mutex::default(),
            watcher: Mutex::default(),
        }
    }

    /// Which CLI the session runs (recorded in its folder at launch; Claude for folders from before codex).
    pub fn cli(&self) -> NativeCli {
        std::fs::read_to_string(self.dir.join("cli"))
            .ok()
            .and_then(|n| NativeCli::of_name(&n))
            .unwrap_or(NativeCli::Claude)
    }

    pub(super) fn set_cli(&self, cli: NativeCli) -> std::io::Result<()> {
        crate::private_files::write_private(&self.dir.join("cli"), cli.name().as_bytes())
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
        typed.as_ref().filter(|t| super::message::same(&t.text, text))?;
        typed.take()
    }

    /// The terminal as a session resource; None when its tmux server (or its window) is gone.
    pub async fn resource(&self) -> Option<Value> {
        if !self.tmux.alive().await {
            return None;
        }
        let pane = self.tmux.pane().await.ok()?;
        let cli = self.cli();
        Some(json!({
            "id": cli.terminal_id(), "object": "session.resource", "type": "terminal",
            "session_id": self.session.as_str(), "name": format!("{}:main", cli.name()),
            "metadata": {"terminal_name": cli.name(), "session_key": "main", "running": !pane.dead,
                "pane_dead": pane.dead, "cols": pane.cols, "rows": pane.rows,
                "tmux_socket": self.tmux.socket(), "tmux_target": super::tmux::TARGET},
        }))
    }

    /// Starts `task` as the bridge's watcher unless one is running.
    pub fn watch_with(&self, task: impl FnOnce() -> tokio::task::JoinHandle<()>) {
        let mut watcher = self.watcher.lock().unwrap();
        if watcher.as_ref().is_none_or(|w| w.is_finished()) {
            *watcher = Some(task());
        }
    }

    /// Stops the CLI and its tmux server.
    pub async fn stop(&self) {
        if let Some(w) = self.watcher.lock().unwrap().take() {
            w.abort();
        }
        self.tmux.kill().await;
    }
}

/// Resolves a CLI's consent question as answered in its terminal (so no client keeps showing it).
pub(crate) async fn resolve_elsewhere(sessions: &Sessions, session: &SessionId, eid: &str) {
    let content = Some(json!({"reason": "answered_in_terminal"}));
    let input = Input::Approval { elicitation_id: eid.to_string(), action: ApprovalAction::Cancel, content };
    if let Err(e) = sessions.post(session, input).await {
        tracing::debug!(session = %session, elicitation = %eid, error = %e, "resolving a consent question answered in the terminal");
    }
}
