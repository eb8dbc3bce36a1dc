//! Joining a native session's terminal from the command line: the CLI's own TUI, live, in your terminal —
//! through its tmux server directly (the session runs on this machine). `C-]` detaches; the CLI keeps running.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};

use super::Client;

/// The session's terminal as the server describes it, if it has one (started again if `ensure` and it ended).
pub async fn find(client: &Client, id: &str, ensure: bool) -> anyhow::Result<Option<Value>> {
    let path = format!("/v1/sessions/{id}/resources/terminals");
    let list = client.request(Method::GET, &path, None).await?;
    if let Some(t) = list["data"].as_array().and_then(|d| d.first()).filter(|t| t["metadata"]["running"] == true) {
        return Ok(Some(t.clone()));
    }
    if !ensure {
        return Ok(None);
    }
    let ensured = client.request(Method::POST, &path, Some(&json!({"session_key": "main"}))).await?;
    Ok(Some(ensured))
}

/// Attaches this terminal to the session's tmux window until the human detaches (`C-]`) or the CLI exits.
/// None when the terminal is not on this machine.
pub async fn attach_local(terminal: &Value) -> anyhow::Result<Option<ExitCode>> {
    let Some(socket) = terminal["metadata"]["tmux_socket"].as_str().map(PathBuf::from) else { return Ok(None) };
    if !socket.exists() {
        return Ok(None);
    }
    let target = terminal["metadata"]["tmux_target"].as_str().unwrap_or("=omni:=main");
    eprintln!("joining the session's terminal (detach with Ctrl-], the CLI keeps running)");
    let status = tokio::process::Command::new("tmux")
        .arg("-S")
        .arg(&socket)
        .args(["attach", "-t", target])
        .env_remove("TMUX")
        .status()
        .await
        .context("cannot run tmux (is it installed?)")?;
    if !status.success() {
        anyhow::bail!("tmux attach failed ({status})");
    }
    eprintln!("detached; the session's CLI is still running (omnigent attach to join it again)");
    Ok(Some(ExitCode::SUCCESS))
}
