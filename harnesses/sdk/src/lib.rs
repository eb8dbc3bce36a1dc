//! Write [omnigent](https://github.com/omnigent) harnesses — the LLM loop of an agent — in Rust.
//!
//! A harness is a WebAssembly component of the world `omnigent:harness@0.1.0`. The host calls its `run_turn` once
//! per turn; everything the turn does goes through the host: the model ([`complete`]), tools ([`run_tools`]), the
//! conversation ([`session::history`]), steering messages, files, custom events ([`emit`]) and logs. The host
//! streams text as it arrives, records every message and tool result, gates tool calls with the session's
//! policies and journals model and tool calls, so a turn cut by a crash resumes without repeating them.
//!
//! [`Turn`] holds the usual state of a loop (messages, tools, usage, steps) so a harness reads like its algorithm:
//!
//! ```rust
//! use omnigent_harness::*;
//!
//! struct Mine;
//!
//! impl Guest for Mine {
//!     fn run_turn(input: TurnInput) -> Result<TurnOutput, Error> {
//!         let mut turn = Turn::start();
//!         loop {
//!             turn.check(&input)?;
//!             let reply = turn.complete()?;
//!             if reply.tool_calls.is_empty() {
//!                 return Ok(turn.finish(reply.text));
//!             }
//!             turn.run_tools(&reply.tool_calls);
//!         }
//!     }
//! }
//!
//! export_harness!(Mine);
//! ```
//!
//! Build it with `omnigent plugin build`, try it over a scripted model with `omnigent plugin test FILE.wasm
//! --script model.jsonl`, and name the `.wasm` in a session YAML (`executor.harness: ./dist/mine.wasm`).
//!
//! # The sandbox
//!
//! A turn runs in a fresh instance under a memory cap (256 MiB) and a wall-clock deadline (30 minutes, time spent
//! waiting for a human excluded), with no files, environment, clock or network of its own. A panic or a trap fails
//! the turn with a message that names the cause; the session and the server carry on.

#[allow(missing_docs)]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "harness",
        pub_export_macro: true,
        export_macro_name: "export_harness",
        default_bindings_module: "omnigent_harness::bindings",
    });
}

pub use bindings::omnigent::harness::types::{Error, Message, Role, ToolCall, ToolSpec, Usage};
pub use bindings::omnigent::harness::{llm, session, tools};
pub use bindings::{Guest, TurnInput, TurnOutput, export_harness};
pub use llm::{Completion, Request};
pub use serde_json::{self, Value, json};
pub use session::LogLevel;
pub use tools::ToolResult;

/// The WIT package this crate binds; a host serving `omnigent:harness` 0.1.x loads what it builds.
pub const WIT_PACKAGE: &str = "omnigent:harness@0.1.0";

impl Message {
    /// A user message.
    pub fn user(text: impl Into<String>) -> Message {
        Message { role: Role::User, content: text.into(), tool_calls: vec![], tool_call_id: None }
    }

    /// A system message (the host already puts the session's instructions first).
    pub fn system(text: impl Into<String>) -> Message {
        Message { role: Role::System, content: text.into(), tool_calls: vec![], tool_call_id: None }
    }

    /// The assistant's side of a model call: its text and the tool calls it asked for.
    pub fn assistant(completion: &Completion) -> Message {
        Message {
            role: Role::Assistant,
            content: completion.text.clone(),
            tool_calls: completion.tool_calls.clone(),
            tool_call_id: None,
        }
    }

    /// The result of the tool call `call_id`.
    pub fn tool(call_id: impl Into<String>, output: impl Into<String>) -> Message {
        Message { role: Role::Tool, content: output.into(), tool_calls: vec![], tool_call_id: Some(call_id.into()) }
    }
}

impl Error {
    /// An error with a machine-readable `code` (`llm_error`, `tool_error`, `invalid_request`, or your own).
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Error {
        Error { code: code.into(), message: message.into() }
    }

    /// The user interrupted the turn.
    pub fn cancelled() -> Error {
        Error::new("cancelled", "the turn was interrupted")
    }
}

impl Usage {
    /// No tokens.
    pub fn zero() -> Usage {
        Usage { input_tokens: 0, output_tokens: 0 }
    }

    /// Adds another call's tokens.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// One model call through the session's provider. The host streams its text to subscribers and records the
/// assistant message; rate limits and transient errors are retried by the host before you see an error.
pub fn complete(messages: &[Message], tools: &[ToolSpec]) -> Result<Completion, Error> {
    llm::complete(&Request { messages: messages.to_vec(), tools: tools.to_vec(), max_tokens: None })
}

/// Runs tool calls in order and returns their results as tool messages for the next model call. A call the
/// session's policies deny, or that fails, comes back as an error message the model can read.
pub fn run_tools(calls: &[ToolCall]) -> Vec<Message> {
    calls
        .iter()
        .map(|call| Message::tool(&call.id, tools::call(&call.id, &call.name, &call.arguments).output))
        .collect()
}

/// Publishes `harness.<name>` (or a reasoning event) on the session's stream; `data` must be a JSON object of at
/// most 64 KiB.
pub fn emit(event_type: &str, data: &Value) -> Result<(), Error> {
    session::emit(event_type, &data.to_string())
}

/// Writes to the server's log under this session.
pub fn log(level: LogLevel, message: impl AsRef<str>) {
    session::log(level, message.as_ref());
}

/// The state of a turn's loop: the conversation so far, the tools the model may call, and what the model calls
/// cost. Each method is one step of the usual loop; use the parts you need.
pub struct Turn {
    /// The conversation, oldest first: the history, then this turn's model replies and tool results.
    pub messages: Vec<Message>,
    /// The tools offered to the model.
    pub tools: Vec<ToolSpec>,
    /// Tokens used by this turn's model calls.
    pub usage: Usage,
    /// Model calls made.
    pub steps: u32,
}

impl Turn {
    /// Reads the session's history (ending with this turn's input) and its tools.
    pub fn start() -> Turn {
        Turn { messages: session::history(), tools: tools::available(), usage: Usage::zero(), steps: 0 }
    }

    /// Stops the loop when the user interrupted (`cancelled`) or the turn made its `max-steps` model calls
    /// (`max_steps`); otherwise adds steering messages that arrived meanwhile to the conversation.
    pub fn check(&mut self, input: &TurnInput) -> Result<(), Error> {
        if session::cancelled() {
            return Err(Error::cancelled());
        }
        if self.steps >= input.max_steps {
            return Err(Error::new(
                "max_steps",
                format!("stopped after {} model calls without a final answer (max-steps)", self.steps),
            ));
        }
        self.messages.extend(session::steering().into_iter().map(Message::user));
        Ok(())
    }

    /// Calls the model with the conversation and tools, and adds its reply to the conversation.
    pub fn complete(&mut self) -> Result<Completion, Error> {
        let completion = complete(&self.messages, &self.tools)?;
        self.steps += 1;
        self.usage.add(&completion.usage);
        self.messages.push(Message::assistant(&completion));
        Ok(completion)
    }

    /// Runs the tool calls and adds their results to the conversation.
    pub fn run_tools(&mut self, calls: &[ToolCall]) {
        let results = run_tools(calls);
        self.messages.extend(results);
    }

    /// The turn's output with `text` as the final answer.
    pub fn finish(self, text: String) -> TurnOutput {
        TurnOutput { text, usage: self.usage, steps: self.steps }
    }
}
