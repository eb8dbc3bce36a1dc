//! Running a turn: the host side of the harness world. The harness (a WASM component) drives the loop; every
//! model call, tool call and result it makes through its imports becomes events in the session's log, written
//! through the session's actor (the only writer).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnigent_runtime::harness::{
    Error as HarnessError, LogLevel, Message, Role, ToolCall, ToolSpec, TurnInput, Usage, llm, tools as wit_tools,
};
use omnigent_runtime::{Runtime, TurnFailure, TurnHost, TurnLimits};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::{SessionConfig, ToolConfig};
use crate::ids::{SessionId, prefixed};
use crate::llm::{ChatRequest, LlmError, Provider};
use crate::model::{Item, now_us, secs};
use crate::session::Sessions;
use crate::store::Page;

/// Largest `.wasm` harness file accepted.
const MAX_COMPONENT_BYTES: u64 = 64 << 20;
/// Text deltas are coalesced into one event per this period.
const DELTA_FLUSH: Duration = Duration::from_millis(25);
const DEFAULT_MAX_STEPS: u32 = 25;
/// Event types a harness may emit itself (besides `harness.<name>`).
const HARNESS_EVENTS: [&str; 3] = ["response.reasoning.started", "response.reasoning_text.delta", "response.reasoning_summary_text.delta"];
const MAX_EMIT_BYTES: usize = 64 * 1024;

/// What every turn needs from the server.
#[derive(Clone)]
pub struct TurnEnv {
    pub runtime: Arc<Runtime>,
    pub http: reqwest::Client,
    /// Bounds concurrently running harness instances below the instance pool's size.
    pub slots: Arc<tokio::sync::Semaphore>,
}

impl TurnEnv {
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<TurnEnv> {
        Ok(TurnEnv {
            runtime: Runtime::new(cache_dir)?,
            http: crate::http_client().connect_timeout(Duration::from_secs(30)).build()?,
            slots: Arc::new(tokio::sync::Semaphore::new(omnigent_runtime::POOL_INSTANCES as usize / 2)),
        })
    }
}

/// How a turn ended, as the actor records it.
pub enum TurnOutcome {
    Completed { usage: Usage, model: String },
    Interrupted,
    Failed { code: String, message: String },
}

/// State the actor shares with a running turn.
#[derive(Clone, Default)]
pub struct TurnShared {
    pub cancel: CancellationToken,
    /// Messages that arrived while the turn ran and the harness has not taken yet.
    pub steering: Arc<Mutex<VecDeque<String>>>,
}

/// Runs a turn to its end and reports the outcome to the session's actor.
pub async fn run(sessions: Sessions, id: SessionId, response_id: String, config: SessionConfig, shared: TurnShared) {
    let outcome = run_inner(&sessions, &id, &response_id, config, &shared).await;
    let outcome = if shared.cancel.is_cancelled() && !matches!(outcome, TurnOutcome::Completed { .. }) {
        TurnOutcome::Interrupted
    } else {
        outcome
    };
    if let Err(e) = sessions.end_turn(&id, &response_id, outcome).await {
        tracing::warn!(session = %id, error = %e, "could not record the end of a turn");
    }
}

async fn run_inner(
    sessions: &Sessions,
    id: &SessionId,
    response_id: &str,
    config: SessionConfig,
    shared: &TurnShared,
) -> TurnOutcome {
    let env = sessions.turn_env().clone();
    let failed = |code: &str, message: String| TurnOutcome::Failed { code: code.into(), message };
    let component = match load_harness(&env, &config).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let provider = match Provider::from_config(&config, env.http.clone()) {
        Ok(p) => p,
        Err(e) => return failed(e.code(), e.to_string()),
    };
    let Ok(_slot) = env.slots.clone().acquire_owned().await else {
        return failed("shutting_down", "the server is shutting down".into());
    };
    let limits = TurnLimits {
        memory_bytes: config.executor.memory_mb.map(|mb| (mb as usize) << 20).unwrap_or(TurnLimits::default().memory_bytes),
        deadline: config.executor.turn_timeout_s.map(Duration::from_secs).unwrap_or(TurnLimits::default().deadline),
    };
    let model = config.executor.model.clone().unwrap_or_else(|| "scripted".into());
    // Without os_env.cwd, tools run where the server runs (a background server inherits its starter's directory).
    let cwd = config
        .os_env
        .as_ref()
        .and_then(|o| o.cwd.clone())
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(std::env::temp_dir);
    let max_steps = config.executor.max_steps.unwrap_or(DEFAULT_MAX_STEPS);
    let host = Arc::new(Host {
        sessions: sessions.clone(),
        id: id.clone(),
        response_id: response_id.to_string(),
        config,
        provider,
        model: model.clone(),
        cwd,
        shared: shared.clone(),
        client_calls: Mutex::default(),
        children: Mutex::default(),
    });
    let run = component.run_turn(host, TurnInput { max_steps }, limits);
    let result = tokio::select! {
        r = run => r,
        _ = shared.cancel.cancelled() => return TurnOutcome::Interrupted,
    };
    match result {
        // The answer's text is already in the log (the harness's model calls recorded it).
        Ok(out) => TurnOutcome::Completed { usage: out.usage, model },
        Err(TurnFailure::Harness(e)) if e.code == "cancelled" => TurnOutcome::Interrupted,
        Err(e) => failed(e.code(), e.to_string()),
    }
}

async fn load_harness(env: &TurnEnv, config: &SessionConfig) -> Result<Arc<omnigent_runtime::HarnessComponent>, TurnOutcome> {
    let failed = |code: &str, message: String| TurnOutcome::Failed { code: code.into(), message };
    let harness = config.executor.harness.clone();
    let bytes: Vec<u8> = match harness.as_str() {
        "agent" => {
            if let Some(loaded) = env.runtime.agent() {
                return Ok(loaded);
            }
            let runtime = env.runtime.clone();
            return tokio::task::spawn_blocking(move || runtime.load_agent())
                .await
                .map_err(|e| failed("harness_invalid", format!("loading the harness panicked: {e}")))?
                .map_err(|e| failed("harness_invalid", format!("the builtin agent harness: {e}")));
        }
        path if path.ends_with(".wasm") => {
            let meta = tokio::fs::metadata(path).await.map_err(|e| failed("harness_not_found", format!("cannot read harness {path}: {e}")))?;
            if meta.len() > MAX_COMPONENT_BYTES {
                return Err(failed("harness_invalid", format!("harness {path} is larger than {MAX_COMPONENT_BYTES} bytes")));
            }
            tokio::fs::read(path).await.map_err(|e| failed("harness_not_found", format!("cannot read harness {path}: {e}")))?
        }
        other => return Err(failed("harness_not_found", format!("harness '{other}' is not available (builtin: agent, or a .wasm path)"))),
    };
    let runtime = env.runtime.clone();
    // Compiling is CPU work (100+ ms the first time): keep it off the async workers.
    tokio::task::spawn_blocking(move || runtime.load_harness(&bytes))
        .await
        .map_err(|e| failed("harness_invalid", format!("loading the harness panicked: {e}")))?
        .map_err(|e| failed("harness_invalid", format!("harness {harness}: {e}")))
}

/// A retry announced by the provider, with the text its failed attempt had streamed.
struct Retry {
    stale_text: String,
    event: Value,
}

/// The host side of one turn.
struct Host {
    sessions: Sessions,
    id: SessionId,
    response_id: String,
    config: SessionConfig,
    provider: Provider,
    model: String,
    cwd: PathBuf,
    shared: TurnShared,
    /// Client-side tool calls waiting for the client's `function_call_output`.
    client_calls: Mutex<HashMap<String, (String, oneshot::Receiver<String>)>>,
    /// Sub-agent calls: their child sessions start as soon as the model asks (so several run in parallel) and
    /// `call_tool` collects each result once.
    children: Mutex<HashMap<String, oneshot::Receiver<Result<String, String>>>>,
}

impl Host {
    async fn emit(&self, events: Vec<(&'static str, Value)>) {
        let events = events.into_iter().map(|(t, v)| (t.to_string(), v)).collect();
        if let Err(e) = self.sessions.emit(&self.id, events, Vec::new()).await {
            tracing::warn!(session = %self.id, error = %e, "could not record turn events");
        }
    }

    fn tool_config(&self, name: &str) -> Option<&ToolConfig> {
        self.config.tools.get(name)
    }

    fn item(&self, id: &str, item_type: &str, status: &str, data: Value) -> Value {
        let mut item = json!({"id": id, "type": item_type, "status": status, "response_id": self.response_id,
            "created_at": secs(now_us()), "object": "conversation.item"});
        if let Value::Object(fields) = data {
            for (k, v) in fields {
                item[k] = v;
            }
        }
        item
    }
}

#[async_trait::async_trait]
impl TurnHost for Host {
    async fn complete(&self, request: llm::Request) -> Result<llm::Completion, HarnessError> {
        let req = ChatRequest {
            model: self.model.clone(),
            system: self.config.system_prompt().map(str::to_string),
            messages: request.messages,
            tools: request.tools,
            max_tokens: request.max_tokens,
        };
        let mut message_id = prefixed("msg");
        let pending = Arc::new(Mutex::new(String::new()));
        let retries: Arc<Mutex<Vec<Retry>>> = Arc::default();
        let (p, r) = (pending.clone(), retries.clone());
        let mut on_delta = move |d: &str| p.lock().unwrap().push_str(d);
        let p = pending.clone();
        let mut on_retry = move |attempt: u32, delay: Duration, e: &LlmError| {
            // Text the failed attempt streamed stays with its own message id; the retry streams under a new one.
            let stale_text = std::mem::take(&mut *p.lock().unwrap());
            let event = json!({"source": "llm", "attempt": attempt, "max_attempts": crate::llm::MAX_ATTEMPTS,
                "delay_seconds": delay.as_secs_f64(), "error": {"code": e.code(), "message": e.to_string()}});
            r.lock().unwrap().push(Retry { stale_text, event });
        };
        let call = self.provider.complete(&req, &mut on_delta, &mut on_retry);
        tokio::pin!(call);
        let mut tick = tokio::time::interval(DELTA_FLUSH);
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tick.tick() => self.flush(&pending, &retries, &mut message_id).await,
            }
        };
        self.flush(&pending, &retries, &mut message_id).await;
        let completion = match result {
            Ok(c) => c,
            Err(e) => {
                self.emit(vec![("response.error", json!({"source": "llm", "error": {"code": e.code(), "message": e.to_string()}}))]).await;
                return Err(HarnessError { code: e.code().into(), message: e.to_string() });
            }
        };
        let mut events = Vec::new();
        if !completion.text.is_empty() {
            let content = json!([{"type": "output_text", "text": completion.text, "annotations": []}]);
            let item = self.item(&message_id, "message", "completed", json!({"role": "assistant", "content": content, "model": self.model}));
            events.push(("response.output_item.done".to_string(), json!({"item": item})));
        }
        let mut waiters = Vec::new();
        for call in &completion.tool_calls {
            let client = self.tool_config(&call.name).is_some_and(|t| t.runtime.as_deref() == Some("client"));
            let item_id = prefixed("fc");
            let status = if client { "action_required" } else { "completed" };
            let item = self.item(&item_id, "function_call", status, json!({"name": call.name, "arguments": call.arguments, "call_id": call.id, "model": self.model}));
            events.push(("response.output_item.done".to_string(), json!({"item": item})));
            if client {
                let (tx, rx) = oneshot::channel();
                waiters.push((call.id.clone(), tx));
                self.client_calls.lock().unwrap().insert(call.id.clone(), (item_id, rx));
            }
        }
        if let Err(e) = self.sessions.emit(&self.id, events, waiters).await {
            tracing::warn!(session = %self.id, error = %e, "could not record a model response");
        }
        // Sub-agent calls start now, after their function_call items are in the log, so several run in parallel.
        for call in &completion.tool_calls {
            if let Some(tool) = self.tool_config(&call.name).filter(|t| t.kind == "agent") {
                let (tx, rx) = oneshot::channel();
                self.children.lock().unwrap().insert(call.id.clone(), rx);
                let child = crate::subagent::Child {
                    sessions: self.sessions.clone(),
                    parent: self.id.clone(),
                    config: self.config.sub_agent(&call.name, tool),
                    title: format!("{}:{}", self.config.name, call.name),
                    arguments: call.arguments.clone(),
                    cancel: self.shared.cancel.clone(),
                };
                tokio::spawn(async move {
                    let _ = tx.send(child.run().await);
                });
            }
        }
        Ok(completion)
    }

    async fn tools(&self) -> Vec<ToolSpec> {
        self.config
            .tools
            .iter()
            .map(|(name, t)| {
                let (description, parameters) = if t.kind == "builtin" {
                    let (d, p) = crate::tools::spec(name);
                    (t.description.clone().unwrap_or_else(|| d.to_string()), p)
                } else if t.kind == "agent" {
                    (t.description.clone().unwrap_or_default(), crate::subagent::parameters())
                } else {
                    (t.description.clone().unwrap_or_default(), t.parameters.clone().unwrap_or(json!({"type": "object"})))
                };
                ToolSpec { name: name.clone(), description, parameters: parameters.to_string() }
            })
            .collect()
    }

    async fn call_tool(&self, call_id: String, name: String, arguments: String) -> wit_tools::ToolResult {
        let fail = |output: String| wit_tools::ToolResult { output, is_error: true };
        if self.shared.cancel.is_cancelled() {
            return fail("the turn was interrupted".into());
        }
        let Some(tool) = self.tool_config(&name).cloned() else {
            let known: Vec<&str> = self.config.tools.keys().map(String::as_str).collect();
            let result = fail(format!("no tool named '{name}'; available tools: {}", if known.is_empty() { "none".into() } else { known.join(", ") }));
            self.record_output(&call_id, &result.output).await;
            return result;
        };
        if tool.kind == "agent" {
            let waiting = self.children.lock().unwrap().remove(&call_id);
            let result = match waiting {
                Some(rx) => match rx.await {
                    Ok(Ok(output)) => wit_tools::ToolResult { output, is_error: false },
                    Ok(Err(message)) => fail(message),
                    Err(_) => fail("the sub-agent's task was abandoned".into()),
                },
                None => fail(format!("sub-agent call {call_id} was not announced by the model")),
            };
            self.record_output(&call_id, &result.output).await;
            return result;
        }
        if tool.runtime.as_deref() == Some("client") {
            let waiting = self.client_calls.lock().unwrap().remove(&call_id);
            let Some((item_id, rx)) = waiting else {
                return fail(format!("client tool call {call_id} was not announced"));
            };
            let output = tokio::select! {
                o = rx => o.map_err(|_| "the client tool call was abandoned".to_string()),
                _ = self.shared.cancel.cancelled() => Err("the turn was interrupted".to_string()),
            };
            return match output {
                Ok(output) => {
                    // The client's function_call_output is already in the log; mark the call done.
                    let item = self.item(&item_id, "function_call", "completed", json!({"name": name, "arguments": arguments, "call_id": call_id, "model": self.model}));
                    self.emit(vec![("response.output_item.done", json!({"item": item}))]).await;
                    wit_tools::ToolResult { output, is_error: false }
                }
                Err(message) => fail(message),
            };
        }
        let result = match crate::tools::run(&name, &tool, &arguments, &self.cwd).await {
            Ok(output) => wit_tools::ToolResult { output, is_error: false },
            Err(message) => {
                self.emit(vec![("response.error", json!({"source": "tool", "tool_name": name, "error": {"code": "tool_error", "message": message}}))]).await;
                fail(message)
            }
        };
        self.record_output(&call_id, &result.output).await;
        result
    }

    async fn history(&self) -> Vec<Message> {
        history(&self.sessions, &self.id).await
    }

    async fn steering(&self) -> Vec<String> {
        self.shared.steering.lock().unwrap().drain(..).collect()
    }

    fn cancelled(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    async fn emit(&self, event_type: String, data: String) -> Result<(), HarnessError> {
        let invalid = |message: String| HarnessError { code: "invalid_request".into(), message };
        let allowed = HARNESS_EVENTS.contains(&event_type.as_str())
            || event_type.strip_prefix("harness.").is_some_and(|n| !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
        if !allowed {
            return Err(invalid(format!("a harness may not emit '{}'; allowed: {} or harness.<name>", crate::ids::truncate(&event_type, 80), HARNESS_EVENTS.join(", "))));
        }
        if data.len() > MAX_EMIT_BYTES {
            return Err(invalid(format!("event data is {} bytes; the limit is {MAX_EMIT_BYTES}", data.len())));
        }
        let payload: Value = serde_json::from_str(&data).map_err(|e| invalid(format!("event data is not JSON: {e}")))?;
        if !payload.is_object() {
            return Err(invalid("event data must be a JSON object".into()));
        }
        self.sessions
            .emit(&self.id, vec![(event_type, payload)], Vec::new())
            .await
            .map_err(|e| HarnessError { code: "emit_failed".into(), message: e.to_string() })
    }

    async fn write_file(&self, name: String, content: Vec<u8>) -> Result<String, HarnessError> {
        crate::files::add(&self.sessions, &self.id, &name, None, &content, crate::files::Source::Harness)
            .await
            .map(|meta| meta.id)
            .map_err(|e| HarnessError { code: "file_error".into(), message: e.to_string() })
    }

    fn log(&self, level: LogLevel, message: String) {
        let id = &self.id;
        match level {
            LogLevel::Debug => tracing::debug!(session = %id, "harness: {message}"),
            LogLevel::Info => tracing::info!(session = %id, "harness: {message}"),
            LogLevel::Warn => tracing::warn!(session = %id, "harness: {message}"),
            LogLevel::Error => tracing::error!(session = %id, "harness: {message}"),
        }
    }
}

impl Host {
    /// Publishes buffered text deltas and retries. Each retry closes the message id its attempt streamed under.
    async fn flush(&self, pending: &Mutex<String>, retries: &Mutex<Vec<Retry>>, message_id: &mut String) {
        let mut events = Vec::new();
        for retry in retries.lock().unwrap().drain(..) {
            if !retry.stale_text.is_empty() {
                events.push(("response.output_text.delta", json!({"delta": retry.stale_text, "message_id": message_id})));
            }
            events.push(("response.retry", retry.event));
            *message_id = prefixed("msg");
        }
        let text = std::mem::take(&mut *pending.lock().unwrap());
        if !text.is_empty() {
            events.push(("response.output_text.delta", json!({"delta": text, "message_id": message_id})));
        }
        if !events.is_empty() {
            self.emit(events).await;
        }
    }

    async fn record_output(&self, call_id: &str, output: &str) {
        let item = self.item(&prefixed("fco"), "function_call_output", "completed", json!({"call_id": call_id, "output": output}));
        self.emit(vec![("response.output_item.done", json!({"item": item}))]).await;
    }
}

/// The conversation so far as harness messages, from the session's items.
pub async fn history(sessions: &Sessions, id: &SessionId) -> Vec<Message> {
    let mut items: Vec<Item> = Vec::new();
    let mut page = Page { limit: 1000, after: None, before: None, descending: false };
    loop {
        match sessions.store().list_items(id, &page).await {
            Ok((batch, more)) => {
                page.after = batch.last().map(|i| i.id.clone());
                items.extend(batch);
                if !more {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(session = %id, error = %e, "reading history failed");
                break;
            }
        }
    }
    let mut messages: Vec<Message> = Vec::new();
    let text_of = |content: &Value| -> String {
        match content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        }
    };
    for item in items {
        let d = &item.data;
        match item.item_type.as_str() {
            "message" => {
                let role = if d["role"] == "assistant" { Role::Assistant } else { Role::User };
                messages.push(Message { role, content: text_of(&d["content"]), tool_calls: vec![], tool_call_id: None });
            }
            "function_call" => {
                let call = ToolCall {
                    id: d["call_id"].as_str().unwrap_or_default().into(),
                    name: d["name"].as_str().unwrap_or_default().into(),
                    arguments: d["arguments"].as_str().unwrap_or("{}").into(),
                };
                // Calls belong to the assistant message of the same model response.
                match messages.last_mut() {
                    Some(last) if last.role == Role::Assistant => last.tool_calls.push(call),
                    _ => messages.push(Message { role: Role::Assistant, content: String::new(), tool_calls: vec![call], tool_call_id: None }),
                }
            }
            "function_call_output" => messages.push(Message {
                role: Role::Tool,
                content: d["output"].as_str().map(str::to_string).unwrap_or_else(|| d["output"].to_string()),
                tool_calls: vec![],
                tool_call_id: d["call_id"].as_str().map(str::to_string),
            }),
            _ => {}
        }
    }
    messages
}
