//! Elicitation policies: which policies judge a session (session → agent YAML → server, in declaration order), how
//! a chain of them decides, and the builtin components Omnigent's handler names resolve to.
//!
//! Chain rules (Omnigent's): the first deny stops the chain (state written by earlier allows stays); asks
//! accumulate (every asking policy is named; their state updates wait for a human's accept); a data rewrite becomes
//! the next policy's input. A policy that traps, times out or answers garbage denies on the blocking phases
//! (`request`, `tool_call`) and abstains on the others — it never hangs a turn or takes the server down.

mod chain;
mod env;
pub mod replay;
mod state;

use std::time::Duration;

use omnigent_runtime::PolicyLimits;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bounds::{MAX_ASK_TIMEOUT_S, MAX_POLICY_TIMEOUT_MS, within};

#[cfg(test)]
pub(crate) use chain::testing;
pub use chain::{Asked, Evaluate, Loaded, Outcome, Situation, evaluate};
pub use env::PolicyEnv;
pub use state::{StateAction, StateChange, apply_state};

/// Default wait for a human's answer before the ask counts as declined (Omnigent's 86 400 s).
pub const DEFAULT_ASK_TIMEOUT_S: u64 = 24 * 60 * 60;

/// The phases of a turn a policy judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The user's request, before the harness sees it.
    Request,
    ToolCall,
    ToolResult,
    /// The turn's answer.
    Response,
    LlmRequest,
    LlmResponse,
}

impl Phase {
    pub const ALL: [Phase; 6] =
        [Phase::Request, Phase::ToolCall, Phase::ToolResult, Phase::Response, Phase::LlmRequest, Phase::LlmResponse];

    /// The name YAML `on:` selectors and wire events use.
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

    pub fn parse(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Whether a failing policy denies (true) or abstains on this phase: the phases that can still stop
    /// something fail closed.
    pub fn fails_closed(self) -> bool {
        matches!(self, Phase::Request | Phase::ToolCall)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Omnigent handler names (and our short names) → builtin component.
const HANDLERS: [(&str, &str); 11] = [
    ("safety.ask_on_os_tools", "ask_on_os_tools"),
    ("ask_on_os_tools", "ask_on_os_tools"),
    ("safety.max_tool_calls_per_session", "max_tool_calls"),
    ("max_tool_calls_per_session", "max_tool_calls"),
    ("max_tool_calls", "max_tool_calls"),
    ("cost.cost_budget", "cost_budget"),
    ("cost_budget", "cost_budget"),
    ("safety.detect_loop", "detect_loop"),
    ("detect_loop", "detect_loop"),
    ("safety.tool_filter", "tool_filter"),
    ("tool_filter", "tool_filter"),
];
const HANDLER_PREFIXES: [&str; 2] = ["omnigent.policies.builtins.", "omnigent.inner.nessie.policies."];

/// One policy as declared in a session YAML (`policies: {name: …}`), the server config, or over REST.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyDecl {
    /// Omnigent's `function` / `python`, or `component`; informational (the handler or component decides).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A builtin: Omnigent's handler name (`omnigent.policies.builtins.safety.ask_on_os_tools`) or ours
    /// (`ask_on_os_tools`, `max_tool_calls`, `cost_budget`, `detect_loop`, `tool_filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// A custom policy: a path to a `.wasm` component of the world omnigent:policy@0.1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Parameters passed to the policy's `init`.
    #[serde(default, alias = "params", skip_serializing_if = "Map::is_empty")]
    pub factory_params: Map<String, Value>,
    /// Phase selectors (`tool_call`, `tool_call:shell`, `tool_call:mcp_*`, `request`, …); empty: every phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on: Vec<String>,
    /// Seconds to wait for a human before an ask counts as declined (default 86 400).
    #[serde(default, alias = "ask_timeout_s", skip_serializing_if = "Option::is_none")]
    pub ask_timeout: Option<u64>,
    /// Per-evaluation deadline in milliseconds (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Per-evaluation memory cap in MiB (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Policies in declaration order (YAML maps keep their order; so does the stored JSON).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicyMap(pub Vec<(String, PolicyDecl)>);

impl Serialize for PolicyMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for PolicyMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = PolicyMap;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of policy name to {handler | component, factory_params, on}")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<PolicyMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, PolicyDecl>()? {
                    if out.iter().any(|(n, _): &(String, PolicyDecl)| *n == k) {
                        return Err(serde::de::Error::custom(format!("policy '{k}' is declared twice")));
                    }
                    out.push((k, v));
                }
                Ok(PolicyMap(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl PolicyMap {
    /// A session's REST-added policies (its `SessionPolicyObject`s, in the order they were added).
    pub fn of_session(objects: &[Value]) -> PolicyMap {
        PolicyMap(
            objects
                .iter()
                .filter_map(|o| Some((o.get("name")?.as_str()?.to_string(), PolicyDecl::of_object(o)?)))
                .collect(),
        )
    }
}

/// The builtin component a handler name resolves to.
pub fn builtin_for(handler: &str) -> Option<&'static str> {
    let short = HANDLER_PREFIXES.iter().find_map(|p| handler.strip_prefix(p)).unwrap_or(handler);
    HANDLERS.iter().find(|(h, _)| *h == short).map(|(_, c)| *c)
}

/// The handler names `GET /v1/policy-registry` lists for a builtin (Omnigent's first).
pub fn handlers_of(component: &str) -> Vec<String> {
    HANDLERS
        .iter()
        .filter(|(_, c)| *c == component)
        .map(|(h, _)| if h.contains('.') { format!("{}{h}", HANDLER_PREFIXES[0]) } else { h.to_string() })
        .collect()
}

impl PolicyDecl {
    /// The declaration a stored `SessionPolicyObject` stands for.
    pub fn of_object(object: &Value) -> Option<PolicyDecl> {
        Some(PolicyDecl {
            handler: Some(object.get("handler")?.as_str()?.to_string()),
            factory_params: object.get("factory_params").and_then(Value::as_object).cloned().unwrap_or_default(),
            on: object.get("on").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default(),
            ask_timeout: object.get("ask_timeout").and_then(Value::as_u64),
            enabled: object.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            ..PolicyDecl::builtin("")
        })
    }

    /// A declaration of a builtin with default settings.
    pub fn builtin(handler: &str) -> PolicyDecl {
        PolicyDecl {
            kind: None,
            handler: Some(handler.to_string()),
            component: None,
            factory_params: Map::new(),
            on: Vec::new(),
            ask_timeout: None,
            timeout_ms: None,
            memory_mb: None,
            enabled: true,
        }
    }

    /// Checks what can be checked without loading the component.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        match (&self.handler, &self.component) {
            (Some(_), Some(_)) => return Err(format!("policies.{name}: give either handler or component, not both")),
            (None, None) => {
                return Err(format!("policies.{name}: needs a handler (a builtin) or a component (a .wasm path)"));
            }
            (Some(h), None) if builtin_for(h).is_none() => {
                let known: Vec<&str> = HANDLERS.iter().filter(|(h, _)| !h.contains('.')).map(|(h, _)| *h).collect();
                return Err(format!(
                    "policies.{name}: no builtin policy '{h}'; builtins: {} (Omnigent names such as \
                     omnigent.policies.builtins.safety.ask_on_os_tools work too), or set component: <path>.wasm",
                    known.join(", ")
                ));
            }
            (None, Some(c)) if !c.ends_with(".wasm") => {
                return Err(format!("policies.{name}.component must be a path to a .wasm file, got '{c}'"));
            }
            _ => {}
        }
        for on in &self.on {
            let phase = on.split_once(':').map(|(p, _)| p).unwrap_or(on);
            if Phase::parse(phase).is_none() {
                let names: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
                return Err(format!(
                    "policies.{name}.on: '{on}' is not a phase; use one of {} (optionally phase:tool)",
                    names.join(", ")
                ));
            }
        }
        if self.memory_mb.is_some_and(|m| !(1..=256).contains(&m)) {
            return Err(format!("policies.{name}.memory_mb must be between 1 and 256"));
        }
        within(&format!("policies.{name}.ask_timeout"), self.ask_timeout, MAX_ASK_TIMEOUT_S, "seconds")?;
        if self.timeout_ms.is_some_and(|t| !(1..=MAX_POLICY_TIMEOUT_MS).contains(&t)) {
            return Err(format!("policies.{name}.timeout_ms must be between 1 and {MAX_POLICY_TIMEOUT_MS}"));
        }
        Ok(())
    }

    fn limits(&self) -> PolicyLimits {
        let d = PolicyLimits::default();
        PolicyLimits {
            memory_bytes: self.memory_mb.map(|m| (m as usize) << 20).unwrap_or(d.memory_bytes),
            deadline: self.timeout_ms.map(Duration::from_millis).unwrap_or(d.deadline),
        }
    }

    /// The handler or component path, as shown to users.
    pub fn source_name(&self) -> &str {
        self.handler.as_deref().or(self.component.as_deref()).unwrap_or("")
    }

    /// Whether any selector names this phase (whatever the tool).
    pub fn selects_phase(&self, phase: Phase) -> bool {
        self.on.is_empty() || self.on.iter().any(|on| on.split(':').next() == Some(phase.as_str()))
    }

    /// Whether the policy judges this phase for this tool (`target`).
    pub fn selects(&self, phase: Phase, target: Option<&str>) -> bool {
        self.on.is_empty()
            || self.on.iter().any(|on| match on.split_once(':') {
                None => on == phase.as_str(),
                Some((p, pattern)) => p == phase.as_str() && target.is_some_and(|t| glob(pattern, t)),
            })
    }
}

fn glob(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Where a policy of the chain was declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Session,
    Agent,
    Server,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Session => "session",
            Level::Agent => "spec",
            Level::Server => "admin",
        }
    }
}
