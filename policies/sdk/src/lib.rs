//! Write [omnigent](https://github.com/omnigent) policies in Rust.
//!
//! A policy is a WebAssembly component of the world `omnigent:policy@0.1.0`: the host asks it about one action of
//! a session — a user request, a tool call or its result, a model call or its response — and it answers
//! [`allow`], [`deny`], [`ask`] a human, or [`abstain`]. This crate gives you the bindings, typed accessors for the
//! event, decision builders, parameter parsing and the session's policy state, so a policy is a few lines of plain
//! Rust:
//!
//! ```rust
//! use omnigent_policy::*;
//!
//! struct NoForcePush;
//!
//! impl Guest for NoForcePush {
//!     fn describe() -> Descriptor {
//!         describe("no_force_push", "Deny `git push --force` in shell commands.", json!({"type": "object"}))
//!     }
//!
//!     fn init(params: String) -> Result<(), String> {
//!         only_keys(init_params(&params)?, &[])
//!     }
//!
//!     fn evaluate(event: Event) -> Decision {
//!         match event.tool_call() {
//!             Some("shell") if event.arg_str("command").is_some_and(|c| c.contains("push --force")) => {
//!                 deny("force pushes are not allowed here")
//!             }
//!             _ => abstain(),
//!         }
//!     }
//! }
//!
//! export_policy!(NoForcePush);
//! ```
//!
//! Build it with `omnigent plugin build` (or `cargo build --release --target wasm32-wasip2`), check it with
//! `omnigent plugin check`, replay a recorded session through it with `omnigent plugin test`, and name the `.wasm`
//! in a session YAML (`component: ./dist/no_force_push.wasm`).
//!
//! The builtin policies are built for `wasm32-unknown-unknown` instead and then made components (what `wasm-tools
//! component new` does): they import no WASI, and a fresh instance costs ~9–11 µs instead of ~11–15 µs. The SDK
//! brings its own allocator on that target (a static arena first; see `arena.rs`), so a policy built that way must
//! not set a `#[global_allocator]`.
//!
//! # The sandbox
//!
//! Every evaluation runs in a **fresh instance**: the host calls `init(params)` and then `evaluate(event)`, under a
//! memory cap and a wall-clock deadline, with no files, clock, environment or network. Nothing you keep in memory
//! survives to the next event — state that must (counters, recent calls) goes through [`Decision::set`],
//! [`Decision::increment`], [`Decision::append`] and [`Decision::delete`] into the session's policy state, which
//! the next event shows in [`Event::state`]. A policy that panics, runs past its deadline or allocates past its cap
//! **denies** on the blocking phases (`request`, `tool-call`) and is ignored on the others.
//!
//! # Testing natively
//!
//! The policy world imports nothing, so a policy crate also builds for your own machine: `cargo test` runs unit
//! tests that build events with the [`testing`] module and call your `evaluate` directly.

#[allow(missing_docs)]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "export_policy",
        default_bindings_module: "omnigent_policy::bindings",
    });
}

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod arena;
pub mod testing;

use std::cell::Cell;
use std::sync::OnceLock;

pub use bindings::omnigent::policy::types::{Context, Elicitation, Phase, StateAction, StateUpdate, Usage, Verdict};
pub use bindings::{Decision, Descriptor, Event, Guest, export_policy};
pub use serde_json::{self, Map, Value, json};

/// The WIT package this crate binds; a host serving `omnigent:policy` 0.1.x loads what it builds.
pub const WIT_PACKAGE: &str = "omnigent:policy@0.1.0";

/// A [`Descriptor`] for `describe()`: the policy's name, a one-line description and the JSON Schema of its
/// parameters (`GET /v1/policy-registry` and `omnigent plugin check` show them).
pub fn describe(name: &str, description: &str, params_schema: Value) -> Descriptor {
    Descriptor { name: name.into(), description: description.into(), params_schema: params_schema.to_string() }
}

thread_local! {
    // Set by `init_params` once per instance (each evaluation is a fresh instance); per thread so native unit
    // tests, one thread each, do not see each other's parameters.
    static PARAMS: Cell<Option<&'static Map<String, Value>>> = const { Cell::new(None) };
}

/// Parses the parameters `init` received and keeps them for [`params`]. Returns them so `init` can validate:
/// `null` counts as no parameters; anything but an object is an error.
pub fn init_params(text: &str) -> Result<&'static Map<String, Value>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("parameters are not JSON: {e}"))?;
    let map = match value {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => return Err(format!("parameters must be an object, got {other}")),
    };
    // One small map per instance; the instance (and its memory) is dropped after the evaluation.
    let kept: &'static Map<String, Value> = Box::leak(Box::new(map));
    PARAMS.with(|p| p.set(Some(kept)));
    Ok(kept)
}

/// The parameters `init` received (empty before).
pub fn params() -> &'static Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    PARAMS.with(|p| p.get()).unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// A parameter that must be a list of strings (`default` when absent).
pub fn string_list(params: &Map<String, Value>, key: &str, default: &[&str]) -> Result<Vec<String>, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default.iter().map(|s| s.to_string()).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("{key} must be a list of strings")))
            .collect(),
        Some(_) => Err(format!("{key} must be a list of strings")),
    }
}

/// A parameter that must be a non-negative number (`default` when absent; a `None` default means required).
pub fn number(params: &Map<String, Value>, key: &str, default: Option<f64>) -> Result<f64, String> {
    match params.get(key) {
        None | Some(Value::Null) => default.ok_or_else(|| format!("{key} is required")),
        Some(v) => {
            v.as_f64().filter(|n| *n >= 0.0).ok_or_else(|| format!("{key} must be a non-negative number, got {v}"))
        }
    }
}

/// A parameter that must be a boolean (`default` when absent).
pub fn boolean(params: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("{key} must be true or false, got {v}")),
    }
}

/// Rejects parameters this policy does not know, so a typo is reported rather than ignored.
pub fn only_keys(params: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "unknown parameter '{k}'; known: {}",
            if known.is_empty() { "none".into() } else { known.join(", ") }
        )),
        None => Ok(()),
    }
}

impl Phase {
    /// The phase as session configs and logs spell it: `request`, `tool_call`, `tool_result`, `response`,
    /// `llm_request`, `llm_response`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::ToolCall => "tool_call",
            Phase::ToolResult => "tool_result",
            Phase::Response => "response",
            Phase::LlmRequest => "llm_request",
            Phase::LlmResponse => "llm_response",
        }
    }

    /// Whether a failed evaluation (panic, deadline, memory) on this phase denies (`request`, `tool-call`) rather
    /// than being ignored.
    pub fn is_blocking(self) -> bool {
        matches!(self, Phase::Request | Phase::ToolCall)
    }
}

impl Event {
    /// The tool, when this is a tool call (the phase most policies judge).
    pub fn tool_call(&self) -> Option<&str> {
        if self.phase == Phase::ToolCall { self.target.as_deref() } else { None }
    }

    /// The tool, when this is a tool result.
    pub fn tool_result(&self) -> Option<&str> {
        if self.phase == Phase::ToolResult { self.target.as_deref() } else { None }
    }

    /// The payload as JSON (`Null` when unparsable). Its shape depends on the phase: see [`Phase`].
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// The tool call's arguments (on `tool-call`, and on `tool-result` from the call): an empty map elsewhere.
    pub fn arguments(&self) -> Map<String, Value> {
        let call = match self.phase {
            Phase::ToolCall => self.json(),
            Phase::ToolResult => {
                self.request_data.as_deref().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default()
            }
            _ => Value::Null,
        };
        match call.get("arguments") {
            Some(Value::Object(m)) => m.clone(),
            // Some providers send arguments as a JSON string.
            Some(Value::String(s)) => match serde_json::from_str(s) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            },
            _ => Map::new(),
        }
    }

    /// One string argument of the tool call (`command` of a shell call, `path` of a file tool…).
    pub fn arg_str(&self, name: &str) -> Option<String> {
        self.arguments().get(name).and_then(Value::as_str).map(str::to_string)
    }

    /// The text this phase carries: the user's message on `request`, the tool's output on `tool-result`, the
    /// answer on `response`, the preview on `llm-response`; `None` on the others.
    pub fn text(&self) -> Option<String> {
        let key = match self.phase {
            Phase::Request => "user_content",
            Phase::ToolResult => "result",
            Phase::Response => "text",
            Phase::LlmResponse => "text_preview",
            Phase::ToolCall | Phase::LlmRequest => return None,
        };
        match self.json().get(key)? {
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// Whether a tool result is an error (false on other phases).
    pub fn is_error(&self) -> bool {
        self.phase == Phase::ToolResult && self.json().get("is_error").and_then(Value::as_bool).unwrap_or(false)
    }

    /// The session's policy state (shared by its policies).
    pub fn state(&self) -> Map<String, Value> {
        object(&self.context.state)
    }

    /// A number in the state (`0` when absent), e.g. a counter kept with [`Decision::increment`].
    pub fn counter(&self, key: &str) -> f64 {
        self.state().get(key).and_then(Value::as_f64).unwrap_or(0.0)
    }

    /// A list in the state (empty when absent), e.g. one kept with [`Decision::append`].
    pub fn list(&self, key: &str) -> Vec<Value> {
        self.state().get(key).and_then(Value::as_array).cloned().unwrap_or_default()
    }

    /// The session's labels.
    pub fn labels(&self) -> Map<String, Value> {
        object(&self.context.labels)
    }

    /// A state key private to this policy declaration: `<policy name>.<key>`.
    pub fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.context.policy_name)
    }
}

fn object(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn decision(verdict: Verdict) -> Decision {
    Decision { verdict, data: None, state_updates: Vec::new(), set_labels: None }
}

/// Let the action happen.
pub fn allow() -> Decision {
    decision(Verdict::Allow)
}

/// No opinion: the chain goes on as if this policy allowed.
pub fn abstain() -> Decision {
    decision(Verdict::Abstain)
}

/// Stop the action. The reason reaches the model (it can try something else) and the user.
pub fn deny(reason: impl Into<String>) -> Decision {
    decision(Verdict::Deny(reason.into()))
}

/// Pause the session until a human accepts (allow) or declines (deny). State changes on this decision apply only
/// when the human accepts.
pub fn ask(message: impl Into<String>) -> Decision {
    decision(Verdict::Ask(Elicitation { message: message.into() }))
}

impl Decision {
    /// Adds a state update.
    pub fn with(mut self, action: StateAction, key: String, value: Value) -> Decision {
        self.state_updates.push(StateUpdate { key, action, value: value.to_string() });
        self
    }

    /// `state[key] = value`.
    pub fn set(self, key: impl Into<String>, value: Value) -> Decision {
        self.with(StateAction::Set, key.into(), value)
    }

    /// `state[key] += by` (a missing key counts as 0).
    pub fn increment(self, key: impl Into<String>, by: f64) -> Decision {
        self.with(StateAction::Increment, key.into(), json!(by))
    }

    /// Appends `value` to the list at `key` (a missing key is an empty list).
    pub fn append(self, key: impl Into<String>, value: Value) -> Decision {
        self.with(StateAction::Append, key.into(), value)
    }

    /// Removes `key` from the state.
    pub fn delete(self, key: impl Into<String>) -> Decision {
        self.with(StateAction::Delete, key.into(), Value::Null)
    }

    /// Sets a label on the session (`Null` removes it).
    pub fn label(mut self, key: &str, value: Value) -> Decision {
        let mut labels = self.set_labels.as_deref().map(object).unwrap_or_default();
        labels.insert(key.into(), value);
        self.set_labels = Some(Value::Object(labels).to_string());
        self
    }

    /// Replaces the event's payload for the next policy and, if the chain allows, for the session — e.g. a tool
    /// result with secrets redacted (`{"result": "...", "is_error": false}`).
    pub fn rewrite(mut self, data: Value) -> Decision {
        self.data = Some(data.to_string());
        self
    }
}

/// `*` at the end of a pattern matches any suffix; otherwise names must be equal (case-sensitive).
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// A short, single-line preview of a JSON value for messages.
pub fn preview(value: &Value, max: usize) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() > max {
        format!("{}…", one_line.chars().take(max).collect::<String>())
    } else {
        one_line
    }
}
