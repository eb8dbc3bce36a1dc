//! Starting one MCP server for a session: a stdio program in the session's sandbox (its stderr kept for the
//! error a failed start reports), or an HTTP endpoint with the configured headers — Streamable HTTP, or the older
//! HTTP+SSE transport for a URL ending in `/sse`.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use tokio::io::AsyncBufReadExt;

use super::elicit::{Handler, Route};
use crate::config::ToolConfig;
use crate::sandbox::Confinement;

/// A connected MCP client; its handler passes the server's questions to the user along `route`.
pub type Client = RunningService<RoleClient, Handler>;

/// Lines of a stdio server's stderr kept for its error messages.
const STDERR_LINES: usize = 8;

/// The last lines a stdio server wrote to stderr.
#[derive(Clone, Default)]
pub struct Stderr(Arc<Mutex<VecDeque<String>>>);

impl Stderr {
    pub fn tail(&self) -> String {
        self.0.lock().unwrap().iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// Connects to the server `name` of a session and completes MCP's handshake; the server's questions to the user
/// go along `route`.
pub async fn connect(
    name: &str,
    tool: &ToolConfig,
    place: Result<&Confinement, &String>,
    http: &reqwest::Client,
    route: Route,
) -> Result<(Client, Stderr), String> {
    let stderr = Stderr::default();
    let handler = Handler { route };
    let client = match (&tool.url, &tool.command) {
        (Some(url), _) => {
            let mut headers = HeaderMap::new();
            for (key, value) in tool.headers.iter().flatten() {
                let key = HeaderName::try_from(key.as_str()).map_err(|e| format!("header {key:?}: {e}"))?;
                let value = HeaderValue::try_from(value.as_str()).map_err(|e| format!("header {key}: {e}"))?;
                headers.insert(key, value);
            }
            if super::legacy_sse::is_legacy(url) {
                let transport = super::legacy_sse::open(url, headers, http).await?;
                handler.serve(transport).await.map_err(|e| format!("{url}: {e}"))?
            } else {
                let headers: HashMap<HeaderName, HeaderValue> =
                    headers.into_iter().filter_map(|(k, v)| Some((k?, v))).collect();
                let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(headers);
                let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
                handler.serve(transport).await.map_err(|e| format!("{url}: {e}"))?
            }
        }
        (None, Some(command)) => {
            let place = place.map_err(|why| format!("cannot start {command}: {why}"))?;
            let args: Vec<&str> = tool.args.iter().flatten().map(String::as_str).collect();
            let mut cmd = place.command(command, &args);
            cmd.envs(tool.env.iter().flatten());
            let (transport, err) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start {command}: {e}"))?;
            if let Some(err) = err {
                let (kept, server) = (stderr.0.clone(), name.to_string());
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(err).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        tracing::debug!(mcp_server = %server, "{line}");
                        let mut kept = kept.lock().unwrap();
                        if kept.len() == STDERR_LINES {
                            kept.pop_front();
                        }
                        kept.push_back(crate::ids::truncate(&line, 300));
                    }
                });
            }
            match handler.serve(transport).await {
                Ok(client) => client,
                Err(e) => {
                    // Give its last words a moment to arrive.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    let said = stderr.tail();
                    let said = if said.is_empty() { String::new() } else { format!("; it said:\n{said}") };
                    return Err(format!("{command} did not start as an MCP server ({e}){said}"));
                }
            }
        }
        (None, None) => return Err("neither url nor command".into()),
    };
    Ok((client, stderr))
}
