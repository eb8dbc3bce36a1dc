//! `omnigent runner`: this machine runs the model calls and builtin tools of the sessions bound to it, with its own
//! keys and files, for a server elsewhere. It dials out (no open port), keeps its tunnel open, and reconnects
//! after a drop; a model call the drop cut is made again once it is back.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::{DEFAULT_SERVER, daemon, token_from};
use crate::credentials::Credentials;
use crate::remote::wire::{FromRunner, TUNNEL, ToRunner};
use crate::remote::worker::Worker;
use crate::sandbox::{Sandbox, SandboxOptions};

/// Where a runner keeps its registration, in its data dir.
const REGISTRATION: &str = "runner.json";

#[derive(Args, Debug)]
pub struct RunnerArgs {
    /// The server whose sessions this machine runs.
    #[arg(long, env = "OMNIGENT_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// This runner's token (`runner_…​.…`, from `POST /v1/runners`). Without one the runner registers itself (with
    /// --server-token where the server wants one) and keeps its token in the data dir for next time. A value
    /// given here is visible in the process list: prefer OMNIGENT_RUNNER_TOKEN or --token-file.
    #[arg(long, env = "OMNIGENT_RUNNER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding this runner's token (its first line).
    #[arg(long, env = "OMNIGENT_RUNNER_TOKEN_FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The server's bearer token, to register this runner (not needed for a loopback server without one).
    #[arg(long, env = "OMNIGENT_AUTH_TOKEN", hide_env_values = true)]
    server_token: Option<String>,
    /// A name for this runner when it registers (default: this machine's host name).
    #[arg(long)]
    name: Option<String>,
    /// Where the runner keeps its registration and reads its model keys (`omnigent auth`).
    #[arg(long, env = "OMNIGENT_DATA_DIR", default_value_os_t = daemon::default_data_dir())]
    data_dir: PathBuf,
    /// Take model keys only from the credentials file, never from this process's environment.
    #[arg(long)]
    no_env_credentials: bool,
    /// The bubblewrap program that sandboxes builtin tools (default: `bwrap` on PATH).
    #[arg(long, env = "OMNIGENT_BWRAP")]
    bwrap: Option<PathBuf>,
    /// Confine every session bound to this runner to this folder: its working directory must lie under it and its
    /// tools always run in bubblewrap. Anyone who may bind sessions on the server can run tools here: use it
    /// unless you trust them all.
    #[arg(long, env = "OMNIGENT_WORKSPACE_ROOT")]
    workspace_root: Option<PathBuf>,
}

/// What the data dir remembers of a registration.
#[derive(Serialize, Deserialize)]
struct Registration {
    server: String,
    token: String,
}

pub async fn run(args: RunnerArgs) -> anyhow::Result<ExitCode> {
    let server = args.server.trim_end_matches('/').to_string();
    crate::private_files::private_dir(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    let token = match token_from(&args.token, &args.token_file)? {
        Some(token) => token,
        None => registered(&args, &server).await?,
    };
    let runner = token.split_once('.').map(|(id, _)| id.to_string()).context("a runner token looks like runner_….…")?;
    let credentials =
        Arc::new(Credentials::new(Some(args.data_dir.join(crate::credentials::FILE_NAME)), !args.no_env_credentials));
    let sandbox = SandboxOptions {
        private_paths: vec![args.data_dir.clone()],
        workspace_root: args.workspace_root,
        bwrap: args.bwrap,
    };
    let sandbox = Arc::new(Sandbox::start(sandbox).await.map_err(anyhow::Error::msg)?);
    let http = crate::http_client().connect_timeout(Duration::from_secs(30)).build()?;
    let worker = Worker::new(http, credentials, sandbox);
    let base = super::client::websocket_base(&server)?;
    let url = format!("{base}/v1/runners/{runner}/{TUNNEL}");
    let mut wait = Duration::from_secs(1);
    loop {
        let mut request = url.as_str().into_client_request()?;
        request.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
        let connecting = tokio::select! {
            // Frames are small and latency is the point: no Nagle (with delayed ACKs it costs ~40 ms a call).
            c = tokio_tungstenite::connect_async_with_config(request, None, true) => c,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        match connecting {
            Ok((socket, _)) => {
                wait = Duration::from_secs(1);
                tracing::warn!(runner, server, "connected: running the sessions bound to this runner");
                eprintln!("omnigent runner {runner}: connected to {server}");
                let stop = serve(socket, &worker).await;
                worker.abort_all();
                if stop {
                    return Ok(ExitCode::SUCCESS);
                }
                eprintln!("omnigent runner {runner}: disconnected from {server}; reconnecting");
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) if response.status().as_u16() == 401 => {
                bail!(
                    "{server} refused runner {runner}'s token (register again: remove {} or pass --token)",
                    args.data_dir.join(REGISTRATION).display()
                );
            }
            Err(e) => tracing::warn!(server, error = %e, "cannot reach the server; retrying in {wait:?}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

/// Serves one connection until it closes (false) or Ctrl-C (true).
async fn serve(
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    worker: &Worker,
) -> bool {
    let (mut sink, mut source) = socket.split();
    let (out, mut outgoing) = mpsc::unbounded_channel::<FromRunner>();
    loop {
        tokio::select! {
            message = source.next() => match message {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ToRunner>(&text) {
                    Ok(frame) => worker.handle(frame, out.clone()),
                    Err(e) => tracing::warn!(error = %e, "the server sent a frame this runner does not read"),
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
                Some(Ok(_)) => {}
            },
            frame = outgoing.recv() => {
                let Some(frame) = frame else { return false };
                let text = serde_json::to_string(&frame).expect("frames serialize");
                if sink.send(Message::Text(text.into())).await.is_err() {
                    return false;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                let _ = sink.send(Message::Close(None)).await;
                return true;
            }
        }
    }
}

/// The id of the runner this data dir registered with `server`, if it did.
pub fn registered_id(data_dir: &Path, server: &str) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(REGISTRATION)).ok()?;
    let saved = serde_json::from_str::<Registration>(&text).ok().filter(|r| r.server == server)?;
    saved.token.split_once('.').map(|(id, _)| id.to_string())
}

/// The token this data dir registered with `server`, or a new registration.
async fn registered(args: &RunnerArgs, server: &str) -> anyhow::Result<String> {
    let path = args.data_dir.join(REGISTRATION);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(saved) = serde_json::from_str::<Registration>(&text)
        && saved.server == server
    {
        return Ok(saved.token);
    }
    let name = args.name.clone().unwrap_or_else(host_name);
    let client = crate::http_client().build()?;
    let mut request = client.post(format!("{server}/v1/runners")).json(&json!({"name": name}));
    if let Some(token) = &args.server_token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.with_context(|| format!("cannot reach {server} to register this runner"))?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if !status.is_success() {
        let why = body.pointer("/error/message").and_then(|m| m.as_str()).unwrap_or("no reason given");
        bail!("{server} did not register this runner (HTTP {}): {why}", status.as_u16());
    }
    let token = body["token"].as_str().context("the server's answer has no runner token")?.to_string();
    save(&path, &Registration { server: server.to_string(), token: token.clone() })?;
    eprintln!("omnigent runner: registered with {server} as {} ({name})", body["id"].as_str().unwrap_or("?"));
    Ok(token)
}

fn save(path: &Path, registration: &Registration) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(registration)?;
    crate::private_files::write_private(path, &text).with_context(|| format!("cannot write {}", path.display()))
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "runner".into())
}
