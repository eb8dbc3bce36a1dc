//! The session's private tmux server: one socket per native session under the data dir, one tmux session
//! `omni` with the CLI in window `main`. tmux daemonizes, so the CLI outlives a restart of omnigent, several humans
//! can attach at once, and the host pastes, captures and sends keys through it. Every call is argv (no shell),
//! bounded in time, and reports tmux's own stderr when it fails.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The terminal the CLI runs in, as tmux targets it (exact names: `=` stops prefix matching).
pub const TARGET: &str = "=omni:=main";
/// Longest a single tmux command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Options set before the session exists (a config file, so a CLI that exits at once still leaves its pane):
/// a dead pane stays for diagnostics, the server outlives its last session, no prefix key (keys go to the CLI),
/// `C-]` detaches a human who attached directly.
const TMUX_CONF: &str = "set -g remain-on-exit on\n\
set -s exit-empty off\n\
set -g history-limit 50000\n\
set -s escape-time 0\n\
set -g prefix None\n\
set -g prefix2 None\n\
unbind-key -a -T prefix\n\
set -g status off\n\
set -g focus-events on\n\
set -g window-size latest\n\
bind-key -n C-] detach-client\n";

#[derive(Debug, thiserror::Error)]
pub enum TmuxError {
    #[error("tmux is not installed (install it with `apt-get install tmux` or your system's package manager)")]
    Missing,
    #[error("tmux {command} failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error("tmux {0} did not answer within 10 s")]
    Timeout(String),
    #[error("tmux: {0}")]
    Io(#[from] std::io::Error),
}

/// What `list-panes` says of the CLI's pane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaneState {
    pub dead: bool,
    /// The exit status of a dead pane's process.
    pub exit_status: Option<i32>,
    pub pid: Option<u32>,
    pub cols: u16,
    pub rows: u16,
}

/// What to start in the terminal.
pub struct Launch<'a> {
    pub cwd: &'a Path,
    /// The whole environment of the CLI (nothing of the server's own is inherited).
    pub env: Vec<(String, OsString)>,
    pub program: &'a Path,
    pub args: Vec<OsString>,
}

/// Runs one tmux command (its arguments after the socket options) and answers its stdout. The real one runs
/// the `tmux` binary; tests give a scripted one, so the logic that reads screens and presses keys is tested
/// without a terminal.
pub trait Runner: Send + Sync {
    fn run(&self, args: Vec<String>, input: Option<Vec<u8>>) -> BoxFuture<'static, Result<String, TmuxError>>;
}

/// A private tmux server, by its socket.
#[derive(Clone)]
pub struct Tmux {
    socket: PathBuf,
    conf: PathBuf,
    runner: Arc<dyn Runner>,
}

impl std::fmt::Debug for Tmux {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tmux").field("socket", &self.socket).finish()
    }
}

/// The `tmux` binary on a socket.
struct Process {
    socket: PathBuf,
    conf: PathBuf,
}

impl Runner for Process {
    fn run(&self, args: Vec<String>, input: Option<Vec<u8>>) -> BoxFuture<'static, Result<String, TmuxError>> {
        let mut command = base_command(&self.socket, &self.conf);
        command.args(&args);
        if input.is_some() {
            command.stdin(Stdio::piped());
        }
        let name = args.first().cloned().unwrap_or_default();
        Box::pin(finish(command, name, input))
    }
}

fn base_command(socket: &Path, conf: &Path) -> Command {
    let mut c = Command::new("tmux");
    c.arg("-S").arg(socket).arg("-f").arg(conf);
    c.env_remove("TMUX").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    c
}

async fn finish(mut command: Command, name: String, input: Option<Vec<u8>>) -> Result<String, TmuxError> {
    let call = async {
        let mut child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound { TmuxError::Missing } else { TmuxError::Io(e) }
        })?;
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(&bytes).await?;
            drop(stdin);
        }
        let out = child.wait_with_output().await?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            Err(TmuxError::Failed { command: name.clone(), stderr })
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, call).await.map_err(|_| TmuxError::Timeout(name.clone()))?
}

impl Tmux {
    /// The server of `dir` (`dir/tmux.sock`, options in `dir/tmux.conf`); nothing starts yet.
    pub fn in_dir(dir: &Path) -> Tmux {
        let (socket, conf) = (dir.join("tmux.sock"), dir.join("tmux.conf"));
        Tmux { runner: Arc::new(Process { socket: socket.clone(), conf: conf.clone() }), socket, conf }
    }

    /// A server whose commands `runner` answers (tests).
    pub fn scripted(runner: Arc<dyn Runner>) -> Tmux {
        Tmux { socket: PathBuf::from("/nonexistent/tmux.sock"), conf: PathBuf::from("/dev/null"), runner }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn command(&self) -> Command {
        base_command(&self.socket, &self.conf)
    }

    /// Runs one tmux command; `input` goes to its stdin.
    async fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<String, TmuxError> {
        self.runner.run(args.iter().map(|a| a.to_string()).collect(), input.map(<[u8]>::to_vec)).await
    }

    /// Starts the server with `launch` in its first window, `window` (`cols`×`rows` until a viewer resizes it).
    pub async fn start(&self, window: &str, launch: Launch<'_>, cols: u16, rows: u16) -> Result<(), TmuxError> {
        std::fs::write(&self.conf, TMUX_CONF)?;
        let mut command = self.command();
        // The tmux server (and so the CLI) gets exactly this environment.
        command.env_clear();
        for (k, v) in &launch.env {
            command.env(k, v);
        }
        command
            .args(["new-session", "-d", "-s", "omni", "-n", window, "-x", &cols.to_string(), "-y", &rows.to_string()])
            .arg("-c")
            .arg(launch.cwd)
            .arg("--")
            .arg(launch.program)
            .args(&launch.args);
        finish(command, "new-session".into(), None).await.map(drop)
    }

    /// Opens another window in the running server (it gets the server's environment plus `launch.env`).
    pub async fn new_window(&self, window: &str, launch: Launch<'_>) -> Result<(), TmuxError> {
        let mut command = self.command();
        command.args(["new-window", "-d", "-t", "=omni:", "-n", window]);
        for (k, v) in &launch.env {
            let mut pair = std::ffi::OsString::from(format!("{k}="));
            pair.push(v);
            command.arg("-e").arg(pair);
        }
        command.arg("-c").arg(launch.cwd).arg("--").arg(launch.program).args(&launch.args);
        finish(command, "new-window".into(), None).await.map(drop)
    }

    /// Whether the window named `window` exists with a live process.
    pub async fn window_alive(&self, window: &str) -> bool {
        let target = format!("=omni:={window}");
        match self.run(&["list-panes", "-t", &target, "-F", "#{pane_dead}"], None).await {
            Ok(out) => out.trim() == "0",
            Err(_) => false,
        }
    }

    /// Whether the server answers and has the CLI's window.
    pub async fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "=omni"], None).await.is_ok()
    }

    pub async fn pane(&self) -> Result<PaneState, TmuxError> {
        let format = "#{pane_dead} #{pane_dead_status} #{pane_pid} #{pane_width} #{pane_height}";
        let out = self.run(&["list-panes", "-t", TARGET, "-F", format], None).await?;
        let fields: Vec<&str> = out.lines().next().unwrap_or_default().split(' ').collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<i64>().ok());
        Ok(PaneState {
            dead: fields.first() == Some(&"1"),
            exit_status: number(1).map(|s| s as i32),
            pid: number(2).map(|p| p as u32),
            cols: number(3).unwrap_or(0) as u16,
            rows: number(4).unwrap_or(0) as u16,
        })
    }

    /// The visible screen as text (wrapped lines joined); with `ansi`, colours and attributes as escapes.
    pub async fn capture(&self, ansi: bool) -> Result<String, TmuxError> {
        let mut args = vec!["capture-pane", "-p", "-J"];
        if ansi {
            args.push("-e");
        }
        args.extend(["-t", TARGET]);
        self.run(&args, None).await
    }

    /// The visible rows as the terminal draws them (colours as escapes, wrapped rows kept apart).
    pub async fn capture_rows(&self) -> Result<String, TmuxError> {
        self.run(&["capture-pane", "-p", "-e", "-t", TARGET], None).await
    }

    /// Where the cursor is (column, row; from 0).
    pub async fn cursor(&self) -> Result<(u16, u16), TmuxError> {
        let out = self.run(&["display-message", "-p", "-t", TARGET, "#{cursor_x} #{cursor_y}"], None).await?;
        let mut parts = out.split_whitespace().map(|p| p.parse::<u16>().unwrap_or(0));
        Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
    }

    /// The visible screen of another window (the codex app-server's, for an error).
    pub async fn capture_window(&self, window: &str) -> Result<String, TmuxError> {
        let target = format!("=omni:={window}");
        self.run(&["capture-pane", "-p", "-J", "-t", &target], None).await
    }

    /// Closes a window (and its process); a window already gone is fine.
    pub async fn kill_window(&self, window: &str) -> Result<(), TmuxError> {
        let target = format!("=omni:={window}");
        self.run(&["kill-window", "-t", &target], None).await.map(drop)
    }

    /// Pastes `text` into the CLI as one bracketed paste (no key is interpreted, newlines included).
    pub async fn paste(&self, text: &str) -> Result<(), TmuxError> {
        let buffer = format!("omni-{}", &crate::ids::random_hex()[..12]);
        self.run(&["load-buffer", "-b", &buffer, "-"], Some(text.as_bytes())).await?;
        self.run(&["paste-buffer", "-p", "-d", "-b", &buffer, "-t", TARGET], None).await.map(drop)
    }

    /// Sends named keys (`Enter`, `Escape`, `C-c`), leaving copy mode first so a scrolled-back pane gets them.
    pub async fn keys(&self, keys: &[&str]) -> Result<(), TmuxError> {
        let mut args = vec!["copy-mode", "-q", "-t", TARGET, ";", "send-keys", "-t", TARGET];
        args.extend(keys);
        self.run(&args, None).await.map(drop)
    }

    /// Sends raw bytes as typed (a viewer's keystrokes).
    pub async fn type_bytes(&self, bytes: &[u8]) -> Result<(), TmuxError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut args = vec!["send-keys", "-t", TARGET, "-H"];
        args.extend(hex.iter().map(String::as_str));
        self.run(&args, None).await.map(drop)
    }

    pub async fn resize(&self, cols: u16, rows: u16) -> Result<(), TmuxError> {
        let (c, r) = (cols.clamp(10, 1000).to_string(), rows.clamp(5, 1000).to_string());
        self.run(&["resize-window", "-t", TARGET, "-x", &c, "-y", &r], None).await.map(drop)
    }

    /// Stops the server and everything in it; a server already gone is fine. The panes' process groups are
    /// terminated first: a process that ignores the hangup of `kill-server` (codex's app-server does) would
    /// otherwise outlive its session.
    pub async fn kill(&self) {
        let panes = self.run(&["list-panes", "-a", "-F", "#{pane_pid}"], None).await.unwrap_or_default();
        let groups: Vec<i32> = panes.lines().filter_map(|l| l.trim().parse().ok()).filter(|p| *p > 1).collect();
        signal_groups(&groups, libc::SIGTERM);
        if let Err(e) = self.run(&["kill-server"], None).await {
            tracing::debug!(socket = %self.socket.display(), error = %e, "tmux kill-server");
        }
        if !groups.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            signal_groups(&groups, libc::SIGKILL);
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// The argv that attaches a terminal to the CLI's window (a human's, or a WebSocket viewer's pty).
    pub fn attach_args(&self, read_only: bool) -> Vec<OsString> {
        let mut args: Vec<OsString> =
            vec!["-S".into(), self.socket.clone().into(), "-f".into(), self.conf.clone().into(), "attach".into()];
        if read_only {
            args.extend(["-f".into(), "ignore-size".into()]);
        }
        args.extend(["-t".into(), TARGET.into()]);
        args
    }
}

/// Sends `signal` to each process group (a pane's process leads its own).
fn signal_groups(groups: &[i32], signal: i32) {
    for &group in groups {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is involved.
        unsafe {
            libc::kill(-group, signal);
        }
    }
}
