//! What travels through a runner's tunnel (a WebSocket the runner opens to the server): JSON text frames, one
//! message each. The server sends the host calls of the turns of sessions bound to the runner; the runner answers
//! each with what streams while it runs and one final frame.

use omnigent_runtime::harness::llm::Completion;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::llm::{ChatRequest, LlmError};

/// The path a runner opens its tunnel on (after `/v1/runners/{id}`).
pub const TUNNEL: &str = "tunnel";

/// A host call a runner makes for a session's turn, with the runner's keys and files.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Call {
    /// A model call through the provider the session's config names.
    Complete { config: Value, request: ChatRequest },
    /// A builtin tool, run in the session's working directory on the runner (confined as its config says).
    Tool { config: Value, name: String, arguments: String },
}

/// Server → runner.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToRunner {
    Call {
        id: u64,
        session: String,
        call: Box<Call>,
    },
    /// The turn no longer waits for this call (interrupted): stop it if it still runs.
    Cancel {
        id: u64,
    },
}

/// Runner → server.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromRunner {
    /// Answer text as the model streams it.
    Text { id: u64, text: String },
    /// A summary of the model's reasoning as it streams.
    Reasoning { id: u64, text: String },
    /// The provider failed an attempt and the call is tried again after `delay_ms`.
    Retry { id: u64, attempt: u32, delay_ms: u64, error: LlmError },
    /// The call's end.
    Done { id: u64, result: Outcome },
}

impl FromRunner {
    pub fn call_id(&self) -> u64 {
        match self {
            FromRunner::Text { id, .. }
            | FromRunner::Reasoning { id, .. }
            | FromRunner::Retry { id, .. }
            | FromRunner::Done { id, .. } => *id,
        }
    }
}

/// How a call ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed(Completion),
    ModelFailed(LlmError),
    ToolOutput(String),
    ToolFailed(String),
    /// The runner could not make the call at all (a config it cannot read, say).
    Refused(String),
}
