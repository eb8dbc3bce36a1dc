//! What every policy component needs: the `omnigent:policy@0.1.0` bindings, the parameters `init` received, and
//! small builders for decisions and state updates. A policy crate implements [`Guest`] and calls
//! `policy_kit::export_policy!(MyPolicy);`.

#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/policy",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "export_policy",
        default_bindings_module: "policy_kit::bindings",
    });
}

pub use bindings::omnigent::policy::types::{Context, Elicitation, Phase, StateAction, StateUpdate, Usage, Verdict};
pub use bindings::{Decision, Descriptor, Event, Guest, export_policy};

pub use serde_json::{self, Map, Value, json};

use std::sync::OnceLock;

static PARAMS: OnceLock<Map<String, Value>> = OnceLock::new();

/// Parses and keeps the parameters `init` received (each evaluation runs in a fresh instance, so this is set once
/// per instance). Returns them for validation.
pub fn init_params(text: &str) -> Result<&'static Map<String, Value>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("parameters are not JSON: {e}"))?;
    let map = match value {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => return Err(format!("parameters must be an object, got {other}")),
    };
    Ok(PARAMS.get_or_init(|| map))
}

/// The parameters `init` received (empty before).
pub fn params() -> &'static Map<String, Value> {
    static EMPTY: OnceLock<Map<String, Value>> = OnceLock::new();
    PARAMS.get().unwrap_or_else(|| EMPTY.get_or_init(Map::new))
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

/// A parameter that must be a non-negative number (`default` when absent; `None` default means required).
pub fn number(params: &Map<String, Value>, key: &str, default: Option<f64>) -> Result<f64, String> {
    match params.get(key) {
        None | Some(Value::Null) => default.ok_or_else(|| format!("{key} is required")),
        Some(v) => {
            v.as_f64().filter(|n| *n >= 0.0).ok_or_else(|| format!("{key} must be a non-negative number, got {v}"))
        }
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

impl Event {
    /// The tool, when this is a tool call (the phase most policies judge).
    pub fn tool_call(&self) -> Option<&str> {
        if self.phase == Phase::ToolCall { self.target.as_deref() } else { None }
    }

    /// The payload as JSON (Null when unparsable).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    /// The session's policy state.
    pub fn state(&self) -> Map<String, Value> {
        match serde_json::from_str(&self.context.state) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// A state key private to this policy declaration: `<policy name>.<key>`.
    pub fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.context.policy_name)
    }
}

fn decision(verdict: Verdict) -> Decision {
    Decision { verdict, data: None, state_updates: Vec::new(), set_labels: None }
}

pub fn allow() -> Decision {
    decision(Verdict::Allow)
}

pub fn abstain() -> Decision {
    decision(Verdict::Abstain)
}

pub fn deny(reason: impl Into<String>) -> Decision {
    decision(Verdict::Deny(reason.into()))
}

pub fn ask(message: impl Into<String>) -> Decision {
    decision(Verdict::Ask(Elicitation { message: message.into() }))
}

impl Decision {
    /// Adds a state update.
    pub fn with(mut self, action: StateAction, key: String, value: Value) -> Decision {
        self.state_updates.push(StateUpdate { key, action, value: value.to_string() });
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
