//! What `omnigent run` checks before it creates a session: that the session's turns will find their model keys
//! on the server. When one is missing but this shell holds it, the user is asked whether to store it (the server
//! does not read this shell's variables); otherwise the exact command that fixes it is printed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::json;

use super::auth::{file_of, store};
use super::client::Client;
use crate::config::SessionConfig;
use crate::server::CredentialCheck;

/// Whether the config's turns find their keys (after storing what the user agreed to store).
pub async fn credentials(client: &Client, config: &SessionConfig, data_dir: &Path) -> anyhow::Result<bool> {
    let body = json!({"config": config.to_json()});
    // A second look after storing keys the user agreed to store.
    for _ in 0..2 {
        let answer = client.request(Method::POST, "/v1/credentials/check", Some(&body)).await?;
        let check: CredentialCheck = serde_json::from_value(answer)?;
        if check.ok {
            return Ok(true);
        }
        // The server reads this data dir's file: a key stored here reaches it.
        let server_file = check.file.as_deref().map(PathBuf::from);
        let shared = server_file.as_deref().is_some_and(|f| same_file(f, &file_of(data_dir)));
        let mut stored = Vec::new();
        let mut unresolved = false;
        for executor in &check.executors {
            let Some(missing) = &executor.missing else { continue };
            if stored.contains(&missing.store_as) {
                continue;
            }
            let in_shell = missing
                .env_var
                .as_deref()
                .and_then(|var| std::env::var(var).ok().filter(|k| !k.trim().is_empty()).map(|key| (var, key)));
            if let Some((var, key)) = &in_shell
                && shared
                && interactive()
                && consent(&missing.message, var, &missing.store_as, &file_of(data_dir)).await?
            {
                store(data_dir, &missing.store_as, key.trim().to_string(), None)?;
                eprintln!("stored `{}`", missing.store_as);
                stored.push(missing.store_as.clone());
                continue;
            }
            unresolved = true;
            eprintln!("omnigent: {}: {}", executor.path, missing.message);
            let dir = match (&server_file, shared) {
                (Some(f), false) => f.parent().map(|d| format!(" --data-dir {}", d.display())).unwrap_or_default(),
                _ => String::new(),
            };
            match &in_shell {
                Some((var, _)) => eprintln!(
                    "  {var} is set in this shell, but the server does not read this shell's variables. Store it \
                     once: omnigent auth set {}{dir} --from-env {var}",
                    missing.store_as
                ),
                None => eprintln!("  fix: omnigent auth set {}{dir}", missing.store_as),
            }
        }
        if unresolved {
            eprintln!("omnigent: no session was created");
            return Ok(false);
        }
    }
    Ok(true)
}

fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| {
        let dir = p.parent().and_then(|d| std::fs::canonicalize(d).ok());
        dir.map(|d| d.join(p.file_name().unwrap_or_default())).unwrap_or_else(|| p.to_path_buf())
    };
    canon(a) == canon(b)
}

/// Asks whether to store the key `var` holds; Enter means yes.
async fn consent(message: &str, var: &str, name: &str, file: &Path) -> anyhow::Result<bool> {
    eprintln!("{message}");
    eprint!(
        "{var} is set in this shell. Store it as `{name}` in {} for this and later sessions? [Y/n] ",
        file.display()
    );
    use std::io::Write;
    let _ = std::io::stderr().flush();
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await??;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "" | "y" | "yes"))
}
