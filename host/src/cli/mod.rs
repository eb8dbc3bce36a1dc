//! The `omnigent` command line.

mod ask;
mod auth;
mod client;
mod daemon;
mod local_runner;
mod native_hook;
mod plugin;
mod preflight;
mod render;
mod run;
mod runner;
mod sessions;
mod sqlite_owner;
mod terminal;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use client::Client;

/// Default address of the local server (and of the web UI).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:6767";

#[derive(Parser, Debug)]
#[command(
    name = "omnigent",
    version,
    about = "A host for AI coding agent sessions: durable history, live streams, WASM harnesses and policies.",
    long_about = "A host for AI coding agent sessions.\n\n\
        `omnigent server` runs the host; client commands (`sessions …`) talk to it over HTTP and start a local \
        server in the background when none answers on a loopback address."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a session from a YAML config (-f) or a harness name and talk to it here.
    Run(run::RunArgs),
    /// Join a live session as a thin client: recent history, live events, your lines as messages. Never starts a
    /// server; fails if the session or the server is not there.
    Attach(run::JoinArgs),
    /// Reopen a stored session (after a restart, too) and continue it; starts a local server if needed.
    Resume(run::JoinArgs),
    /// Run the host server in the foreground, or manage a background one (start | status | stop).
    Server(ServerCommand),
    /// Run, on this machine, the model calls and tools of the sessions a server binds to this runner — with this
    /// machine's keys and files. Dials out to the server (no open port needed) and reconnects after a drop.
    Runner(runner::RunnerArgs),
    /// Store, list and remove the model keys the server uses (one private file in the data dir).
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// List, show and delete sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// For plugin authors: check a harness or policy component (`omnigent plugin check FILE.wasm`).
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Used by native CLIs (Claude Code) as their hook command: reads the hook's JSON on stdin, asks the
    /// session's server, prints the answer. Not for people.
    #[command(hide = true)]
    NativeHook(native_hook::HookArgs),
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = false)]
struct ServerCommand {
    #[command(subcommand)]
    action: Option<ServerAction>,
    #[command(flatten)]
    options: ServerArgs,
}

#[derive(Subcommand, Debug)]
enum ServerAction {
    /// Start a server in the background (pid file and log under the data dir) and wait until it answers.
    Start,
    /// Say whether the background server of this data dir is running, and where.
    Status,
    /// Stop the background server of this data dir (SIGTERM, then SIGKILL after 15 s).
    Stop,
}

/// Where the server listens and keeps its data.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on. Anything but loopback requires --auth-token.
    #[arg(long, env = "OMNIGENT_BIND", default_value = "127.0.0.1:6767", global = true)]
    bind: SocketAddr,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Directory for the SQLite database, pid file and server log.
    #[arg(long, env = "OMNIGENT_DATA_DIR", default_value_os_t = daemon::default_data_dir(), global = true)]
    data_dir: PathBuf,
    /// Bearer token clients must send. Required when --bind is not a loopback address. A value given here is
    /// visible to other local users in the process list: prefer OMNIGENT_AUTH_TOKEN or --auth-token-file.
    #[arg(long, env = "OMNIGENT_AUTH_TOKEN", hide_env_values = true, global = true)]
    auth_token: Option<String>,
    /// A file holding the bearer token (its first line); the safe way to pass a token.
    #[arg(long, env = "OMNIGENT_AUTH_TOKEN_FILE", conflicts_with = "auth_token", global = true)]
    auth_token_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024, global = true)]
    max_body_bytes: usize,
    /// Server-wide default policies: a YAML file with a `policies:` map (the same entries as a session YAML's),
    /// judged after each session's own and its config's.
    #[arg(long, env = "OMNIGENT_POLICIES", global = true)]
    policies: Option<PathBuf>,
    /// Take model keys only from the credentials file (`omnigent auth`) and session configs, never from this
    /// process's environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, their *_BASE_URL, `${VAR}` references). The
    /// background server the CLI starts on its own runs this way: a key must not depend on which shell started it.
    #[arg(long, global = true)]
    no_env_credentials: bool,
    /// Confine every session to this folder: each working directory (`os_env.cwd`, a create request's
    /// `workspace`) and sandbox grant must lie under it, and builtin tools always run in bubblewrap (`type: none`
    /// is refused). Use it when clients you do not fully trust can create sessions. Without it a session may work
    /// in any folder this server's user can reach, its tools sandboxed per its `os_env.sandbox`.
    #[arg(long, env = "OMNIGENT_WORKSPACE_ROOT", global = true)]
    workspace_root: Option<PathBuf>,
    /// The bubblewrap program that sandboxes builtin tools (default: `bwrap` on PATH). It is tried once at start;
    /// when it cannot run, sessions with `sandbox: auto` run their tools unconfined and say so.
    #[arg(long, env = "OMNIGENT_BWRAP", global = true)]
    bwrap: Option<PathBuf>,
    /// Keep how long each stage of the turn path takes (an input's ack, each commit, the harness's instance, each
    /// model call, emit and policy evaluation, …) and serve the breakdown at `GET /v1/debug/stages` (`DELETE`
    /// starts it over). For finding where time goes; costs about a microsecond per stage.
    #[arg(long, env = "OMNIGENT_STAGE_TIMES", global = true)]
    stage_times: bool,
    /// With Postgres, several servers may share the database (replicas): each forwards a session's writes to the
    /// one that runs the session, at the URL that one advertises. Default: http://<--bind> (127.0.0.1 for an
    /// unspecified address) — set it when replicas run on different machines.
    #[arg(long, env = "OMNIGENT_ADVERTISE_URL", global = true)]
    advertise_url: Option<String>,
}

/// How client commands reach the server.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Server URL. A loopback URL that nobody answers gets a background server started for it.
    #[arg(long, env = "OMNIGENT_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Bearer token for servers that require one. A value given here is visible to other local users in the
    /// process list: prefer OMNIGENT_AUTH_TOKEN or --token-file.
    #[arg(long, env = "OMNIGENT_AUTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the bearer token (its first line).
    #[arg(long, env = "OMNIGENT_AUTH_TOKEN_FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Data dir for a server started in the background (its database, pid file and log).
    #[arg(long, env = "OMNIGENT_DATA_DIR", default_value_os_t = daemon::default_data_dir())]
    data_dir: PathBuf,
}

#[derive(Subcommand, Debug)]
enum SessionsCommand {
    /// List sessions, newest first.
    List {
        /// Only sessions in this state (idle, running, failed, paused).
        #[arg(long)]
        status: Option<String>,
        /// How many to show (1..1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one session: state, last error and transcript.
    Show {
        /// Session id (conv_… or bare hex).
        id: String,
        /// Print the API's JSON snapshot.
        #[arg(long)]
        json: bool,
        /// Print the session's event log instead, one JSON event per line (the input of `omnigent plugin test`).
        #[arg(long, conflicts_with = "json")]
        events: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a session and its history.
    Delete {
        /// Session id (conv_… or bare hex).
        id: String,
        /// Print the API's JSON answer.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl ServerArgs {
    /// The bearer token, from --auth-token, OMNIGENT_AUTH_TOKEN or the token file.
    fn auth_token(&self) -> anyhow::Result<Option<String>> {
        token_from(&self.auth_token, &self.auth_token_file)
    }
}

impl ClientArgs {
    /// The bearer token, from --token, OMNIGENT_AUTH_TOKEN or the token file.
    fn token(&self) -> anyhow::Result<Option<String>> {
        token_from(&self.token, &self.token_file)
    }
}

/// A token given directly, or the first line of a token file (a regular file of at most 4 KiB).
fn token_from(direct: &Option<String>, file: &Option<PathBuf>) -> anyhow::Result<Option<String>> {
    let Some(path) = file else { return Ok(direct.clone()) };
    let bytes = crate::regular_file::read(path, 4096)?;
    let text =
        String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("the token file {} is not text", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        anyhow::bail!("the token file {} is empty", path.display());
    }
    Ok(Some(token))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (is_server, stage_times) = match &cli.command {
        Command::Server(ServerCommand { action: None, options }) => (true, options.stage_times),
        // A runner is a service too: its log says what it runs.
        Command::Runner(_) => (true, false),
        _ => (false, false),
    };
    init_tracing(if is_server { "info,sqlx=warn" } else { "warn" }, stage_times);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("omnigent: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("omnigent: error: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Whatever is still stuck (a blocking read, a tool's child) does not keep the process from exiting.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    code
}

/// Logs to stderr (RUST_LOG, else `default`); with `stage_times`, also keeps the turn path's stage times.
fn init_tracing(default: &str, stage_times: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let log = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr);
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(log, filter))
        .with(stage_times.then(crate::stages::layer))
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Server(ServerCommand { action, options }) => match action {
            None => daemon::serve_foreground(options).await,
            Some(ServerAction::Start) => daemon::start(&options).await,
            Some(ServerAction::Status) => daemon::status(&options).await,
            Some(ServerAction::Stop) => daemon::stop(&options).await,
        },
        Command::Sessions(cmd) => sessions::run(cmd).await,
        Command::Runner(args) => runner::run(args).await,
        Command::Auth(cmd) => auth::run(cmd).await,
        Command::Plugin(cmd) => plugin::run(cmd).await,
        Command::NativeHook(args) => native_hook::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::Attach(args) => {
            if args.prompt_given() {
                anyhow::bail!("attach is interactive; use `omnigent resume <id> -p …` for one turn");
            }
            run::join(args, false).await
        }
        Command::Resume(args) => run::join(args, true).await,
    }
}
