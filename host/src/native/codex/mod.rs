//! The Codex CLI as a session's CLI: `codex app-server` runs in the session's tmux server (window `appsrv`) and
//! is the whole data path — the bridge starts turns, steers and interrupts them, reads their items and answers
//! their approvals over JSON-RPC; the TUI (`codex resume --remote`, window `main`) shows the same thread to
//! humans. Nothing is read off the screen.

pub mod map;
pub mod rpc;
pub mod turn;
pub mod watch;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::bridge::{Bridge, Running};
use super::tmux::Launch;
use super::{NativeError, Natives, quote};
use crate::config::{NativeConfigDir, SessionConfig};

/// The variable the app-server reads the configured key from (never the user's own `OPENAI_API_KEY`).
const KEY_VAR: &str = "OMNIGENT_CODEX_API_KEY";

/// The app-server's socket in the session's folder.
pub fn socket(bridge: &Bridge) -> PathBuf {
    bridge.dir.join("codex.sock")
}

/// The thread the session's conversation lives in, once there is one.
pub fn thread_id(bridge: &Bridge) -> Option<String> {
    std::fs::read_to_string(bridge.dir.join("codex-thread-id"))
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

pub fn set_thread_id(bridge: &Bridge, id: &str) -> Result<(), NativeError> {
    crate::private_files::write_private(&bridge.dir.join("codex-thread-id"), id.as_bytes())
        .map_err(NativeError::io("recording the codex thread"))
}

/// Makes sure the app-server runs (adopting a live one): the TUI joins after the thread's first turn.
/// Called by [`Natives::ensure`], which holds the launch lock and has prepared the folder.
pub(super) async fn ensure(
    bridge: &Bridge,
    natives: &Natives,
    config: &SessionConfig,
    cwd: &Path,
) -> Result<Running, NativeError> {
    let running = Running { transcript: PathBuf::new(), fresh: false };
    if bridge.tmux.alive().await && bridge.tmux.window_alive("appsrv").await {
        return Ok(running);
    }
    bridge.tmux.kill().await;
    let program = cli_path(config)?;
    let sock = socket(bridge);
    let _ = std::fs::remove_file(&sock);
    let mut args: Vec<OsString> =
        vec!["app-server".into(), "--listen".into(), format!("unix://{}", sock.display()).into()];
    args.extend(overrides(config));
    let env = environment(bridge, natives, config, cwd)?;
    tracing::info!(session = %bridge.session, cli = %program.display(), cwd = %cwd.display(), "starting the codex app-server");
    bridge
        .tmux
        .start("appsrv", Launch { cwd, env, program: &program, args }, super::claude::COLS, super::claude::ROWS)
        .await?;
    // The socket appears within a fraction of a second.
    let started = std::time::Instant::now();
    while !sock.exists() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let screen = bridge.tmux.capture_window("appsrv").await.unwrap_or_default();
            return Err(NativeError::Launch(format!(
                "the codex app-server did not open its socket within 20 s; it shows:\n{}",
                super::claude::screen::last_lines(&screen, 12)
            )));
        }
        if !bridge.tmux.window_alive("appsrv").await {
            let screen = bridge.tmux.capture_window("appsrv").await.unwrap_or_default();
            return Err(NativeError::Launch(format!(
                "the codex app-server exited; it showed:\n{}",
                super::claude::screen::last_lines(&screen, 12)
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(Running { fresh: true, ..running })
}

/// Starts the TUI on the session's thread in window `main` (once the thread has a turn to resume), unless it
/// runs already. True when it was started now.
pub async fn ensure_tui(bridge: &Bridge, config: &SessionConfig, thread: &str) -> Result<bool, NativeError> {
    if bridge.tmux.window_alive("main").await {
        return Ok(false);
    }
    let _ = bridge.tmux.kill_window("main").await;
    let program = cli_path(config)?;
    let mut args: Vec<OsString> =
        vec!["resume".into(), "--remote".into(), format!("unix://{}", socket(bridge).display()).into()];
    args.extend(overrides(config));
    args.push(thread.into());
    let cwd = config.work_dir();
    bridge.tmux.new_window("main", Launch { cwd: &cwd, env: Vec::new(), program: &program, args }).await?;
    Ok(true)
}

/// `-c` overrides both the app-server and the TUI get (the TUI must repeat the provider, or it asks to sign in).
fn overrides(config: &SessionConfig) -> Vec<OsString> {
    let mut sets: Vec<String> = Vec::new();
    if let Some(model) = &config.executor.model {
        sets.push(format!("model={}", toml_string(model)));
    }
    if let Some(auth) = config.executor.auth.as_ref().filter(|a| a.base_url.is_some() || a.api_key.is_some()) {
        sets.push("model_provider=\"omnigent\"".into());
        sets.push("model_providers.omnigent.name=\"omnigent\"".into());
        let url = auth.base_url.clone().unwrap_or_else(|| crate::credentials::OPENAI.default_url.into());
        sets.push(format!("model_providers.omnigent.base_url={}", toml_string(&url)));
        sets.push(format!("model_providers.omnigent.env_key=\"{KEY_VAR}\""));
        sets.push("model_providers.omnigent.wire_api=\"responses\"".into());
    }
    sets.push("check_for_update_on_startup=false".into());
    sets.into_iter().flat_map(|s| ["-c".into(), s.into()]).collect()
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The CLI's environment: built from scratch; `CODEX_HOME` is the session's own with `config_dir: isolated`.
fn environment(
    bridge: &Bridge,
    natives: &Natives,
    config: &SessionConfig,
    cwd: &Path,
) -> Result<Vec<(String, OsString)>, NativeError> {
    let mut env: Vec<(String, OsString)> = Vec::new();
    for var in ["PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TMPDIR"] {
        if let Some(v) = std::env::var_os(var) {
            env.push((var.into(), v));
        }
    }
    env.push(("TERM".into(), "xterm-256color".into()));
    if let Some(key) = config.executor.auth.as_ref().and_then(|a| a.api_key.clone()) {
        env.push((KEY_VAR.into(), key.into()));
    }
    if config.executor.config_dir.unwrap_or_default() == NativeConfigDir::Isolated {
        let home = bridge.dir.join("codex-home");
        crate::private_files::private_dir(&home).map_err(NativeError::io("creating CODEX_HOME"))?;
        if home.starts_with(std::env::temp_dir()) {
            // Codex then refuses to create its sandbox helper (`codex-linux-sandbox`), and with bubblewrap
            // installed every sandboxed command it runs fails at once.
            tracing::warn!(
                codex_home = %home.display(),
                "CODEX_HOME is under the system's temp dir, where Codex will not create its sandbox helper: its \
                 sandboxed commands fail when bubblewrap is installed; use a --data-dir outside the temp dir"
            );
        }
        let trust = format!(
            "approval_policy = \"on-request\"\nsandbox_mode = \"workspace-write\"\n\n[projects.{}]\ntrust_level = \"trusted\"\n\n[analytics]\nenabled = false\n",
            toml_string(&cwd.to_string_lossy())
        );
        let path = home.join("config.toml");
        if !path.exists() {
            crate::private_files::write_private(&path, trust.as_bytes())
                .map_err(NativeError::io("writing codex's config"))?;
        }
        crate::private_files::write_private(&home.join("hooks.json"), &hooks(&bridge.dir, natives.hook_exe()))
            .map_err(NativeError::io("writing codex's hooks"))?;
        env.push(("CODEX_HOME".into(), home.into()));
    }
    Ok(env)
}

/// Codex's hooks (Claude's format): tool calls and their results go through the session's policies. Codex runs
/// them only once trusted ([`trust_hooks`]).
fn hooks(dir: &Path, hook_exe: &Path) -> Vec<u8> {
    let mut hooks = serde_json::Map::new();
    for (event, timeout) in [("PreToolUse", 86_400), ("PostToolUse", 30)] {
        let command = format!(
            "{} native-hook --dir {} --event {event}",
            quote::shell_quote(&hook_exe.to_string_lossy()),
            quote::shell_quote(&dir.to_string_lossy())
        );
        hooks.insert(
            event.into(),
            serde_json::json!([{"hooks": [{"type": "command", "command": command, "timeout": timeout}]}]),
        );
    }
    serde_json::to_vec_pretty(&serde_json::json!({"hooks": hooks})).expect("JSON")
}

/// Marks every hook codex lists for `cwd` as trusted (codex skips untrusted hooks, and its TUI would stop on a
/// "hooks need review" screen).
pub async fn trust_hooks(rpc: &rpc::Rpc, cwd: &Path) -> Result<(), rpc::RpcError> {
    let listed = rpc.request("hooks/list", serde_json::json!({"cwds": [cwd]})).await?;
    let mut trusted = serde_json::Map::new();
    for hook in
        listed["data"].as_array().into_iter().flatten().flat_map(|d| d["hooks"].as_array().into_iter().flatten())
    {
        if let (Some(key), Some(hash)) = (hook["key"].as_str(), hook["currentHash"].as_str()) {
            trusted.insert(key.to_string(), serde_json::json!({"trusted_hash": hash}));
        }
    }
    if trusted.is_empty() {
        return Ok(());
    }
    let edit = serde_json::json!({"edits": [{"keyPath": "hooks.state", "mergeStrategy": "upsert", "value": trusted}],
        "reloadUserConfig": true});
    rpc.request("config/batchWrite", edit).await.map(drop)
}

/// The CLI to run: the config's `cli_path`, else `OMNIGENT_CODEX_PATH`, else `codex` on the PATH.
fn cli_path(config: &SessionConfig) -> Result<PathBuf, NativeError> {
    super::find_cli(config, "OMNIGENT_CODEX_PATH", "codex", "Codex", "npm install -g @openai/codex")
}
