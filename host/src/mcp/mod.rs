//! MCP servers (`type: mcp` tools), on the official Rust SDK (`rmcp`).
//!
//! A session's servers start with its first turn that needs them and are shared by its later turns; a server that
//! died or failed to start is started again at the next turn; all stop when the session is deleted or has not used
//! them for [`IDLE_STOP`]. Their tools are offered as `<key>__<tool>` (the config's key; so two servers cannot
//! collide), limited by `tools: [names]` / `tool_name`; each call goes through the policies like any tool call, and
//! its result is capped. A server's own question to the user during a call (MCP's elicitation, `elicit.rs`) is
//! asked like a policy's question. `session.mcp_startup` reports each server's start: starting, ready or failed.

mod connect;
mod elicit;
mod legacy_sse;

pub use elicit::Question;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, ContentBlock};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::{SessionConfig, ToolConfig, ToolKind, ToolTools};
use crate::ids::SessionId;
use crate::sandbox::Confinement;
use crate::session::Answer;

/// Longest a server may take to start and list its tools.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Servers a session has not used for this long are stopped (started again when needed).
pub const IDLE_STOP: Duration = Duration::from_secs(600);
/// A tool call's default time limit (the server's `timeout_s` sets another).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest tool name a model API accepts.
const MAX_TOOL_NAME: usize = 64;

/// A server's tool as the model sees it.
#[derive(Clone, Debug)]
pub struct McpTool {
    /// `<server>__<tool>`.
    pub name: String,
    pub server: String,
    pub tool: String,
    pub description: String,
    pub parameters: Value,
}

/// What a turn learns from starting its session's servers.
#[derive(Default)]
pub struct Startup {
    pub tools: Vec<McpTool>,
    /// Servers that could not start, and why (their tools' calls say so).
    pub failed: BTreeMap<String, String>,
    /// Each server started (or retried) for this turn, and how it went: `session.mcp_startup`'s `servers`.
    pub report: BTreeMap<String, Value>,
}

struct Running {
    client: connect::Client,
    stderr: connect::Stderr,
    /// Where the server's questions to the user go.
    route: elicit::Route,
    tools: Vec<McpTool>,
    /// The config it was started from: a changed one starts it again.
    spec: ToolConfig,
}

impl Running {
    /// Still connected, and started from this config.
    fn alive_for(&self, tool: &ToolConfig) -> bool {
        !self.client.is_closed() && self.spec == *tool
    }
}

/// A server just started: its connection, and the tools it offers (and those left out, with why).
struct Launched {
    client: connect::Client,
    stderr: connect::Stderr,
    route: elicit::Route,
    tools: Vec<McpTool>,
    skipped: Vec<String>,
}

#[derive(Default)]
struct SessionServers {
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    last_used: Mutex<Option<Instant>>,
}

/// Every session's MCP servers.
pub struct McpHub {
    http: reqwest::Client,
    sessions: Mutex<HashMap<SessionId, Arc<SessionServers>>>,
}

impl McpHub {
    pub fn new(http: reqwest::Client) -> McpHub {
        McpHub { http, sessions: Mutex::default() }
    }

    fn servers(&self, session: &SessionId) -> Arc<SessionServers> {
        let servers = self.sessions.lock().unwrap().entry(session.clone()).or_default().clone();
        *servers.last_used.lock().unwrap() = Some(Instant::now());
        servers
    }

    /// Makes sure the session's servers run (starting those that do not) and lists their tools. `announce` is
    /// told which servers are about to start (`{name: {status: starting}}`) before any does.
    pub async fn start(
        &self,
        session: &SessionId,
        config: &SessionConfig,
        place: Result<&Confinement, &String>,
        announce: impl AsyncFnOnce(BTreeMap<String, Value>),
    ) -> Startup {
        let declared: Vec<(&String, &ToolConfig)> =
            config.tools.iter().filter(|(_, t)| t.kind == ToolKind::Mcp).collect();
        let mut startup = Startup::default();
        if declared.is_empty() {
            return startup;
        }
        let servers = self.servers(session);
        let mut running = servers.running.lock().await;
        let stale: Vec<&String> = declared
            .iter()
            .filter(|(name, tool)| !running.get(*name).is_some_and(|r| r.alive_for(tool)))
            .map(|(n, _)| *n)
            .collect();
        if !stale.is_empty() {
            announce(stale.iter().map(|name| ((*name).clone(), json!({"status": "starting"}))).collect()).await;
        }
        for (name, tool) in declared {
            if stale.contains(&name) {
                if let Some(old) = running.remove(name) {
                    let _ = old.client.cancel().await;
                }
                match tokio::time::timeout(START_TIMEOUT, self.launch(name, tool, place)).await {
                    Ok(Ok(Launched { client, stderr, route, tools, skipped })) => {
                        tracing::info!(%session, mcp_server = %name, tools = tools.len(), "MCP server ready");
                        let mut ready = json!({"status": "ready"});
                        if !skipped.is_empty() {
                            ready["skipped_tools"] = json!(skipped);
                        }
                        startup.report.insert(name.clone(), ready);
                        running.insert(name.clone(), Running { client, stderr, route, tools, spec: tool.clone() });
                    }
                    failure => {
                        let why = match failure {
                            Ok(Err(why)) => why,
                            _ => format!("did not start within {}s", START_TIMEOUT.as_secs()),
                        };
                        tracing::warn!(%session, mcp_server = %name, error = %why, "MCP server failed to start");
                        startup.report.insert(name.clone(), json!({"status": "failed", "error": why}));
                        startup.failed.insert(name.clone(), why);
                        continue;
                    }
                }
            }
            if let Some(r) = running.get(name) {
                startup.tools.extend(r.tools.iter().cloned());
            }
        }
        startup
    }

    async fn launch(
        &self,
        name: &str,
        tool: &ToolConfig,
        place: Result<&Confinement, &String>,
    ) -> Result<Launched, String> {
        let route = elicit::Route::default();
        let (client, stderr) = connect::connect(name, tool, place, &self.http, route.clone()).await?;
        let listed = match client.list_all_tools().await {
            Ok(listed) => listed,
            Err(e) => {
                let _ = client.cancel().await;
                return Err(format!("listing its tools failed: {e}"));
            }
        };
        let allowed: Option<Vec<&str>> = match (&tool.tools, &tool.tool_name) {
            (Some(ToolTools::Names(names)), _) => Some(names.iter().map(String::as_str).collect()),
            (_, Some(one)) => Some(vec![one.as_str()]),
            _ => None,
        };
        let (mut tools, mut skipped) = (Vec::new(), Vec::new());
        for t in listed {
            if allowed.as_ref().is_some_and(|a| !a.contains(&t.name.as_ref())) {
                continue;
            }
            let full = format!("{name}__{}", t.name);
            let mut parameters = Value::Object((*t.input_schema).clone());
            if parameters.get("type").is_none() {
                parameters["type"] = "object".into();
            }
            // What a model API would refuse — and with it the whole request, every other tool's too — is left out.
            let valid_name =
                full.len() <= MAX_TOOL_NAME && full.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let problem = match (valid_name, parameters["type"] == "object") {
                (false, _) => Some("its name is not one a model API accepts"),
                (_, false) => Some("its input schema is not an object"),
                _ => None,
            };
            if let Some(problem) = problem {
                tracing::warn!(mcp_server = %name, tool = %t.name, "skipping an MCP tool: {problem}");
                skipped.push(format!("{}: {problem}", t.name));
                continue;
            }
            tools.push(McpTool {
                name: full,
                server: name.to_string(),
                tool: t.name.to_string(),
                description: t.description.as_deref().unwrap_or_default().to_string(),
                parameters,
            });
        }
        Ok(Launched { client, stderr, route, tools, skipped })
    }

    /// Calls a tool. Err is an error message for the model; a server that died is started again by the next turn.
    /// A question the server asks meanwhile is put to `ask` (the time limit stops while a human answers).
    pub async fn call<Asking: Future<Output = Answer>>(
        &self,
        session: &SessionId,
        tool: &McpTool,
        arguments: &str,
        timeout: Option<Duration>,
        ask: impl Fn(Question) -> Asking,
    ) -> Result<String, String> {
        let args: Value = serde_json::from_str(arguments).map_err(|e| format!("arguments are not valid JSON: {e}"))?;
        let Value::Object(args) = args else { return Err("arguments must be a JSON object".into()) };
        let servers = self.servers(session);
        let (peer, stderr, route) = {
            let running = servers.running.lock().await;
            let Some(r) = running.get(&tool.server) else {
                return Err(format!("the MCP server {} is not running", tool.server));
            };
            (r.client.peer().clone(), r.stderr.clone(), r.route.clone())
        };
        let limit = timeout.unwrap_or(CALL_TIMEOUT);
        let params = CallToolRequestParams::new(tool.tool.clone()).with_arguments(args);
        let (to_ask, mut asked) = mpsc::unbounded_channel();
        let _route = route.open(to_ask);
        let call = peer.call_tool(params);
        tokio::pin!(call);
        let mut deadline = Instant::now() + limit;
        let answered = loop {
            tokio::select! {
                answered = &mut call => break Some(answered),
                Some(elicit::Asked { question, reply }) = asked.recv() => {
                    let since = Instant::now();
                    let _ = reply.send(ask(question).await);
                    deadline += since.elapsed();
                }
                _ = tokio::time::sleep_until(deadline.into()) => break None,
            }
        };
        let result = match answered {
            None => return Err(format!("the MCP tool {} did not answer within {}s", tool.name, limit.as_secs())),
            Some(Err(e)) => {
                if matches!(e, ServiceError::TransportClosed | ServiceError::TransportSend(_)) {
                    // The server is gone: the next turn starts it again.
                    if let Some(dead) = servers.running.lock().await.remove(&tool.server) {
                        let _ = dead.client.cancel().await;
                    }
                    tracing::warn!(%session, mcp_server = %tool.server, "an MCP server died during a call");
                }
                let said = stderr.tail();
                let said = if said.is_empty() { String::new() } else { format!("; its last output:\n{said}") };
                return Err(format!("the MCP server {} failed the call: {e}{said}", tool.server));
            }
            Some(Ok(result)) => result,
        };
        let mut parts = Vec::new();
        for block in &result.content {
            parts.push(match block {
                ContentBlock::Text(t) => t.text.clone(),
                ContentBlock::Image(_) => "[an image]".to_string(),
                ContentBlock::Audio(_) => "[audio]".to_string(),
                other => serde_json::to_string(other).unwrap_or_default(),
            });
        }
        if parts.is_empty()
            && let Some(structured) = &result.structured_content
        {
            parts.push(structured.to_string());
        }
        let text = parts.join("\n");
        if result.is_error == Some(true) { Err(text) } else { Ok(text) }
    }

    /// Stops a session's servers (it was deleted).
    pub async fn stop(&self, session: &SessionId) {
        let servers = self.sessions.lock().unwrap().remove(session);
        if let Some(servers) = servers {
            for (_, r) in servers.running.lock().await.drain() {
                let _ = r.client.cancel().await;
            }
        }
    }

    /// Stops the servers of sessions that have not used them for `idle`.
    pub async fn stop_idle(&self, idle: Duration) {
        let idle_sessions: Vec<SessionId> = self
            .sessions
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| s.last_used.lock().unwrap().is_none_or(|t| t.elapsed() > idle))
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle_sessions {
            tracing::info!(session = %id, "stopping the MCP servers of an idle session");
            self.stop(&id).await;
        }
    }
}
