//! Running the server: in the foreground, or in the background with a pid file and log under the data dir.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::ServerArgs;
use crate::sandbox::SandboxOptions;
use crate::server::{Server, ServerOptions, check_exposure};
use crate::store::Store;

const PID_FILE: &str = "server.pid";
const LOG_FILE: &str = "server.log";
const DB_FILE: &str = "omnigent.db";
const START_WAIT: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(15);

pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".omnigent"),
        None => PathBuf::from(".omnigent"),
    }
}

/// What the pid file records about a running server.
#[derive(Serialize, Deserialize, Debug)]
struct PidFile {
    pid: u32,
    url: String,
    database: String,
}

fn pid_path(data_dir: &Path) -> PathBuf {
    data_dir.join(PID_FILE)
}

fn read_pid_file(data_dir: &Path) -> Option<PidFile> {
    let text = std::fs::read_to_string(pid_path(data_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

pub(super) fn process_alive(pid: u32) -> bool {
    // Signal 0 checks existence without sending anything.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Creates the data dir readable by its owner only (0700; an existing one is tightened): it holds the database,
/// the credentials file, and the compiled-component cache the server loads as native code.
pub(super) fn private_data_dir(dir: &Path) -> anyhow::Result<()> {
    crate::private_files::private_dir(dir)
        .with_context(|| format!("cannot create the data dir {} readable by you only (0700)", dir.display()))
}

/// Creates (if need be) a file of the data dir readable by its owner only (0600). SQLite gives its -wal and -shm
/// files the permissions of the database file.
fn private_file(path: &Path) -> anyhow::Result<()> {
    crate::private_files::touch_private(path)
        .with_context(|| format!("cannot create {} readable by you only (0600)", path.display()))
}

fn database_url(args: &ServerArgs) -> String {
    args.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join(DB_FILE).display()))
}

/// What no session's tools may see: the data dir, and a SQLite database elsewhere (with its journal files).
fn private_paths(args: &ServerArgs) -> Vec<PathBuf> {
    let mut paths = vec![args.data_dir.clone()];
    if let Some(db) = sqlite_file(&database_url(args)) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            paths.push(PathBuf::from(name));
        }
    }
    paths
}

/// The file of a SQLite database URL (None: Postgres, or in memory).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !p.contains(":memory:"))
        .map(PathBuf::from)
}

/// Hides credentials in a database URL before it is printed or logged.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

fn url_for(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// --advertise-url, checked: other replicas send HTTP requests to it.
fn advertise_url(args: &ServerArgs) -> anyhow::Result<Option<String>> {
    let Some(url) = &args.advertise_url else { return Ok(None) };
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--advertise-url {url:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        bail!("--advertise-url must be an http:// or https:// URL with a host, like http://10.0.0.5:6767");
    }
    Ok(Some(url.trim_end_matches('/').to_string()))
}

/// `omnigent server`: serve until SIGINT/SIGTERM.
pub async fn serve_foreground(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let policies = match &args.policies {
        Some(path) => crate::config::server_policies(path)?,
        None => Default::default(),
    };
    let options = ServerOptions {
        auth_token: args.auth_token()?,
        max_body_bytes: args.max_body_bytes,
        cache_dir: Some(args.data_dir.join("cache")),
        native_dir: Some(args.data_dir.join("native")),
        credentials_file: Some(args.data_dir.join(crate::credentials::FILE_NAME)),
        keys_from_environment: !args.no_env_credentials,
        policies,
        sandbox: SandboxOptions {
            private_paths: private_paths(&args),
            workspace_root: args.workspace_root.clone(),
            bwrap: args.bwrap.clone(),
        },
        advertise_url: advertise_url(&args)?,
        ..ServerOptions::default()
    };
    check_exposure(args.bind, &options)?;
    private_data_dir(&args.data_dir)?;
    if let Some(other) = read_pid_file(&args.data_dir)
        && other.pid != std::process::id()
        && process_alive(other.pid)
    {
        bail!(
            "another omnigent server (pid {}) is running for the data dir {} at {}; stop it with `omnigent server stop` \
             or use another --data-dir",
            other.pid,
            args.data_dir.display(),
            other.url
        );
    }
    let db = database_url(&args);
    // The database holds the configs' API keys: a SQLite file is created readable by its owner only.
    let _sqlite_owner = match sqlite_file(&db) {
        Some(path) => {
            private_file(&path)?;
            Some(super::sqlite_owner::take(&path, &url_for(args.bind))?)
        }
        None => None,
    };
    let store = Store::connect(&db).await.with_context(|| format!("cannot open the database {}", redact(&db)))?;
    let listener = TcpListener::bind(args.bind).await.with_context(|| format!("cannot listen on {}", args.bind))?;
    let shutdown = CancellationToken::new();
    let server = Server::new(store, listener, options, shutdown.clone()).await?;
    let addr = server.local_addr();
    let pid_file = PidFile { pid: std::process::id(), url: url_for(addr), database: redact(&db) };
    private_file(&pid_path(&args.data_dir))?;
    std::fs::write(pid_path(&args.data_dir), serde_json::to_string(&pid_file)?)
        .with_context(|| format!("cannot write {}", pid_path(&args.data_dir).display()))?;
    tracing::info!(
        url = %pid_file.url,
        database = %pid_file.database,
        credentials = %args.data_dir.join(crate::credentials::FILE_NAME).display(),
        keys_from_environment = !args.no_env_credentials,
        "omnigent server listening: open the url in a browser for the web UI"
    );
    tokio::spawn(wait_for_signal(shutdown));
    let result = server.run().await;
    // Only remove the pid file if it is still ours.
    if read_pid_file(&args.data_dir).is_some_and(|p| p.pid == std::process::id()) {
        let _ = std::fs::remove_file(pid_path(&args.data_dir));
    }
    result.context("the server stopped with an error")?;
    tracing::info!("omnigent server stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

/// `omnigent server start`.
pub async fn start(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    if let Some(p) = read_pid_file(&args.data_dir)
        && process_alive(p.pid)
    {
        println!("omnigent server already running (pid {}) at {}", p.pid, p.url);
        return Ok(ExitCode::SUCCESS);
    }
    let (pid, url) = spawn_background(args).await?;
    println!("omnigent server started (pid {pid}) at {url}; log: {}", args.data_dir.join(LOG_FILE).display());
    Ok(ExitCode::SUCCESS)
}

/// Starts `omnigent server` detached from this terminal and waits until it answers `/health`.
pub async fn spawn_background(args: &ServerArgs) -> anyhow::Result<(u32, String)> {
    private_data_dir(&args.data_dir)?;
    let log_path = args.data_dir.join(LOG_FILE);
    private_file(&log_path)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open the log {}", log_path.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("cannot find the omnigent executable")?;
    let mut command = std::process::Command::new(exe);
    command
        .arg("server")
        .arg("--bind")
        .arg(args.bind.to_string())
        .arg("--data-dir")
        .arg(&args.data_dir)
        .arg("--max-body-bytes")
        .arg(args.max_body_bytes.to_string())
        .args(args.policies.iter().flat_map(|p| [std::ffi::OsStr::new("--policies"), p.as_os_str()]))
        .args(args.no_env_credentials.then_some("--no-env-credentials"))
        .args(args.stage_times.then_some("--stage-times"))
        .args(args.workspace_root.iter().flat_map(|p| [std::ffi::OsStr::new("--workspace-root"), p.as_os_str()]))
        .args(args.bwrap.iter().flat_map(|p| [std::ffi::OsStr::new("--bwrap"), p.as_os_str()]))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Secrets travel by environment, not argv (argv is world-readable in /proc).
    if let Some(url) = &args.database_url {
        command.env("DATABASE_URL", url);
    }
    if let Some(token) = args.auth_token()? {
        command.env("OMNIGENT_AUTH_TOKEN", token);
    }
    // A session of its own: the server outlives this terminal and its Ctrl-C.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().context("cannot start the background server")?;
    let url = url_for(args.bind);
    let client = crate::http_client().timeout(Duration::from_secs(1)).build()?;
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(status) = child.try_wait()? {
            let tail = log_tail(&log_path, log_start);
            bail!("the background server exited ({status}) before answering; its log says:\n{tail}");
        }
        if client.get(format!("{url}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok((child.id(), url));
        }
        if Instant::now() > deadline {
            bail!("the background server did not answer at {url} within {START_WAIT:?}; see {}", log_path.display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_tail(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).to_string();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `omnigent server status`: exit 0 when running, 3 when not (as LSB init scripts do).
pub async fn status(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let Some(p) = read_pid_file(&args.data_dir).filter(|p| process_alive(p.pid)) else {
        println!("omnigent server is not running (data dir {})", args.data_dir.display());
        return Ok(ExitCode::from(3));
    };
    let client = crate::http_client().timeout(Duration::from_secs(2)).build()?;
    match client.get(format!("{}/health", p.url)).send().await {
        Ok(r) if r.status().is_success() => {
            let health: serde_json::Value = r.json().await.unwrap_or_default();
            println!(
                "omnigent server running (pid {}) at {}; database {} ({}); {} live sessions",
                p.pid,
                p.url,
                health["database"].as_str().unwrap_or("?"),
                p.database,
                health["live_sessions"]
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            println!("omnigent server process {} exists but does not answer at {}", p.pid, p.url);
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `omnigent server stop`.
pub async fn stop(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let Some(p) = read_pid_file(&args.data_dir).filter(|p| process_alive(p.pid)) else {
        println!("omnigent server is not running (data dir {})", args.data_dir.display());
        let _ = std::fs::remove_file(pid_path(&args.data_dir));
        return Ok(ExitCode::SUCCESS);
    };
    unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + STOP_WAIT;
    while process_alive(p.pid) && !is_zombie(p.pid) {
        if Instant::now() > deadline {
            eprintln!("omnigent server (pid {}) did not stop within {STOP_WAIT:?}; killing it", p.pid);
            unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGKILL) };
            let _ = std::fs::remove_file(pid_path(&args.data_dir));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("omnigent server (pid {}) stopped", p.pid);
    Ok(ExitCode::SUCCESS)
}

/// A zombie has exited but was not reaped (e.g. our own child); it counts as stopped.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|rest| rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}
