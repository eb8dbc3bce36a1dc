//! Elicitation policies: which policies judge a session (session → agent YAML → server, in declaration order), how
//! a chain of them decides, and the builtin components Omnigent's handler names resolve to.
//!
//! Chain rules (Omnigent's): the first deny stops the chain (state written by earlier allows stays); asks
//! accumulate (every asking policy is named; their state updates wait for a human's accept); a data rewrite becomes
//! the next policy's input. A policy that traps, times out or answers garbage denies on the blocking phases
//! (`request`, `tool_call`) and abstains on the others — it never hangs a turn or takes the server down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnigent_runtime::policy::{Context, Decision, Event, Phase, StateAction, Usage, Verdict};
use omnigent_runtime::{BUILTIN_POLICIES, PolicyComponent, PolicyLimits, Runtime};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Default wait for a human's answer before the ask counts as declined (Omnigent's 86 400 s).
pub const DEFAULT_ASK_TIMEOUT_S: u64 = 24 * 60 * 60;
/// Largest `.wasm` policy file accepted.
const MAX_COMPONENT_BYTES: u64 = 16 << 20;

/// The phases, as the YAML `on:` selectors and the wire events name them.
pub const PHASES: [&str; 6] = ["request", "tool_call", "tool_result", "response", "llm_request", "llm_response"];

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
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
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
            if !PHASES.contains(&phase) {
                return Err(format!(
                    "policies.{name}.on: '{on}' is not a phase; use one of {} (optionally phase:tool)",
                    PHASES.join(", ")
                ));
            }
        }
        if self.memory_mb.is_some_and(|m| !(1..=256).contains(&m)) {
            return Err(format!("policies.{name}.memory_mb must be between 1 and 256"));
        }
        if self.timeout_ms.is_some_and(|t| !(1..=60_000).contains(&t)) {
            return Err(format!("policies.{name}.timeout_ms must be between 1 and 60000"));
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
    pub fn selects_phase(&self, phase: &str) -> bool {
        self.on.is_empty() || self.on.iter().any(|on| on.split(':').next() == Some(phase))
    }

    pub fn selects(&self, phase: &str, target: Option<&str>) -> bool {
        self.on.is_empty()
            || self.on.iter().any(|on| match on.split_once(':') {
                None => on == phase,
                Some((p, pattern)) => p == phase && target.is_some_and(|t| glob(pattern, t)),
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

/// A policy ready to evaluate.
#[derive(Clone)]
pub struct Loaded {
    pub name: String,
    pub level: Level,
    pub decl: PolicyDecl,
    component: Arc<PolicyComponent>,
    params: String,
}

/// Loads policy components once per process and keeps the server-wide defaults.
pub struct PolicyEnv {
    runtime: Arc<Runtime>,
    /// Server-wide defaults (`omnigent server --policies FILE`), judged after the session's and the agent's.
    pub server: PolicyMap,
    loaded: Mutex<HashMap<String, Arc<PolicyComponent>>>,
}

impl PolicyEnv {
    pub fn new(runtime: Arc<Runtime>, server: PolicyMap) -> PolicyEnv {
        PolicyEnv { runtime, server, loaded: Mutex::default() }
    }

    /// The component a declaration names (compiled on first use, then cached).
    pub async fn component(&self, decl: &PolicyDecl) -> Result<Arc<PolicyComponent>, String> {
        let key = match (&decl.handler, &decl.component) {
            (Some(h), _) => format!("builtin:{}", builtin_for(h).ok_or_else(|| format!("no builtin policy '{h}'"))?),
            (None, Some(path)) => {
                // Keyed by the file's size and time too, so a rebuilt policy is picked up without a restart.
                let meta =
                    tokio::fs::metadata(path).await.map_err(|e| format!("cannot read policy component {path}: {e}"))?;
                let modified =
                    meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
                format!("path:{path}:{}:{}", meta.len(), modified.as_nanos())
            }
            (None, None) => return Err("the policy names no handler or component".into()),
        };
        if let Some(found) = self.loaded.lock().unwrap().get(&key) {
            return Ok(found.clone());
        }
        let bytes: Vec<u8> = match key.split_once(':') {
            Some(("builtin", name)) => {
                BUILTIN_POLICIES.iter().find(|(n, _)| *n == name).map(|(_, b)| b.to_vec()).unwrap_or_default()
            }
            _ => {
                let path = decl.component.clone().unwrap_or_default();
                let meta = tokio::fs::metadata(&path)
                    .await
                    .map_err(|e| format!("cannot read policy component {path}: {e}"))?;
                if meta.len() > MAX_COMPONENT_BYTES {
                    return Err(format!("policy component {path} is larger than {MAX_COMPONENT_BYTES} bytes"));
                }
                tokio::fs::read(&path).await.map_err(|e| format!("cannot read policy component {path}: {e}"))?
            }
        };
        let runtime = self.runtime.clone();
        let component = tokio::task::spawn_blocking(move || runtime.load_policy(&bytes))
            .await
            .map_err(|e| format!("loading the policy panicked: {e}"))?
            .map_err(|e| format!("{}: {e}", decl.source_name()))?;
        self.loaded.lock().unwrap().insert(key, component.clone());
        Ok(component)
    }

    /// Loads a declaration (its component compiled or from the cache) without running it.
    async fn prepare(&self, name: &str, level: Level, decl: &PolicyDecl) -> Result<Loaded, String> {
        decl.validate(name)?;
        let component = self.component(decl).await?;
        let params = Value::Object(decl.factory_params.clone()).to_string();
        Ok(Loaded { name: name.to_string(), level, decl: decl.clone(), component, params })
    }

    /// Checks declarations where they are made (session or agent creation, REST, server start): each component
    /// loads and accepts its parameters in its own `init`, so a mistake is refused up front, with the component's
    /// message, rather than denying the first turn's actions.
    pub async fn check(&self, map: &PolicyMap, level: Level) -> Result<(), String> {
        for (name, decl) in &map.0 {
            let loaded = self.prepare(name, level, decl).await?;
            loaded
                .component
                .check_params(&loaded.params, decl.limits())
                .await
                .map_err(|e| format!("policies.{name}: {e}"))?;
        }
        Ok(())
    }

    /// The chain for a session: its own policies, then its config's, then the server's; disabled ones left out.
    /// Parameters were checked when they were declared (`check`); a component that refuses them now counts as a
    /// failing policy.
    pub async fn chain(&self, session: &PolicyMap, agent: &PolicyMap) -> Result<Vec<Loaded>, String> {
        let mut out = Vec::new();
        for (level, map) in [(Level::Session, session), (Level::Agent, agent), (Level::Server, &self.server)] {
            for (name, decl) in map.0.iter().filter(|(_, d)| d.enabled) {
                out.push(self.prepare(name, level, decl).await?);
            }
        }
        Ok(out)
    }
}

/// A change to the session's policy state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StateChange {
    pub key: String,
    /// `set`, `increment`, `delete` or `append`.
    pub action: String,
    #[serde(default)]
    pub value: Value,
}

/// Applies changes to a policy state map.
pub fn apply_state(state: &mut Map<String, Value>, changes: &[StateChange]) {
    for c in changes {
        match c.action.as_str() {
            "set" => {
                state.insert(c.key.clone(), c.value.clone());
            }
            "increment" => {
                let old = state.get(&c.key).and_then(Value::as_f64).unwrap_or(0.0);
                let add = c.value.as_f64().unwrap_or(0.0);
                let sum = old + add;
                let v = if sum.fract() == 0.0 && sum.abs() < 9e15 { json!(sum as i64) } else { json!(sum) };
                state.insert(c.key.clone(), v);
            }
            "delete" => {
                state.remove(&c.key);
            }
            "append" => {
                let entry = state.entry(c.key.clone()).or_insert_with(|| json!([]));
                if !entry.is_array() {
                    *entry = json!([]);
                }
                if let Some(list) = entry.as_array_mut() {
                    list.push(c.value.clone());
                }
            }
            _ => {}
        }
    }
}

/// What the session looks like to a policy.
pub struct Situation {
    pub session_id: String,
    pub model: String,
    pub harness: String,
    pub usage: Usage,
    pub labels: Map<String, Value>,
    pub state: Map<String, Value>,
}

/// The chain's verdict on one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Go ahead; `data` replaces the event's payload when a policy rewrote it.
    Allow {
        data: Option<Value>,
        changes: Vec<StateChange>,
        labels: Map<String, Value>,
    },
    Deny {
        policy: String,
        reason: String,
        changes: Vec<StateChange>,
        labels: Map<String, Value>,
    },
    /// Ask a human. `changes`/`labels` were written by allowing policies (apply now); `held_*` wait for an accept.
    Ask {
        policies: Vec<String>,
        message: String,
        data: Option<Value>,
        changes: Vec<StateChange>,
        labels: Map<String, Value>,
        held_changes: Vec<StateChange>,
        held_labels: Map<String, Value>,
        timeout_s: u64,
    },
}

fn phase_of(phase: &str) -> Phase {
    match phase {
        "request" => Phase::Request,
        "tool_call" => Phase::ToolCall,
        "tool_result" => Phase::ToolResult,
        "response" => Phase::Response,
        "llm_request" => Phase::LlmRequest,
        _ => Phase::LlmResponse,
    }
}

/// Whether a failing policy denies (true) or abstains on this phase.
pub fn fails_closed(phase: &str) -> bool {
    matches!(phase, "request" | "tool_call")
}

/// A decision with every JSON field parsed, or why it is garbage.
struct Parsed {
    verdict: Verdict,
    data: Option<Value>,
    changes: Vec<StateChange>,
    labels: Map<String, Value>,
}

fn parse(decision: Decision) -> Result<Parsed, String> {
    let data = match decision.data {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| format!("its data is not JSON ({e})"))?),
        None => None,
    };
    let mut changes = Vec::new();
    for u in decision.state_updates {
        let action = match u.action {
            StateAction::Set => "set",
            StateAction::Increment => "increment",
            StateAction::Delete => "delete",
            StateAction::Append => "append",
        };
        let value = if matches!(u.action, StateAction::Delete) {
            Value::Null
        } else {
            serde_json::from_str(&u.value).map_err(|e| format!("its state update of '{}' is not JSON ({e})", u.key))?
        };
        if u.key.is_empty() || u.key.len() > 256 {
            return Err("a state key is empty or longer than 256 bytes".into());
        }
        changes.push(StateChange { key: u.key, action: action.into(), value });
    }
    let labels = match decision.set_labels {
        None => Map::new(),
        Some(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => m,
            _ => return Err("its set-labels is not a JSON object".into()),
        },
    };
    Ok(Parsed { verdict: decision.verdict, data, changes, labels })
}

/// Runs the chain over one event.
pub async fn evaluate(
    chain: &[Loaded],
    phase: &str,
    target: Option<&str>,
    data: Value,
    request_data: Option<&Value>,
    situation: &Situation,
) -> Outcome {
    let mut data = data;
    let mut rewritten = false;
    let mut state = situation.state.clone();
    let (mut changes, mut labels) = (Vec::new(), Map::new());
    let (mut askers, mut messages, mut held_changes, mut held_labels) =
        (Vec::new(), Vec::new(), Vec::new(), Map::new());
    let mut timeout_s = 0;
    for policy in chain.iter().filter(|p| p.decl.selects(phase, target)) {
        let event = Event {
            phase: phase_of(phase),
            target: target.map(str::to_string),
            data: data.to_string(),
            request_data: request_data.map(Value::to_string),
            context: Context {
                session_id: situation.session_id.clone(),
                model: situation.model.clone(),
                harness: situation.harness.clone(),
                usage: situation.usage,
                labels: Value::Object(situation.labels.clone()).to_string(),
                state: Value::Object(state.clone()).to_string(),
                policy_name: policy.name.clone(),
            },
        };
        let started = std::time::Instant::now();
        let result = policy.component.evaluate(&policy.params, event, policy.decl.limits()).await;
        let parsed = result.map_err(|e| e.to_string()).and_then(parse);
        tracing::debug!(policy = %policy.name, phase, elapsed_us = started.elapsed().as_micros() as u64, "policy evaluated");
        let parsed = match parsed {
            Ok(p) => p,
            Err(why) => {
                if fails_closed(phase) {
                    tracing::warn!(policy = %policy.name, phase, error = %why, "policy failed; denying (this phase fails closed)");
                    return Outcome::Deny {
                        policy: policy.name.clone(),
                        reason: format!("the policy '{}' failed ({why}), so the {phase} is denied", policy.name),
                        changes,
                        labels,
                    };
                }
                tracing::warn!(policy = %policy.name, phase, error = %why, "policy failed; ignoring it on this phase");
                continue;
            }
        };
        match parsed.verdict {
            Verdict::Deny(reason) => {
                changes.extend(parsed.changes);
                labels.extend(parsed.labels);
                return Outcome::Deny { policy: policy.name.clone(), reason, changes, labels };
            }
            Verdict::Ask(e) => {
                askers.push(policy.name.clone());
                messages.push(e.message);
                held_changes.extend(parsed.changes);
                held_labels.extend(parsed.labels);
                timeout_s = timeout_s.max(policy.decl.ask_timeout.unwrap_or(DEFAULT_ASK_TIMEOUT_S));
            }
            Verdict::Allow | Verdict::Abstain => {
                apply_state(&mut state, &parsed.changes);
                changes.extend(parsed.changes);
                labels.extend(parsed.labels);
            }
        }
        if let Some(d) = parsed.data {
            data = d;
            rewritten = true;
        }
    }
    let data = rewritten.then_some(data);
    if askers.is_empty() {
        Outcome::Allow { data, changes, labels }
    } else {
        Outcome::Ask {
            policies: askers,
            message: messages.join("\n"),
            data,
            changes,
            labels,
            held_changes,
            held_labels,
            timeout_s,
        }
    }
}
