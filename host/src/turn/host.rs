//! The host side of one WASM harness turn: what the harness's imports reach. Each WIT interface has its own file
//! (`llm_import`, `tools_import`, `session_import`); this one holds the turn's state and routes the runtime's
//! calls to them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnigent_runtime::TurnHost;
use omnigent_runtime::harness::{Error as HarnessError, LogLevel, Message, ToolSpec, llm, tools};
use tokio::sync::oneshot;

use super::gate::Gate;
use super::journal::Journal;
use crate::config::{SessionConfig, ToolConfig};
use crate::conversation::Conversation;
use crate::ids::SessionId;
use crate::llm::{ChatRequest, LlmError, Provider, Streamed};
use crate::remote::RunnerLink;
use crate::session::transcript::Transcript;
use crate::session::{Sessions, TurnShared};

/// Where a turn's model calls (and, with a runner, its builtin tools) go.
pub(super) enum Models {
    /// The provider the session's config names, with this server's keys.
    Here(Provider),
    /// The session's runner, with its keys and files.
    Runner(RunnerLink),
}

impl Models {
    pub async fn complete(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn FnMut(Streamed<'_>) + Send),
        on_retry: &mut (dyn FnMut(u32, Duration, &LlmError) + Send),
    ) -> Result<llm::Completion, LlmError> {
        match self {
            Models::Here(provider) => provider.complete(request, on_delta, on_retry).await,
            Models::Runner(runner) => runner.complete(request, on_delta, on_retry).await,
        }
    }

    /// The session's runner, when it has one.
    pub fn runner(&self) -> Option<&RunnerLink> {
        match self {
            Models::Runner(runner) => Some(runner),
            Models::Here(_) => None,
        }
    }
}

/// The state of one running harness turn.
pub(super) struct Host {
    pub sessions: Sessions,
    pub id: SessionId,
    pub response_id: String,
    pub config: SessionConfig,
    pub models: Models,
    pub model: String,
    /// Sent with each model call (the session's `reasoning_effort`).
    pub reasoning_effort: Option<String>,
    /// Where and how the session's builtin tools run, or why they cannot.
    pub place: Result<crate::sandbox::Confinement, String>,
    /// The session's skills, read at the turn's start (`load_skill`).
    pub skills: Vec<crate::skills::Skill>,
    /// The session's MCP servers, their tools for this turn, and the servers that failed to start (and why).
    pub mcp: Arc<crate::mcp::McpHub>,
    pub mcp_tools: Vec<crate::mcp::McpTool>,
    pub mcp_failed: std::collections::BTreeMap<String, String>,
    pub shared: TurnShared,
    pub journal: Journal,
    /// The session's policies: its own, its config's, the server's.
    pub gate: Gate,
    /// Client-side tool calls waiting for the client's `function_call_output`: call id → (item id, answer).
    pub client_calls: Mutex<HashMap<String, (String, oneshot::Receiver<String>)>>,
    /// Sub-agent calls: their child sessions start as soon as the model asks (so several run in parallel) and
    /// `call_tool` collects each result once.
    pub children: Mutex<HashMap<String, oneshot::Receiver<Result<String, String>>>>,
    /// The history read for the request's verdict, kept for the harness's `history` call (read once, not twice).
    pub history: Mutex<Option<Conversation>>,
    /// The session's transcript as its actor keeps it in memory.
    pub transcript: Transcript,
}

impl Host {
    pub fn tool_config(&self, name: &str) -> Option<&ToolConfig> {
        self.config.tools.get(name)
    }

    /// The model's instructions: the config's, then what the skills offer.
    pub fn system_prompt(&self) -> Option<String> {
        let own = self.config.system_prompt().map(str::to_string);
        if self.skills.is_empty() {
            return own;
        }
        let skills = crate::skills::instructions(&self.skills);
        Some(match own {
            Some(own) => format!("{own}\n\n{skills}"),
            None => skills,
        })
    }
}

/// A failed host call, as the harness sees it.
pub(super) fn harness_error(code: &str, message: String) -> HarnessError {
    HarnessError { code: code.into(), message }
}

#[async_trait::async_trait]
impl TurnHost for Host {
    async fn complete(&self, request: llm::Request) -> Result<llm::Completion, HarnessError> {
        self.llm_complete(request).await
    }

    async fn tools(&self) -> Vec<ToolSpec> {
        self.tools_available()
    }

    async fn call_tool(&self, call_id: String, name: String, arguments: String) -> tools::ToolResult {
        self.tools_call(call_id, name, arguments).await
    }

    async fn history(&self) -> Vec<Message> {
        self.session_history().await
    }

    async fn steering(&self) -> Vec<String> {
        self.session_steering().await
    }

    fn cancelled(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    async fn emit(&self, event_type: String, data: String) -> Result<(), HarnessError> {
        self.session_emit(event_type, data).await
    }

    async fn write_file(&self, name: String, content: Vec<u8>) -> Result<String, HarnessError> {
        self.session_write_file(name, content).await
    }

    fn log(&self, level: LogLevel, message: String) {
        self.session_log(level, message)
    }

    fn waited(&self) -> Duration {
        self.gate.waited()
    }
}
