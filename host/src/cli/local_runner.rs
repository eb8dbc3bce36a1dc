//! The runner on this machine that `omnigent run --runner here` (or a run against a server elsewhere) binds its
//! new session to: the one already running for that server from this data dir, or one started in the background
//! (as a local server is started for client commands), registered with the server by itself.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::client::Client;

const PID_FILE: &str = "runner.pid";
const LOG_FILE: &str = "runner.log";
/// How long a new runner may take to register and connect.
const START_WAIT: Duration = Duration::from_secs(20);

/// What `runner.pid` says of the background runner.
#[derive(Serialize, Deserialize)]
struct Running {
    pid: u32,
    server: String,
}

/// The id of this machine's runner for the client's server, started if none runs; it is connected when this
/// returns.
pub async fn ensure(client: &Client, data_dir: &Path) -> anyhow::Result<String> {
    let server = client.base().trim_end_matches('/').to_string();
    let pid_path = data_dir.join(PID_FILE);
    let running = std::fs::read_to_string(&pid_path).ok().and_then(|t| serde_json::from_str::<Running>(&t).ok());
    let mut child = None;
    if !running.is_some_and(|r| r.server == server && super::daemon::process_alive(r.pid)) {
        crate::private_files::private_dir(data_dir)?;
        let log_path = data_dir.join(LOG_FILE);
        crate::private_files::touch_private(&log_path)?;
        let log = std::fs::OpenOptions::new().append(true).open(&log_path)?;
        let exe = std::env::current_exe().context("cannot find the omnigent executable")?;
        let mut command = std::process::Command::new(exe);
        command
            .args(["runner", "--server", &server, "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Secrets travel by environment, not argv.
        if let Some(token) = client.token() {
            command.env("OMNIGENT_AUTH_TOKEN", token);
        }
        // A session of its own: the runner outlives this terminal and its Ctrl-C.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let spawned = command.spawn().context("cannot start a runner in the background")?;
        let record = serde_json::to_vec(&Running { pid: spawned.id(), server: server.clone() })?;
        crate::private_files::write_private(&pid_path, &record)?;
        eprintln!(
            "omnigent: started a runner in the background (pid {}, log {}): this session's model calls and tools \
             run on this machine",
            spawned.id(),
            log_path.display()
        );
        child = Some(spawned);
    }
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(id) = super::runner::registered_id(data_dir, &server)
            && online(client, &id).await?
        {
            return Ok(id);
        }
        if let Some(child) = child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            bail!("the background runner exited ({status}); see {}", data_dir.join(LOG_FILE).display());
        }
        if Instant::now() > deadline {
            bail!(
                "this machine's runner did not connect to {server} within {START_WAIT:?}; see {}",
                data_dir.join(LOG_FILE).display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn online(client: &Client, id: &str) -> anyhow::Result<bool> {
    let runners = client.request(reqwest::Method::GET, "/v1/runners", None).await?;
    Ok(runners["data"].as_array().is_some_and(|d| d.iter().any(|r| r["id"] == id && r["online"] == true)))
}
