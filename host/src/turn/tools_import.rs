//! The harness's `tools` import: the tools a session offers, and a call of one. Every call is judged by the
//! policies first (`tool_call`); then each kind runs its own way — a sub-agent's child session, a client's
//! answer, a builtin on this machine (whose result is judged again, `tool_result`). Each kind has its own replay
//! rule after a restart, next to the code that runs it.

use omnigent_runtime::harness::{ToolSpec, tools::ToolResult};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::host::Host;
use super::journal::{Entry, Kind};
use crate::config::{ToolConfig, ToolKind};
use crate::ids::prefixed;
use crate::policy::Phase;
use crate::protocol::{self, ErrorSource, NewEvent};
use crate::record::Item;
use crate::session::Waiter;
use crate::skills::{LOAD_SKILL, READ_SKILL_FILE};

/// What runs a tool call with effects outside the log.
enum Effect<'a> {
    /// A builtin, with its config and arguments (as the policies left them).
    Builtin(&'a ToolConfig, &'a str),
    /// An MCP server's tool, its arguments, and the server's time limit and output cap.
    Mcp(&'a crate::mcp::McpTool, &'a str, Option<std::time::Duration>, Option<usize>),
}

fn failed(output: String) -> ToolResult {
    ToolResult { output, is_error: true }
}

impl Host {
    pub(super) fn tools_available(&self) -> Vec<ToolSpec> {
        let mut specs: Vec<ToolSpec> = self
            .config
            .tools
            .iter()
            // Skills are offered through one `load_skill` tool, an MCP server through its own tools.
            .filter(|(_, t)| !matches!(t.kind, ToolKind::Skill | ToolKind::Mcp))
            .map(|(name, t)| {
                let (description, parameters) = match t.kind {
                    ToolKind::Builtin => {
                        let (d, p) = crate::tools::spec(name);
                        (t.description.clone().unwrap_or_else(|| d.to_string()), p)
                    }
                    ToolKind::Agent => (t.description.clone().unwrap_or_default(), crate::subagent::parameters()),
                    ToolKind::Skill | ToolKind::Mcp => unreachable!("filtered out above"),
                    ToolKind::Function => (
                        t.description.clone().unwrap_or_default(),
                        t.parameters.clone().unwrap_or(json!({"type": "object"})),
                    ),
                };
                ToolSpec { name: name.clone(), description, parameters: parameters.to_string() }
            })
            .collect();
        for t in &self.mcp_tools {
            let (name, description) = (t.name.clone(), t.description.clone());
            specs.push(ToolSpec { name, description, parameters: t.parameters.to_string() });
        }
        if !self.skills.is_empty() {
            let (description, parameters) = crate::skills::spec(&self.skills);
            specs.push(ToolSpec { name: LOAD_SKILL.into(), description, parameters: parameters.to_string() });
        }
        if let Some((description, parameters)) = crate::skills::file_spec(&self.skills) {
            specs.push(ToolSpec { name: READ_SKILL_FILE.into(), description, parameters: parameters.to_string() });
        }
        specs
    }

    pub(super) async fn tools_call(&self, call_id: String, name: String, arguments: String) -> ToolResult {
        if self.shared.cancel.is_cancelled() {
            return failed("the turn was interrupted".into());
        }
        let args_json: Value = serde_json::from_str(&arguments).unwrap_or_else(|_| Value::String(arguments.clone()));
        let call = json!({"name": name, "arguments": args_json});
        let verdict =
            self.gate.check(&self.journal, Phase::ToolCall, Some(&name), call.clone(), None, Some(&call_id)).await;
        if let Some(Entry::Tool { output, is_error }) = self.journal.take(Kind::Tool) {
            return ToolResult { output, is_error };
        }
        let arguments = match verdict {
            Err(reason) => return self.finish_tool(&call_id, failed(reason), Vec::new()).await,
            Ok(Some(rewritten)) => match rewritten.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => arguments,
            },
            Ok(None) => arguments,
        };
        if self.journal.take(Kind::Started).is_some() {
            return self.builtin_cut_by_restart(&call_id, &name).await;
        }
        if let Err(why) = self.journal.check_live("a tool call") {
            return failed(why);
        }
        if (name == LOAD_SKILL || name == READ_SKILL_FILE) && !self.skills.is_empty() {
            let read = match name.as_str() {
                LOAD_SKILL => crate::skills::call(&self.skills, &arguments),
                _ => crate::skills::read_file(&self.skills, &arguments, self.place.as_ref()).await,
            };
            let result = match read {
                Ok(output) => ToolResult { output, is_error: false },
                Err(message) => failed(message),
            };
            return self.finish_tool(&call_id, result, Vec::new()).await;
        }
        if let Some(mcp) = self.mcp_tools.iter().find(|t| t.name == name) {
            let server = self.tool_config(&mcp.server);
            let timeout = server.and_then(|t| t.timeout_s).map(std::time::Duration::from_secs);
            let effect = Effect::Mcp(mcp, &arguments, timeout, server.and_then(|t| t.max_output_bytes));
            return self.call_effectful(&call_id, &name, effect, &call).await;
        }
        if let Some((server, why)) = self.mcp_failed.iter().find(|(s, _)| name.starts_with(&format!("{s}__"))) {
            let result = failed(format!("the MCP server {server} could not start, so {name} is unavailable: {why}"));
            return self.finish_tool(&call_id, result, Vec::new()).await;
        }
        let Some(tool) = self.tool_config(&name).cloned() else {
            let known: Vec<&str> = self.config.tools.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".into() } else { known.join(", ") };
            let result = failed(format!("no tool named '{name}'; available tools: {known}"));
            return self.finish_tool(&call_id, result, Vec::new()).await;
        };
        match tool.kind {
            ToolKind::Agent => self.call_sub_agent(&call_id).await,
            _ if tool.runs_on_client() => self.call_client(&call_id, &name, &arguments).await,
            _ => self.call_effectful(&call_id, &name, Effect::Builtin(&tool, &arguments), &call).await,
        }
    }

    /// A sub-agent: its child session started when the model asked for it; this collects its answer.
    async fn call_sub_agent(&self, call_id: &str) -> ToolResult {
        let waiting = self.children.lock().unwrap().remove(call_id);
        let result = match waiting {
            Some(rx) => match rx.await {
                Ok(Ok(output)) => ToolResult { output, is_error: false },
                Ok(Err(message)) => failed(message),
                Err(_) => failed("the sub-agent's task was abandoned".into()),
            },
            None => {
                failed(format!("the sub-agent call {call_id} has no child session (it was not announced by the model)"))
            }
        };
        self.finish_tool(call_id, result, Vec::new()).await
    }

    /// A client tool: waits for the client's `function_call_output`. A resumed turn registers its wait first and
    /// then looks in the transcript, so an output posted in between is found one way or the other.
    async fn call_client(&self, call_id: &str, name: &str, arguments: &str) -> ToolResult {
        let waiting = self.client_calls.lock().unwrap().remove(call_id);
        let item_id = match &waiting {
            Some((item_id, _)) => item_id.clone(),
            // A resumed turn: the call's item is in the transcript.
            None => self.item_for_call(call_id, "function_call").await.map(|i| i.id).unwrap_or_else(|| prefixed("fc")),
        };
        let output = match waiting {
            Some((_, rx)) => self.client_answer(rx).await,
            None => {
                let (tx, rx) = oneshot::channel();
                let _ = self.sessions.emit(&self.id, Vec::new(), vec![Waiter::Output(call_id.to_string(), tx)]).await;
                match self.item_for_call(call_id, "function_call_output").await {
                    Some(item) => Ok(item.data["output"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| item.data["output"].to_string())),
                    None => self.client_answer(rx).await,
                }
            }
        };
        match output {
            Ok(output) => {
                // The client's function_call_output is already in the log; mark the call done.
                let fields = json!({"name": name, "arguments": arguments, "call_id": call_id,
                    "model": self.config.name, "llm_model": self.model});
                let events = vec![self.output_item(&item_id, "function_call", "completed", fields)];
                let entry = Entry::Tool { output: output.clone(), is_error: false };
                self.journal.record(events, Vec::new(), entry).await;
                ToolResult { output, is_error: false }
            }
            Err(message) => failed(message),
        }
    }

    async fn client_answer(&self, rx: oneshot::Receiver<String>) -> Result<String, String> {
        tokio::select! {
            o = rx => o.map_err(|_| "the client tool call was abandoned".to_string()),
            _ = self.shared.cancel.cancelled() => Err("the turn was interrupted".to_string()),
        }
    }

    /// A builtin or an MCP server's tool runs with effects outside the log: it is marked started first, so a
    /// restart mid-run does not run it twice. Its result is judged before the harness sees it.
    async fn call_effectful(&self, call_id: &str, name: &str, effect: Effect<'_>, call: &Value) -> ToolResult {
        self.journal.record(Vec::new(), Vec::new(), Entry::Started { call_id: call_id.to_string() }).await;
        let mut events = Vec::new();
        let ran = match effect {
            Effect::Builtin(tool, arguments) => match (self.models.runner(), &self.place) {
                (Some(runner), _) => runner.tool(name, arguments).await,
                (None, Ok(place)) => crate::tools::run(name, tool, arguments, place).await,
                (None, Err(why)) => Err(format!("the session's tools cannot run: {why}")),
            },
            Effect::Mcp(tool, arguments, timeout, max_output) => {
                let max = max_output.unwrap_or(crate::tools::DEFAULT_MAX_OUTPUT);
                let capped = |s: String| crate::tools::cap(s, max);
                // The server's questions to the user during the call are asked like a policy's.
                let ask = |question: crate::mcp::Question| async move {
                    self.gate.relay(&tool.server, &question, name, call_id).await
                };
                tokio::select! {
                    r = self.mcp.call(&self.id, tool, arguments, timeout, ask) => r.map(capped).map_err(capped),
                    _ = self.shared.cancel.cancelled() => Err("the turn was interrupted".to_string()),
                }
            }
        };
        let mut result = match ran {
            Ok(output) => ToolResult { output, is_error: false },
            Err(message) => {
                events.push(protocol::error(ErrorSource::Tool(name), "tool_error", &message));
                failed(message)
            }
        };
        let seen = json!({"result": result.output, "is_error": result.is_error});
        match self.gate.check(&self.journal, Phase::ToolResult, Some(name), seen, Some(call), None).await {
            Err(reason) => result = failed(format!("the tool's result was withheld: {reason}")),
            Ok(Some(rewritten)) => {
                result.output = match rewritten.get("result") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => result.output,
                }
            }
            Ok(None) => {}
        }
        self.finish_tool(call_id, result, events).await
    }

    /// A builtin that was running when the server stopped: its result if it was recorded, else an honest error.
    async fn builtin_cut_by_restart(&self, call_id: &str, name: &str) -> ToolResult {
        // A tool-result verdict may follow it, then (if the tool finished before the restart) its result.
        self.journal.take(Kind::Ask);
        self.journal.take(Kind::Gate);
        if let Some(Entry::Tool { output, is_error }) = self.journal.take(Kind::Tool) {
            return ToolResult { output, is_error };
        }
        let message = format!(
            "the server restarted while the tool '{name}' was running; it may or may not have finished. Check its \
             effects before running it again."
        );
        self.finish_tool(call_id, failed(message), Vec::new()).await
    }

    /// Records a tool's result: the transcript item, and the journal entry a replay returns.
    async fn finish_tool(&self, call_id: &str, result: ToolResult, mut events: Vec<NewEvent>) -> ToolResult {
        let fields = json!({"call_id": call_id, "output": result.output});
        events.push(self.output_item(&prefixed("fco"), "function_call_output", "completed", fields));
        let entry = Entry::Tool { output: result.output.clone(), is_error: result.is_error };
        self.journal.record(events, Vec::new(), entry).await;
        result
    }

    /// The newest transcript item of `item_type` for a tool call: for a resumed turn, the call's `function_call`
    /// item, or the client's `function_call_output` if it came while the server was down or before the replay got
    /// here.
    async fn item_for_call(&self, call_id: &str, item_type: &str) -> Option<Item> {
        let items = self.sessions.store().items_for_call(&self.id, call_id).await.ok()?;
        items.into_iter().find(|i| i.item_type == item_type)
    }
}
