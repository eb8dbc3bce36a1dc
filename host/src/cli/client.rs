//! The HTTP client the CLI uses, including starting a local server when none answers.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{ClientArgs, ServerArgs};

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// Connects to the server of `args`, starting a local one in the background when the URL is loopback and
    /// nothing answers (and saying so in one line on stderr).
    pub async fn connect(args: &ClientArgs) -> anyhow::Result<Client> {
        let client = Self::new(args)?;
        if client.answers().await {
            return Ok(client);
        }
        let Some(bind) = loopback_addr(&client.base) else {
            bail!("no omnigent server answers at {}", client.base);
        };
        let server_args = ServerArgs {
            bind,
            database_url: std::env::var("DATABASE_URL").ok(),
            data_dir: args.data_dir.clone(),
            auth_token: client.token.clone(),
            auth_token_file: None,
            max_body_bytes: 4 * 1024 * 1024,
            policies: None,
            // Keys come from `omnigent auth` and the configs: this shell's variables are not the server's.
            no_env_credentials: true,
            workspace_root: std::env::var_os("OMNIGENT_WORKSPACE_ROOT").map(Into::into),
            bwrap: std::env::var_os("OMNIGENT_BWRAP").map(Into::into),
            stage_times: false,
            advertise_url: None,
        };
        let (pid, url) = super::daemon::spawn_background(&server_args).await?;
        eprintln!(
            "omnigent: no server answered at {}; started one in the background (pid {pid}, {url}, log {}); it takes \
             model keys from `omnigent auth`, not from this shell",
            client.base,
            args.data_dir.join("server.log").display()
        );
        Ok(client)
    }

    /// Connects to a server that must already be running (`attach` never starts one).
    pub async fn connect_existing(args: &ClientArgs) -> anyhow::Result<Client> {
        let client = Self::new(args)?;
        if !client.answers().await {
            bail!(
                "no omnigent server answers at {} (attach never starts one; use `omnigent resume` to reopen a stored session)",
                client.base
            );
        }
        Ok(client)
    }

    /// The server of `args` if one answers; never starts one.
    pub async fn if_running(args: &ClientArgs) -> Option<Client> {
        let client = Self::new(args).ok()?;
        client.answers().await.then_some(client)
    }

    fn new(args: &ClientArgs) -> anyhow::Result<Client> {
        let base = args.server.trim_end_matches('/').to_string();
        let http = crate::http_client().connect_timeout(Duration::from_secs(5)).build()?;
        Ok(Client { http, base, token: args.token()? })
    }

    async fn answers(&self) -> bool {
        let probe = self.http.get(format!("{}/health", self.base)).timeout(Duration::from_secs(2)).send().await;
        probe.is_ok_and(|r| r.status().is_success())
    }

    /// The bearer token requests carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Opens an SSE stream (`GET path`), failing with the server's message on a non-200.
    pub async fn stream(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| format!("GET {path} failed"))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        Err(api_error(status, &response.text().await.unwrap_or_default()))
    }

    /// Sends a request and returns the JSON answer, turning the API's error envelope into a readable error.
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path} failed"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return serde_json::from_str(&text).with_context(|| format!("the server sent invalid JSON for {path}"));
        }
        Err(api_error(status, &text))
    }
}

/// A readable error from a non-success answer: the message of the API's error envelope (or the body).
fn api_error(status: StatusCode, body: &str) -> anyhow::Error {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string());
    if status == StatusCode::UNAUTHORIZED {
        return anyhow!("{message} (pass --token or set OMNIGENT_AUTH_TOKEN)");
    }
    anyhow!("{message} (HTTP {})", status.as_u16())
}

/// The socket address to start a server on, when `url` names a loopback host.
/// The WebSocket address of a server's URL: `ws://` for `http://`, `wss://` (the system's trusted roots, or
/// SSL_CERT_FILE) for `https://`.
pub fn websocket_base(url: &str) -> anyhow::Result<String> {
    if let Some(rest) = url.strip_prefix("http://") {
        return Ok(format!("ws://{rest}"));
    }
    if let Some(rest) = url.strip_prefix("https://") {
        // rustls needs the process's crypto provider, which the HTTP client installs.
        let _ = rustls::crypto::ring::default_provider().install_default();
        return Ok(format!("wss://{rest}"));
    }
    bail!("{url} is not an http:// or https:// URL")
}

/// Whether `url` names a server on this machine.
pub fn is_loopback(url: &str) -> bool {
    loopback_addr(url).is_some()
}

fn loopback_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    let (host, port) =
        authority.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>().ok())).unwrap_or((authority, Some(80)));
    let ip: IpAddr = match host.trim_matches(['[', ']']) {
        "localhost" => IpAddr::from([127, 0, 0, 1]),
        other => other.parse().ok()?,
    };
    ip.is_loopback().then_some(SocketAddr::new(ip, port?))
}

#[cfg(test)]
mod tests {
    use super::loopback_addr;

    #[test]
    fn only_loopback_urls_get_a_local_server() {
        assert_eq!(loopback_addr("http://127.0.0.1:6767").unwrap().port(), 6767);
        assert_eq!(loopback_addr("http://localhost:7000/").unwrap().port(), 7000);
        assert!(loopback_addr("http://[::1]:7000").unwrap().ip().is_loopback());
        assert!(loopback_addr("http://10.0.0.5:6767").is_none());
        assert!(loopback_addr("https://127.0.0.1:6767").is_none());
        assert!(loopback_addr("http://example.com:6767").is_none());
    }
}
