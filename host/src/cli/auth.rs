//! `omnigent auth set | list | remove`: the model keys a server on this machine uses, kept in one private file of
//! the data dir (`credentials.json`, 0600). The server reads the file when a turn calls its model, so a change
//! applies to the next call without a restart. Keys are never printed.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::ClientArgs;
use super::client::Client;
use crate::credentials::{ANTHROPIC, FILE_NAME, OPENAI, Stored, Vendor};

/// Longest key accepted.
const MAX_KEY_BYTES: usize = 4096;

#[derive(clap::Subcommand, Debug)]
pub enum AuthCommand {
    /// Store the key for a provider (`openai`, `anthropic`) or any name a session config refers to
    /// (`auth: {type: provider, name: NAME}` or `api_key: ${NAME}`). The key is read from --from-env, from stdin
    /// when it is not a terminal, or from a hidden prompt.
    Set {
        /// `openai`, `anthropic`, or any name (letters, digits, `_`, `-`, `.`).
        name: String,
        /// The provider's base URL for this key (an OpenAI-compatible gateway, a proxy); default: the vendor's.
        #[arg(long)]
        base_url: Option<String>,
        /// Read the key from this variable of your shell (e.g. OPENAI_API_KEY) instead of stdin.
        #[arg(long, value_name = "VAR")]
        from_env: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List the stored credentials (names, base URLs, when set — never the keys), which vendor key variables this
    /// shell sets, what a running server sees, and the order in which a turn looks for its key.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove a stored credential. Turns that used it fail with `missing_api_key` unless another source has a key.
    Remove {
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

/// The data dir whose credentials file is changed.
#[derive(clap::Args, Debug)]
pub struct DataDir {
    /// The server's data dir (its credentials file is `<data-dir>/credentials.json`).
    #[arg(long, env = "OMNIGENT_DATA_DIR", default_value_os_t = super::daemon::default_data_dir())]
    data_dir: PathBuf,
}

/// How a turn finds its key, as `list` prints it.
const ORDER: &str = "a turn takes its key from: 1. the session's executor.auth (a key, a ${VAR} reference, or \
    {type: provider, name}); 2. the stored credential named after the model's provider (openai, anthropic); 3. the \
    server's environment (OPENAI_API_KEY, ANTHROPIC_API_KEY), unless the CLI started that server in the background";

pub async fn run(command: AuthCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuthCommand::Set { name, base_url, from_env, dir } => {
            set(&dir.data_dir, &name, base_url, from_env.as_deref()).await
        }
        AuthCommand::List { json, client } => list(&client, json).await,
        AuthCommand::Remove { name, dir } => remove(&dir.data_dir, &name),
    }
}

/// The credentials file of a data dir.
pub fn file_of(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

async fn set(
    data_dir: &Path,
    name: &str,
    base_url: Option<String>,
    from_env: Option<&str>,
) -> anyhow::Result<ExitCode> {
    crate::ids::check_credential_name(name).map_err(anyhow::Error::msg)?;
    if let Some(url) = &base_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bail!("--base-url must be an http:// or https:// URL, got {url:?}");
    }
    let key = match from_env {
        Some(var) => std::env::var(var)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .with_context(|| format!("{var} is not set (or empty) in this shell"))?,
        None => read_key(name).await?,
    };
    let key = check_key(&key)?;
    store(data_dir, name, key, base_url)?;
    println!(
        "stored `{name}` in {} (readable by you only); a server using this data dir takes it from its next model \
         call",
        file_of(data_dir).display()
    );
    if ![OPENAI.name, ANTHROPIC.name].contains(&name) {
        println!(
            "a session config uses it with `auth: {{type: provider, name: {name}}}` or `auth: {{type: api_key, \
             api_key: \"${{{name}}}\"}}`"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes one credential (the CLI's own consent flow in `omnigent run` stores through here too).
pub fn store(data_dir: &Path, name: &str, api_key: String, base_url: Option<String>) -> anyhow::Result<()> {
    super::daemon::private_data_dir(data_dir)?;
    let updated_at = crate::record::iso8601(crate::record::now_us());
    crate::credentials::edit(&file_of(data_dir), |file| {
        file.credentials.insert(name.to_string(), Stored { api_key, base_url, updated_at });
        Ok(())
    })
    .map_err(anyhow::Error::msg)
}

/// A key is one token: surrounding whitespace (a newline from `echo`) is dropped; anything else is refused.
fn check_key(raw: &str) -> anyhow::Result<String> {
    let key = raw.trim();
    if key.is_empty() {
        bail!("no key given (empty input)");
    }
    if key.len() > MAX_KEY_BYTES {
        bail!("the key is longer than {MAX_KEY_BYTES} bytes; pass only the key");
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("the key contains spaces or control characters; pass only the key (one line)");
    }
    Ok(key.to_string())
}

/// The key from stdin: a hidden prompt on a terminal, else everything piped in.
async fn read_key(name: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::stdin()
            .take(MAX_KEY_BYTES as u64 + 2)
            .read_to_string(&mut text)
            .context("reading the key from stdin")?;
        return Ok(text);
    }
    eprint!("API key for {name} (input hidden): ");
    let _ = std::io::stderr().flush();
    let echo = EchoOff::new();
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    });
    tokio::select! {
        line = line => {
            // The terminal echoed the newline (ECHONL), not the key.
            drop(echo);
            Ok(line.context("reading the key")?.context("reading the key")?)
        }
        _ = tokio::signal::ctrl_c() => {
            drop(echo);
            eprintln!();
            // The blocking read cannot be cancelled; leave now, with the terminal as it was.
            std::process::exit(130);
        }
    }
}

/// The terminal's echo turned off until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> EchoOff {
        // SAFETY: termios calls on stdin with a zeroed struct the call fills.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return EchoOff(None);
            }
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            quiet.c_lflag |= libc::ECHONL;
            libc::tcsetattr(0, libc::TCSANOW, &quiet);
            EchoOff(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restoring the settings read in `new`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, saved) };
        }
    }
}

fn remove(data_dir: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let path = file_of(data_dir);
    let removed = crate::credentials::edit(&path, |file| {
        if file.credentials.remove(name).is_some() {
            return Ok(true);
        }
        let names: Vec<&str> = file.credentials.keys().map(String::as_str).collect();
        Err(format!(
            "no stored credential `{name}` in {} (stored: {})",
            path.display(),
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        ))
    });
    match removed {
        Ok(_) => {
            println!("removed `{name}` from {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("omnigent: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn list(args: &ClientArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    let path = file_of(&args.data_dir);
    let stored = crate::credentials::read(&path);
    let shell: Vec<(Vendor, bool)> = [OPENAI, ANTHROPIC]
        .into_iter()
        .map(|v| (v, std::env::var(v.key_var).is_ok_and(|k| !k.trim().is_empty())))
        .collect();
    // What a running server sees (none is started for this).
    let server = match Client::if_running(args).await {
        Some(client) => Some((client.base().to_string(), client.request(Method::GET, "/v1/credentials", None).await)),
        None => None,
    };
    if as_json {
        let entries: Value = match &stored {
            Ok(f) => f
                .credentials
                .iter()
                .map(|(name, s)| json!({"name": name, "base_url": s.base_url, "updated_at": s.updated_at}))
                .collect(),
            Err(_) => Value::Array(Vec::new()),
        };
        let out = json!({
            "file": path.display().to_string(),
            "credentials": entries,
            "error": stored.as_ref().err(),
            "shell": shell.iter().map(|(v, set)| json!({"variable": v.key_var, "set": set})).collect::<Vec<_>>(),
            "server": server.as_ref().map(|(url, answer)| json!({
                "url": url,
                "view": answer.as_ref().ok(),
                "error": answer.as_ref().err().map(|e| format!("{e:#}")),
            })),
            "order": ORDER,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    match &stored {
        Ok(f) if f.credentials.is_empty() => println!("no stored credentials ({})", path.display()),
        Ok(f) => {
            println!("stored in {}:", path.display());
            for (name, s) in &f.credentials {
                let url = s.base_url.as_deref().unwrap_or("(default URL)");
                println!("  {name:<16} {url:<40} set {}", s.updated_at);
            }
        }
        Err(e) => println!("{e}"),
    }
    for (Vendor { key_var: var, name, .. }, set) in &shell {
        if *set {
            println!(
                "this shell: {var} is set — a server you start here with `omnigent server` reads it; to keep it for \
                 any server: `omnigent auth set {name} --from-env {var}`"
            );
        }
    }
    match &server {
        None => println!("server: none answers at {}", args.server),
        Some((url, Err(e))) => println!("server at {url}: cannot ask it ({e:#})"),
        Some((url, Ok(view))) => {
            let file = view["file"].as_str().unwrap_or("no credentials file");
            let names: Vec<&str> =
                view["credentials"].as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
            let environment = if view["reads_environment"] == true {
                let vars: Vec<String> = view["environment"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        let state = if e["set"] == true { "set" } else { "not set" };
                        format!("{} {state}", e["variable"].as_str().unwrap_or("?"))
                    })
                    .collect();
                format!("its environment: {}", vars.join(", "))
            } else {
                "it does not read keys from its environment".into()
            };
            println!(
                "server at {url}: reads {file} ({}); {environment}",
                if names.is_empty() { "nothing stored".to_string() } else { names.join(", ") }
            );
            if let Some(error) = view["error"].as_str() {
                println!("  {error}");
            }
        }
    }
    println!("{ORDER}");
    Ok(ExitCode::SUCCESS)
}
