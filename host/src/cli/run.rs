//! `omnigent run`: create a session from a YAML file (or a harness name) and talk to it in the terminal.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::ClientArgs;
use super::ask::{Asked, read_yes_no, yes_no};
use super::client::Client;
use super::render::Renderer;
use crate::config::{Executor, SessionConfig};
use crate::protocol::EventType;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Quick start without a YAML file: a builtin harness (`agent`; `claude-native` or `codex-native` to run
    /// Claude Code or Codex with your own login in a terminal the session owns) or a path to a .wasm harness.
    #[arg(value_name = "HARNESS", conflicts_with = "file")]
    harness: Option<String>,
    /// Session config (Omnigent's single-file agent YAML).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Run one turn with this prompt, print it, and exit (0 if the turn succeeded).
    #[arg(short = 'p', long = "prompt")]
    prompt: Option<String>,
    /// Model for the quick start (e.g. gpt-4o-mini, claude-sonnet-4-5); overrides the YAML's model.
    #[arg(long)]
    model: Option<String>,
    /// Title of the new session.
    #[arg(long)]
    title: Option<String>,
    /// Fork this stored session and continue the copy here (the source is not changed).
    #[arg(long, value_name = "SESSION_ID", conflicts_with_all = ["file", "harness", "model"])]
    fork: Option<String>,
    /// With --fork: copy the history only through this response (resp_…).
    #[arg(long, value_name = "RESPONSE_ID", requires = "fork")]
    at: Option<String>,
    /// Reopen this stored session and continue it (same as `omnigent resume ID`).
    #[arg(short = 'r', long = "resume", value_name = "SESSION_ID", conflicts_with_all = ["file", "harness", "model", "fork"])]
    resume: Option<String>,
    /// Where the session's model calls and tools run: `here` — a runner on this machine (started in the background
    /// if none runs: with this machine's keys and files, wherever the server is); `server` — on the server;
    /// `auto` — here when the server is on another machine, else on the server.
    #[arg(long, value_enum, default_value_t = Where::Auto)]
    runner: Where,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Where {
    Auto,
    Here,
    Server,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if let Some(id) = args.resume {
        return join(
            JoinArgs { id, prompt: args.prompt, history: 20, chat: false, websocket: false, client: args.client },
            true,
        )
        .await;
    }
    if let Some(source) = &args.fork {
        let client = Client::connect(&args.client).await?;
        let body = json!({"title": args.title, "up_to_response_id": args.at});
        let path = format!("/v1/sessions/{}/fork", super::sessions::encode(source));
        let fork = client.request(Method::POST, &path, Some(&body)).await?;
        let id = fork["id"].as_str().context("the server's answer has no session id")?.to_string();
        eprintln!("forked {source} → session {id}  (web UI: {}/c/{id})", client.base());
        return converse(&client, &id, args.prompt.as_deref()).await;
    }
    // Read and check the config before anything starts: a bad file starts nothing.
    let mut config = match (&args.file, &args.harness) {
        (Some(path), _) => match SessionConfig::from_file(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("omnigent: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        (None, harness) => quick_config(harness.clone().unwrap_or_else(|| "agent".into()), args.model.clone()),
    };
    if args.file.is_some()
        && let Some(model) = &args.model
    {
        config.executor.model = Some(model.clone());
    }
    for key in config.unsupported_keys() {
        eprintln!("omnigent: note: `{key}` in the config is not supported yet and is ignored");
    }
    if config.executor.auth.as_ref().is_some_and(|a| a.api_key.is_some() && a.key_reference().is_none()) {
        eprintln!(
            "omnigent: note: executor.auth.api_key holds a key: it is stored with the session in the server's \
             database (never shown by the API). `omnigent auth set` keeps keys in one private file instead"
        );
    }
    let client = Client::connect(&args.client).await?;
    let here = match args.runner {
        Where::Here => true,
        Where::Server => false,
        Where::Auto => !super::client::is_loopback(client.base()),
    };
    let runner_id = match here {
        true => Some(super::local_runner::ensure(&client, &args.client.data_dir).await?),
        // Nothing is created unless the session's turns will find their model keys on the server.
        false if !super::preflight::credentials(&client, &config, &args.client.data_dir).await? => {
            return Ok(ExitCode::from(2));
        }
        false => None,
    };
    let title = args.title.clone().or_else(|| Some(config.name.clone()));
    let body = json!({"title": title, "config": config.to_json(), "runner_id": runner_id});
    let created = client.request(Method::POST, "/v1/sessions", Some(&body)).await?;
    let id = created["id"].as_str().context("the server's answer has no session id")?.to_string();
    eprintln!("session {id}  (web UI: {}/c/{id})", client.base());
    converse(&client, &id, args.prompt.as_deref()).await
}

/// `omnigent attach <id>` / `omnigent resume <id>`: join an existing session.
#[derive(clap::Args, Debug)]
pub struct JoinArgs {
    /// Session id (conv_… or bare hex).
    id: String,
    /// Run one turn with this prompt and exit (resume only).
    #[arg(short = 'p', long = "prompt")]
    prompt: Option<String>,
    /// How many recent transcript items to show first.
    #[arg(long, default_value_t = 20)]
    history: usize,
    /// On a native session (claude-native), follow the conversation as lines here instead of joining the CLI's
    /// terminal.
    #[arg(long)]
    chat: bool,
    /// Join the terminal through the server's WebSocket even when its tmux server is on this machine.
    #[arg(long, conflicts_with = "chat")]
    websocket: bool,
    #[command(flatten)]
    client: ClientArgs,
}

impl JoinArgs {
    pub fn prompt_given(&self) -> bool {
        self.prompt.is_some()
    }
}

/// Joins a live session as a thin client. `start_server`: resume may start a local server; attach never does.
pub async fn join(args: JoinArgs, start_server: bool) -> anyhow::Result<ExitCode> {
    let client = if start_server {
        Client::connect(&args.client).await?
    } else {
        Client::connect_existing(&args.client).await?
    };
    let path = format!("/v1/sessions/{}", super::sessions::encode(&args.id));
    let snapshot =
        client.request(Method::GET, &path, None).await.with_context(|| format!("cannot join session {}", args.id))?;
    let id = snapshot["id"].as_str().context("the server's answer has no session id")?.to_string();
    let interactive = args.prompt.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdin());
    if interactive && !args.chat {
        // `resume` starts a native session's CLI again if it ended; `attach` only joins a running one.
        if let Some(terminal) = super::terminal::find(&client, &id, start_server).await? {
            if !args.websocket
                && let Some(code) = super::terminal::attach_local(&terminal).await?
            {
                return Ok(code);
            }
            return super::terminal::attach_websocket(&client, &id, &terminal).await;
        }
    }
    let items = snapshot["items"].as_array().cloned().unwrap_or_default();
    eprintln!("session {id}: {} ({} items)", snapshot["status"].as_str().unwrap_or("?"), items.len());
    for item in &items[items.len().saturating_sub(args.history)..] {
        println!("  {}", super::sessions::item_line(item));
    }
    if let Some(error) = snapshot["last_task_error"].as_object() {
        eprintln!("last turn failed: {}", error.get("message").and_then(Value::as_str).unwrap_or(""));
    }
    if args.prompt.is_some() {
        return converse(&client, &id, args.prompt.as_deref()).await;
    }
    let mut chat = Chat::open(&client, &id).await?;
    chat.live().await
}

/// One turn with `prompt` (exit status by its outcome), or the interactive prompt.
async fn converse(client: &Client, id: &str, prompt: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut chat = Chat::open(client, id).await?;
    match prompt {
        Some(prompt) => {
            let ok = chat.turn(prompt).await?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        None => chat.interactive().await,
    }
}

/// The config `omnigent run <harness> [--model M]` uses: tools run in the current directory.
fn quick_config(harness: String, model: Option<String>) -> SessionConfig {
    // A native CLI picks its own default model (and uses the user's own login).
    let model = if harness == crate::config::CLAUDE_NATIVE {
        model
    } else {
        Some(model.unwrap_or_else(|| "gpt-4o-mini".into()))
    };
    let executor = Executor::new(&harness, model);
    let cwd = std::env::current_dir().ok().map(|d| crate::config::OsEnv {
        kind: None,
        cwd: Some(d.display().to_string()),
        sandbox: None,
    });
    SessionConfig { os_env: cwd, ..SessionConfig::new("quickstart", executor) }
}

/// A terminal conversation with one session.
struct Chat<'a> {
    client: &'a Client,
    id: String,
    events: EventReader,
}

impl<'a> Chat<'a> {
    async fn open(client: &'a Client, id: &str) -> anyhow::Result<Chat<'a>> {
        let response = client.stream(&format!("/v1/sessions/{id}/stream")).await?;
        let mut events = EventReader::new(response);
        // The first frame is the ready heartbeat: after it, nothing we cause can be missed.
        events.next().await?.context("the stream closed before it was ready")?;
        Ok(Chat { client, id: id.to_string(), events })
    }

    /// Sends one message and renders the turn. Returns whether it ended well.
    async fn turn(&mut self, text: &str) -> anyhow::Result<bool> {
        let message = json!({"type": "message", "data": {"role": "user", "content": text}});
        self.client.request(Method::POST, &format!("/v1/sessions/{}/events", self.id), Some(&message)).await?;
        let interrupt = tokio::signal::ctrl_c();
        tokio::pin!(interrupt);
        let mut interrupted = false;
        let mut renderer = Renderer::default();
        loop {
            let event = tokio::select! {
                e = self.events.next() => e?,
                _ = &mut interrupt, if !interrupted => {
                    interrupted = true;
                    eprintln!("\n(interrupting…)");
                    let body = json!({"type": "interrupt"});
                    self.client.request(Method::POST, &format!("/v1/sessions/{}/events", self.id), Some(&body)).await?;
                    continue;
                }
            };
            let Some((event_type, data)) = event else { bail!("the server closed the stream") };
            if let Some(done) = renderer.show(&event_type, &data, self.client, &self.id).await? {
                return Ok(done);
            }
            if let Some(asked) = renderer.asking.take() {
                // Ask inline; with no terminal to answer (stdin closed), leave it for the web UI or the API.
                let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                let answer = match read_yes_no(&mut lines).await {
                    Some(accept) => asked.answer(accept, &mut lines).await,
                    None => None,
                };
                let (eid, target) = (&asked.elicitation_id, &asked.target);
                match answer {
                    Some(body) => self.resolve(&asked, body).await?,
                    None => eprintln!(
                        "(no answer from this terminal; the session stays paused until someone answers it in the web \
                         UI, {}/approve/{target}/{eid}, or with POST /v1/sessions/{target}/elicitations/{eid}/resolve)",
                        self.client.base()
                    ),
                }
            }
        }
    }

    /// Answers a question (`body`: the action, and the fields filled in).
    async fn resolve(&self, asked: &Asked, body: Value) -> anyhow::Result<()> {
        let (eid, target) = (&asked.elicitation_id, &asked.target);
        // It may have been answered elsewhere (web UI, another terminal) meanwhile: say so, carry on.
        if let Err(e) = self
            .client
            .request(Method::POST, &format!("/v1/sessions/{target}/elicitations/{eid}/resolve"), Some(&body))
            .await
        {
            eprintln!("(could not answer: {e:#})");
        }
        Ok(())
    }

    /// Co-driving: everything that happens in the session prints as it happens (whoever caused it), and each line
    /// typed is sent as a message. Ctrl-C interrupts a running turn; Ctrl-D leaves.
    async fn live(&mut self) -> anyhow::Result<ExitCode> {
        eprintln!("live: type a message and press Enter; Ctrl-C interrupts the running turn, Ctrl-D leaves");
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut renderer = Renderer::default();
        let mut running = false;
        loop {
            tokio::select! {
                line = lines.next_line() => {
                    let Some(line) = line? else { return Ok(ExitCode::SUCCESS) };
                    if line.trim().is_empty() {
                        continue;
                    }
                    if let Some(asked) = renderer.asking.clone()
                        && let Some(accept) = yes_no(&line)
                    {
                        renderer.asking = None;
                        let Some(body) = asked.answer(accept, &mut lines).await else { return Ok(ExitCode::SUCCESS) };
                        self.resolve(&asked, body).await?;
                        continue;
                    }
                    let message = json!({"type": "message", "data": {"role": "user", "content": line}});
                    self.client.request(Method::POST, &format!("/v1/sessions/{}/events", self.id), Some(&message)).await?;
                }
                event = self.events.next() => {
                    let Some((event_type, data)) = event? else {
                        eprintln!("the session ended (deleted, or the server stopped)");
                        return Ok(ExitCode::FAILURE);
                    };
                    let known = EventType::parse(&event_type);
                    if known == Some(EventType::SessionStatus) {
                        running = data["status"] == "running";
                    }
                    if known == Some(EventType::SessionInputConsumed) && data["data"]["type"] == "message" {
                        renderer.newline();
                        let text: Vec<&str> = data["data"]["data"]["content"].as_array().map(|p| p.iter().filter_map(|c| c["text"].as_str()).collect()).unwrap_or_default();
                        println!("user: {}", text.join(" "));
                    }
                    renderer.show(&event_type, &data, self.client, &self.id).await?;
                }
                _ = tokio::signal::ctrl_c() => {
                    if !running {
                        return Ok(ExitCode::SUCCESS);
                    }
                    eprintln!("\n(interrupting…)");
                    let body = json!({"type": "interrupt"});
                    self.client.request(Method::POST, &format!("/v1/sessions/{}/events", self.id), Some(&body)).await?;
                }
            }
        }
    }

    async fn interactive(&mut self) -> anyhow::Result<ExitCode> {
        eprintln!("type a message and press Enter; Ctrl-C interrupts a turn, Ctrl-D leaves");
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            eprint!("› ");
            let _ = std::io::stderr().flush();
            let line = tokio::select! {
                l = lines.next_line() => l?,
                _ = tokio::signal::ctrl_c() => None,
            };
            let Some(line) = line else {
                eprintln!();
                return Ok(ExitCode::SUCCESS);
            };
            if line.trim().is_empty() {
                continue;
            }
            self.turn(&line).await?;
        }
    }
}

/// Reads `(event type, data)` pairs from our SSE stream; `[DONE]` ends it.
struct EventReader(crate::sse_reader::SseReader);

impl EventReader {
    fn new(response: reqwest::Response) -> Self {
        EventReader(crate::sse_reader::SseReader::new(response))
    }

    async fn next(&mut self) -> anyhow::Result<Option<(String, Value)>> {
        loop {
            // Heartbeats arrive at least every 15 s; a minute of silence means the connection is gone.
            let frame = match tokio::time::timeout(Duration::from_secs(60), self.0.next()).await {
                Ok(frame) => frame.context("reading the stream")?,
                Err(_) => bail!("no event (not even a heartbeat) from the server for 60 s"),
            };
            let Some(frame) = frame else { return Ok(None) };
            if frame.data == "[DONE]" {
                return Ok(None);
            }
            let Some(event) = frame.event else { continue };
            return Ok(Some((event, serde_json::from_str(&frame.data).unwrap_or(Value::Null))));
        }
    }
}
