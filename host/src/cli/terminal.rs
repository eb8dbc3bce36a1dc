//! Joining a native session's terminal from the command line: the CLI's own TUI, live, in your terminal —
//! through its tmux server directly when the session runs on this machine, else over the server's WebSocket (raw
//! mode, your window's size, Ctrl-] detaches). Either way the CLI keeps running.

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

/// The byte Ctrl-] sends: detaches a WebSocket viewer (the direct tmux attach binds the same key).
const DETACH: u8 = 0x1d;

/// Joins the terminal over the server's WebSocket until Ctrl-] or the terminal's end.
pub async fn attach_websocket(client: &Client, id: &str, terminal: &Value) -> anyhow::Result<ExitCode> {
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let tid = terminal["id"].as_str().context("the terminal has no id")?;
    let base = super::client::websocket_base(client.base())?;
    let mut request = format!("{base}/v1/sessions/{id}/resources/terminals/{tid}/attach").into_client_request()?;
    if let Some(token) = client.token() {
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await.context("cannot open the terminal's WebSocket")?;
    let (mut sink, mut source) = ws.split();
    eprintln!("joining the session's terminal over the server (detach with Ctrl-], the CLI keeps running)");
    let _raw = RawMode::enter();
    if let Some((cols, rows)) = window_size() {
        sink.send(Message::Text(json!({"type": "resize", "cols": cols, "rows": rows}).to_string().into())).await?;
    }
    let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut buf = [0u8; 4096];
    let ended = loop {
        tokio::select! {
            n = stdin.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    break false;
                }
                let keys = &buf[..n];
                if let Some(at) = keys.iter().position(|b| *b == DETACH) {
                    if at > 0 {
                        sink.send(Message::Binary(keys[..at].to_vec().into())).await?;
                    }
                    break false;
                }
                sink.send(Message::Binary(keys.to_vec().into())).await?;
            }
            message = source.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    stdout.write_all(&bytes).await?;
                    stdout.flush().await?;
                }
                Some(Ok(Message::Close(_))) | None => break true,
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(_)) => {}
            },
            _ = resized.recv() => {
                if let Some((cols, rows)) = window_size() {
                    sink.send(Message::Text(json!({"type": "resize", "cols": cols, "rows": rows}).to_string().into())).await?;
                }
            }
        }
    };
    let _ = sink.send(Message::Close(None)).await;
    drop(_raw);
    if ended {
        eprintln!("\r\nthe session's terminal has ended");
    } else {
        eprintln!("\r\ndetached; the session's CLI is still running (omnigent attach to join it again)");
    }
    Ok(ExitCode::SUCCESS)
}

/// The size of this terminal (columns, rows), if stdout is one.
fn window_size() -> Option<(u16, u16)> {
    // SAFETY: TIOCGWINSZ fills the winsize struct we own; nothing else is touched.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some((size.ws_col, size.ws_row))
}

/// This terminal in raw mode (every key goes to the CLI as typed) until dropped.
struct RawMode(Option<libc::termios>);

impl RawMode {
    fn enter() -> RawMode {
        // SAFETY: tcgetattr/tcsetattr on stdin with termios structs we own.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
                return RawMode(None);
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw);
            RawMode(Some(saved))
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the settings read in `enter`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}
