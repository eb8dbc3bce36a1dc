//! Starting Claude Code for a session: its `--settings` file (every hook is `omnigent native-hook`, so the CLI
//! reports to this server and asks it before tools run), the key through `apiKeyHelper` (a key in the environment
//! opens a "custom API key" dialog that blocks a host-started TUI), the onboarding and trust answers that would
//! otherwise be dialogs, and a clean environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::config::{NativeConfigDir, SessionConfig};
use crate::native::NativeError;
use crate::native::quote::shell_quote;
use crate::private_files::write_private;

/// Hooks that may wait for a human (a policy's ask, the CLI's own consent): as long as an ask may wait.
const BLOCKING_HOOK_TIMEOUT_S: u64 = 86_400;
/// Hooks that only report.
const REPORT_HOOK_TIMEOUT_S: u64 = 30;

/// The hook events the bridge listens to, and whether each may block the CLI.
const HOOKS: [(&str, bool); 8] = [
    ("SessionStart", false),
    ("UserPromptSubmit", true),
    ("PreToolUse", true),
    ("PermissionRequest", true),
    ("PostToolUse", false),
    ("Stop", false),
    ("StopFailure", false),
    ("MessageDisplay", false),
];

/// Where Claude keeps its state for this session.
pub struct ClaudeHome {
    /// `CLAUDE_CONFIG_DIR`, or None for the user's own `~/.claude`.
    pub config_dir: Option<PathBuf>,
    /// The folder of `.claude.json` (the onboarding and trust answers).
    pub state_dir: PathBuf,
}

impl ClaudeHome {
    pub fn of(dir: &Path, config: &SessionConfig) -> Result<ClaudeHome, NativeError> {
        match config.executor.config_dir.unwrap_or_default() {
            NativeConfigDir::Isolated => {
                let d = dir.join("claude-config");
                std::fs::create_dir_all(&d).map_err(NativeError::io("creating Claude's config dir"))?;
                Ok(ClaudeHome { config_dir: Some(d.clone()), state_dir: d })
            }
            NativeConfigDir::Inherit => match std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
                Some(d) => Ok(ClaudeHome { config_dir: Some(d.clone().into()), state_dir: d.into() }),
                None => {
                    let home = std::env::var_os("HOME").ok_or_else(|| {
                        NativeError::Launch("HOME is not set: cannot find the user's Claude config".into())
                    })?;
                    Ok(ClaudeHome { config_dir: None, state_dir: home.into() })
                }
            },
        }
    }

    /// The transcript Claude writes for `session_id` started in `cwd`: `<config>/projects/<cwd slug>/<id>.jsonl`.
    pub fn transcript(&self, cwd: &Path, session_id: &str) -> PathBuf {
        let config = self.config_dir.clone().unwrap_or_else(|| self.state_dir.join(".claude"));
        let slug: String =
            cwd.to_string_lossy().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        config.join("projects").join(slug).join(format!("{session_id}.jsonl"))
    }

    /// Marks onboarding done and `cwd` trusted in `.claude.json`, keeping everything else in it.
    pub fn trust(&self, cwd: &Path) -> Result<(), NativeError> {
        let path = self.state_dir.join(".claude.json");
        let mut state: Map<String, Value> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| NativeError::Launch(format!("{} is not JSON ({e}); fix or remove it", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(NativeError::io("reading .claude.json")(e)),
        };
        state.insert("hasCompletedOnboarding".into(), true.into());
        let projects = state.entry("projects").or_insert_with(|| json!({}));
        if !projects.is_object() {
            *projects = json!({});
        }
        let project = projects
            .as_object_mut()
            .expect("an object")
            .entry(cwd.to_string_lossy().into_owned())
            .or_insert_with(|| json!({}));
        if !project.is_object() {
            *project = json!({});
        }
        project["hasTrustDialogAccepted"] = true.into();
        project["hasCompletedProjectOnboarding"] = true.into();
        let text = serde_json::to_vec_pretty(&state).expect("JSON");
        write_private(&path, &text).map_err(NativeError::io("writing .claude.json"))
    }
}

/// The settings file passed with `--settings`: the hooks, the key helper, and what keeps dialogs away.
pub fn settings(dir: &Path, hook_exe: &Path, config: &SessionConfig) -> Result<PathBuf, NativeError> {
    let mut hooks = Map::new();
    for (event, blocking) in HOOKS {
        let command = format!(
            "{} native-hook --dir {} --event {event}",
            shell_quote(&hook_exe.to_string_lossy()),
            shell_quote(&dir.to_string_lossy())
        );
        let timeout = if blocking { BLOCKING_HOOK_TIMEOUT_S } else { REPORT_HOOK_TIMEOUT_S };
        let mut entry = json!({"hooks": [{"type": "command", "command": command, "timeout": timeout}]});
        if matches!(event, "PreToolUse" | "PostToolUse" | "PermissionRequest") {
            entry["matcher"] = "*".into();
        }
        hooks.insert(event.into(), json!([entry]));
    }
    let mut settings = json!({
        "hooks": hooks,
        // A project's own .mcp.json would otherwise open a dialog no hook reports.
        "enableAllProjectMcpServers": true,
    });
    if let Some(mode) = &config.executor.permission_mode {
        settings["permissions"] = json!({"defaultMode": mode});
        if mode == "bypassPermissions" {
            settings["skipDangerousModePermissionPrompt"] = true.into();
        }
    }
    if let Some(key) = config.executor.auth.as_ref().and_then(|a| a.api_key.as_deref()).filter(|k| !k.is_empty()) {
        let key_file = dir.join("api-key");
        write_private(&key_file, key.as_bytes()).map_err(NativeError::io("writing the API key file"))?;
        settings["apiKeyHelper"] = format!("cat {}", shell_quote(&key_file.to_string_lossy())).into();
    }
    let path = dir.join("claude-settings.json");
    write_private(&path, &serde_json::to_vec_pretty(&settings).expect("JSON"))
        .map_err(NativeError::io("writing Claude's settings"))?;
    Ok(path)
}

/// The CLI's environment: built from scratch, so nothing of the server's (a `TMUX`, a key, `CLAUDECODE`) leaks in.
pub fn environment(home: &ClaudeHome, config: &SessionConfig) -> Vec<(String, OsString)> {
    let mut env: Vec<(String, OsString)> = Vec::new();
    for var in [
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
    ] {
        if let Some(v) = std::env::var_os(var) {
            env.push((var.into(), v));
        }
    }
    if !env.iter().any(|(k, _)| k == "LANG") {
        env.push(("LANG".into(), "C.UTF-8".into()));
    }
    env.push(("TERM".into(), "xterm-256color".into()));
    for (k, v) in [
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
        ("CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY", "1"),
        ("CLAUDE_CODE_DISABLE_AGENT_VIEW", "1"),
    ] {
        env.push((k.into(), v.into()));
    }
    if let Some(d) = &home.config_dir {
        env.push(("CLAUDE_CONFIG_DIR".into(), d.clone().into()));
    }
    if let Some(url) = config.executor.auth.as_ref().and_then(|a| a.base_url.as_deref()).filter(|u| !u.is_empty()) {
        env.push(("ANTHROPIC_BASE_URL".into(), url.into()));
    }
    env
}

/// The CLI's arguments: our settings and session id (or `--resume` into an existing transcript), the model,
/// then the config's own `launch_args`.
pub fn arguments(settings: &Path, session_id: &str, resume: bool, config: &SessionConfig) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--settings".into(), settings.into()];
    args.push(if resume { "--resume" } else { "--session-id" }.into());
    args.push(session_id.into());
    if let Some(model) = &config.executor.model {
        args.extend(["--model".into(), model.into()]);
    }
    if let Some(prompt) = config.prompt.as_deref().filter(|p| !p.trim().is_empty()) {
        args.extend(["--append-system-prompt".into(), prompt.into()]);
    }
    args.extend(config.executor.launch_args.iter().map(OsString::from));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transcript_path_is_the_cwd_slug() {
        let home = ClaudeHome { config_dir: Some("/c".into()), state_dir: "/c".into() };
        let p = home.transcript(Path::new("/tmp/natives/work_proj.4"), "abc");
        assert_eq!(p, Path::new("/c/projects/-tmp-natives-work-proj-4/abc.jsonl"));
        let inherit = ClaudeHome { config_dir: None, state_dir: "/home/u".into() };
        assert_eq!(inherit.transcript(Path::new("/w"), "s"), Path::new("/home/u/.claude/projects/-w/s.jsonl"));
    }

    #[test]
    fn trusting_keeps_the_users_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".claude.json"), r#"{"theme": "light", "projects": {"/a": {"x": 1}}}"#).unwrap();
        let home = ClaudeHome { config_dir: None, state_dir: dir.path().into() };
        home.trust(Path::new("/b")).unwrap();
        let state: Value = serde_json::from_slice(&std::fs::read(dir.path().join(".claude.json")).unwrap()).unwrap();
        assert_eq!(state["theme"], "light");
        assert_eq!(state["projects"]["/a"]["x"], 1);
        assert_eq!(state["projects"]["/b"]["hasTrustDialogAccepted"], true);
        assert_eq!(state["hasCompletedOnboarding"], true);
    }
}
