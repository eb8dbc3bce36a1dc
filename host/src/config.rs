//! Session configs: Omnigent's single-file agent YAML, with our extensions (`executor.harness` names a builtin
//! WASM harness or a `.wasm` path; `executor.provider`; the `scripted` demo provider).
//!
//! Structure errors carry `file:line:column`; `${VAR}` expands from the environment after the structure is known
//! to be right, and an unset variable is reported where it is used.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest config file accepted.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Builtin harness names.
pub const BUILTIN_HARNESSES: [&str; 1] = ["agent"];

/// A config error, rendered `file:line:column: message` when the position is known.
#[derive(Debug, thiserror::Error)]
#[error("{origin}{}: {message}", position.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    pub origin: String,
    pub position: Option<(usize, usize)>,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// The agent's name.
    pub name: String,
    /// System instructions (Omnigent: `prompt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// System instructions; wins over `prompt` (Omnigent allows a path here too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub executor: Executor,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_env: Option<OsEnv>,
    /// Omnigent keys this server does not act on yet; accepted so Omnigent YAML loads, and reported by `check`.
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub async_enabled: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancellable: Option<Value>,
    /// Elicitation policies judged for this session (after its REST-added ones, before the server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<crate::policy::PolicyMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Executor {
    /// A builtin harness (`agent`) or a path to a `.wasm` harness component.
    pub harness: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `openai` (Chat Completions), `anthropic` (Messages) or `scripted` (demo/test). Default: from `auth.type`,
    /// then the model name (`claude-*` → anthropic), else openai.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Replies of the `scripted` provider, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub script: Vec<ScriptStep>,
    /// Most model calls in one turn (default 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Wall-clock limit of a turn in seconds (default 1800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_timeout_s: Option<u64>,
    /// Memory limit of the harness instance in MiB (default 256, at most 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    /// Legacy Omnigent key; accepted and unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Prices of the model, for cost accounting and cost policies (default: a table of well-known models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
}

/// US dollars per million tokens.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

/// List prices of some well-known models (USD per million input / output tokens); longest prefix wins.
const KNOWN_PRICES: [(&str, f64, f64); 8] = [
    ("gpt-4o-mini", 0.15, 0.6),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1", 2.0, 8.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("claude-haiku-4", 1.0, 5.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-opus-4", 15.0, 75.0),
];

impl Executor {
    /// The model a turn names on the wire (the `scripted` demo provider needs none).
    pub fn model_name(&self) -> &str {
        self.model.as_deref().unwrap_or("scripted")
    }

    /// The cost of `input`/`output` tokens on this executor's model; 0 when the price is unknown.
    pub fn cost_usd(&self, input: u64, output: u64) -> f64 {
        let price = self.pricing.or_else(|| {
            let model = self.model.as_deref().unwrap_or_default();
            KNOWN_PRICES
                .iter()
                .filter(|(prefix, _, _)| model.starts_with(prefix))
                .max_by_key(|(prefix, _, _)| prefix.len())
                .map(|(_, i, o)| Pricing { input_usd_per_mtok: *i, output_usd_per_mtok: *o })
        });
        price
            .map(|p| (input as f64 * p.input_usd_per_mtok + output as f64 * p.output_usd_per_mtok) / 1e6)
            .unwrap_or(0.0)
    }
}

impl Executor {
    /// `harness` with `model` and every other setting at its default.
    pub fn new(harness: &str, model: Option<String>) -> Executor {
        Executor {
            harness: harness.to_string(),
            model,
            provider: None,
            auth: None,
            script: Vec::new(),
            max_steps: None,
            turn_timeout_s: None,
            memory_mb: None,
            profile: None,
            pricing: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Scripted,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// `api_key` (with `api_key` and optional `base_url`), `anthropic`/`openai` (same, naming the wire format),
    /// or `scripted`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
}

/// One reply of the scripted provider: text, tool calls, or both.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<ScriptedCall>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ScriptedCall>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// `builtin` (shell, read_file, write_file, list_dir — the map key picks which), `function` (with
    /// `runtime: client`: the client runs it and posts a `function_call_output`) or `agent` (a sub-agent that runs
    /// each call as a child session).
    #[serde(rename = "type", default)]
    pub kind: ToolKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, alias = "input_schema", skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// `client` for tools the client implements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<ToolRuntime>,
    /// Omnigent's Python callable; not runnable here (reported as an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callable: Option<String>,
    /// Builtin shell: seconds before the command is killed (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
    /// Builtin tools: most bytes of output returned to the model (default 65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<usize>,
    /// Sub-agent (`type: agent`): its instructions.
    #[serde(default, alias = "instructions", skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Sub-agent: its own harness and model (default: the parent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<Executor>,
    /// Sub-agent: its own tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<BTreeMap<String, ToolConfig>>,
}

/// What runs a tool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// One of ours (`shell`, `read_file`, `write_file`, `list_dir`; the map key picks which).
    Builtin,
    /// Described by the config and run by the client (`runtime: client`).
    #[default]
    Function,
    /// A sub-agent: each call runs as a child session.
    Agent,
}

/// Where a `function` tool runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolRuntime {
    /// The client implements it and posts a `function_call_output`.
    Client,
    /// Omnigent's Python callables; not runnable here (refused when the config is checked).
    Server,
}

impl ToolConfig {
    /// Whether the client runs this tool (the turn waits for its `function_call_output`).
    pub fn runs_on_client(&self) -> bool {
        self.runtime == Some(ToolRuntime::Client)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OsEnv {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Working directory of the session's tools (relative paths are relative to the YAML file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Value>,
}

pub const BUILTIN_TOOLS: [&str; 4] = ["shell", "read_file", "write_file", "list_dir"];

impl SessionConfig {
    /// Parses YAML text. `origin` names the source in errors (a file path).
    pub fn from_yaml(text: &str, origin: &str) -> Result<SessionConfig, ConfigError> {
        let err = |position, message: String| ConfigError { origin: origin.to_string(), position, message };
        if text.len() > MAX_CONFIG_BYTES {
            return Err(err(None, format!("the file is larger than {} bytes", MAX_CONFIG_BYTES)));
        }
        // ${VAR} expands in the text before parsing, as Omnigent does (so `{api_key: ${KEY}}` works in flow
        // style). Lines keep their numbers; a column after an expansion on the same line may shift.
        let text = expand_env(text).map_err(|(var, at)| {
            err(Some(line_col(text, at)), format!("environment variable {var} is not set (used as ${{{var}}})"))
        })?;
        let config: SessionConfig = serde_norway::from_str(&text).map_err(|e| yaml_error(e, origin))?;
        config.validate().map_err(|m| err(None, m))?;
        Ok(config)
    }

    /// Reads a config sent as JSON (the API's `config`), with the same checks as YAML.
    pub fn from_json(value: Value) -> Result<SessionConfig, String> {
        let config: SessionConfig = serde_json::from_value(value).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a YAML file; relative `os_env.cwd` and `.wasm` paths become relative to the file.
    pub fn from_file(path: &Path) -> Result<SessionConfig, ConfigError> {
        let origin = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            position: None,
            message: format!("cannot read: {e}"),
        })?;
        if meta.len() as usize > MAX_CONFIG_BYTES {
            return Err(ConfigError {
                origin,
                position: None,
                message: format!("larger than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            position: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Self::from_yaml(&text, &origin)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        let cwd = config.os_env.as_ref().and_then(|o| o.cwd.clone()).unwrap_or_else(|| ".".into());
        let resolved = base.join(&cwd);
        config.os_env.get_or_insert(OsEnv { kind: None, cwd: None, sandbox: None }).cwd =
            Some(std::fs::canonicalize(&resolved).unwrap_or(resolved).display().to_string());
        if config.executor.harness.ends_with(".wasm") && !Path::new(&config.executor.harness).is_absolute() {
            config.executor.harness = base.join(&config.executor.harness).display().to_string();
        }
        Ok(config)
    }

    /// The session config as stored with the session.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The system instructions, if any.
    pub fn system_prompt(&self) -> Option<&str> {
        self.instructions.as_deref().or(self.prompt.as_deref())
    }

    /// The provider this config talks to.
    pub fn provider(&self) -> ProviderKind {
        if let Some(p) = self.executor.provider {
            return p;
        }
        match self.executor.auth.as_ref().map(|a| a.kind.as_str()) {
            Some("anthropic") => return ProviderKind::Anthropic,
            Some("openai") => return ProviderKind::Openai,
            Some("scripted") => return ProviderKind::Scripted,
            _ => {}
        }
        match self.executor.model.as_deref() {
            Some("scripted") => ProviderKind::Scripted,
            Some(m) if m.starts_with("claude") || m.starts_with("anthropic/") => ProviderKind::Anthropic,
            _ => ProviderKind::Openai,
        }
    }

    /// A config with only a name and an executor (no prompt, no tools).
    pub fn new(name: &str, executor: Executor) -> SessionConfig {
        SessionConfig {
            name: name.to_string(),
            prompt: None,
            instructions: None,
            description: None,
            executor,
            tools: BTreeMap::new(),
            os_env: None,
            async_enabled: None,
            cancellable: None,
            policies: None,
            terminals: None,
            params: None,
            labels: None,
            metadata: None,
        }
    }

    /// The config of the child session a sub-agent tool runs as: its own prompt, tools and executor (default:
    /// this config's executor), in this config's working directory.
    pub fn sub_agent(&self, name: &str, tool: &ToolConfig) -> SessionConfig {
        SessionConfig {
            prompt: tool.prompt.clone().or_else(|| tool.description.clone()),
            description: tool.description.clone(),
            tools: tool.tools.clone().unwrap_or_default(),
            os_env: self.os_env.clone(),
            // Delegated work is judged by the same policies as the parent's own.
            policies: self.policies.clone(),
            ..SessionConfig::new(name, tool.executor.clone().unwrap_or_else(|| self.executor.clone()))
        }
    }

    /// Keys accepted for Omnigent compatibility that this server does not act on.
    pub fn unsupported_keys(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (present, key) in [
            (self.terminals.is_some(), "terminals"),
            (self.params.is_some(), "params"),
            (self.async_enabled.is_some(), "async"),
            (self.cancellable.is_some(), "cancellable"),
            (self.labels.is_some(), "labels"),
            (self.metadata.is_some(), "metadata"),
            (self.executor.profile.is_some(), "executor.profile"),
            (self.os_env.as_ref().is_some_and(|o| o.sandbox.is_some()), "os_env.sandbox"),
        ] {
            if present {
                out.push(key);
            }
        }
        out
    }

    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name must not be empty".into());
        }
        let harness = &self.executor.harness;
        if !BUILTIN_HARNESSES.contains(&harness.as_str()) && !harness.ends_with(".wasm") {
            return Err(format!(
                "executor.harness '{harness}' is neither a builtin harness ({}) nor a path to a .wasm component",
                BUILTIN_HARNESSES.join(", ")
            ));
        }
        if let Some(mb) = self.executor.memory_mb
            && !(16..=1024).contains(&mb)
        {
            return Err(format!("executor.memory_mb must be between 16 and 1024, got {mb}"));
        }
        if self.executor.max_steps == Some(0) {
            return Err("executor.max_steps must be at least 1".into());
        }
        if self.provider() == ProviderKind::Scripted && self.executor.script.is_empty() {
            return Err("the scripted provider needs executor.script (a list of replies)".into());
        }
        for (i, step) in self.executor.script.iter().enumerate() {
            if step.text.is_none() && step.tool_call.is_none() && step.tool_calls.is_empty() {
                return Err(format!("executor.script[{i}] needs text, tool_call or tool_calls"));
            }
        }
        if let Some(p) = &self.executor.pricing
            && !(p.input_usd_per_mtok >= 0.0 && p.output_usd_per_mtok >= 0.0)
        {
            return Err("executor.pricing: prices must be non-negative numbers".into());
        }
        for (name, decl) in self.policies.iter().flat_map(|p| p.0.iter()) {
            decl.validate(name)?;
        }
        for (name, tool) in &self.tools {
            match tool.kind {
                ToolKind::Builtin if !BUILTIN_TOOLS.contains(&name.as_str()) => {
                    return Err(format!(
                        "tools.{name}: no builtin tool '{name}'; builtins are {}",
                        BUILTIN_TOOLS.join(", ")
                    ));
                }
                ToolKind::Builtin => {}
                ToolKind::Function => {
                    if !tool.runs_on_client() {
                        return Err(format!(
                            "tools.{name}: function tools run on the client here (set runtime: client); Python \
                             callables are not supported"
                        ));
                    }
                    if let Some(p) = &tool.parameters
                        && !p.is_object()
                    {
                        return Err(format!("tools.{name}.parameters must be a JSON Schema object"));
                    }
                }
                ToolKind::Agent => {
                    if tool.description.as_deref().is_none_or(str::is_empty) {
                        return Err(format!(
                            "tools.{name}: a sub-agent needs a description (the parent's model reads it)"
                        ));
                    }
                    let child = self.sub_agent(name, tool);
                    child.validate().map_err(|e| format!("tools.{name}: {e}"))?;
                }
            }
        }
        Ok(())
    }
}

/// The server config file of `omnigent server --policies FILE`: `policies: {name: {handler | component, …}}`.
pub fn server_policies(path: &Path) -> Result<crate::policy::PolicyMap, ConfigError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ServerFile {
        #[serde(default)]
        policies: crate::policy::PolicyMap,
    }
    let origin = path.display().to_string();
    let err = |message: String| ConfigError { origin: origin.clone(), position: None, message };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if text.len() > MAX_CONFIG_BYTES {
        return Err(err(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    let text = expand_env(&text).map_err(|(var, at)| ConfigError {
        origin: origin.clone(),
        position: Some(line_col(&text, at)),
        message: format!("environment variable {var} is not set (used as ${{{var}}})"),
    })?;
    let file: ServerFile = serde_norway::from_str(&text).map_err(|e| yaml_error(e, &origin))?;
    for (name, decl) in &file.policies.0 {
        decl.validate(name).map_err(err)?;
    }
    Ok(file.policies)
}

fn yaml_error(e: serde_norway::Error, origin: &str) -> ConfigError {
    let position = e.location().map(|l| (l.line(), l.column()));
    let mut message = e.to_string();
    // The position is in the prefix already; drop serde's " at line X column Y" tail.
    if let Some(at) = message.find(" at line ") {
        message.truncate(at);
    }
    ConfigError { origin: origin.to_string(), position, message }
}

fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let before = &text[..byte];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// Replaces every `${VAR}`; an unset variable is an error with its name and byte offset.
fn expand_env(text: &str) -> Result<String, (String, usize)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else { break };
        let var = &rest[start + 2..start + 2 + len];
        let valid = !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(&rest[..start]);
        if valid {
            let value = std::env::var(var).map_err(|_| (var.to_string(), offset + start))?;
            out.push_str(&value);
        } else {
            out.push_str(&rest[start..start + 3 + len]);
        }
        offset += start + 3 + len;
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name: helper\nprompt: Be brief.\nexecutor:\n  harness: agent\n  model: gpt-4o-mini\n  auth: {type: api_key, api_key: sk-test}\ntools:\n  shell: {type: builtin}\n";

    #[test]
    fn parses_omnigent_single_file_yaml() {
        let c = SessionConfig::from_yaml(GOOD, "a.yaml").unwrap();
        assert_eq!(c.name, "helper");
        assert_eq!(c.system_prompt(), Some("Be brief."));
        assert_eq!(c.provider(), ProviderKind::Openai);
        assert!(c.tools.contains_key("shell"));
    }

    #[test]
    fn unknown_keys_are_reported_with_line_and_column() {
        let text = "name: x\nexecutor:\n  harness: agent\n  modle: gpt\n";
        let e = SessionConfig::from_yaml(text, "s.yaml").unwrap_err().to_string();
        assert!(e.starts_with("s.yaml:4:3: "), "{e}");
        assert!(e.contains("unknown field `modle`") && e.contains("expected one of"), "{e}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = SessionConfig::from_yaml("name: [unclosed\n", "s.yaml").unwrap_err();
        assert!(e.position.is_some(), "{e}");
        let e = SessionConfig::from_yaml("name: x\n", "s.yaml").unwrap_err().to_string();
        assert!(e.contains("missing field `executor`"), "{e}");
    }

    #[test]
    fn env_vars_expand_and_unset_ones_are_located() {
        // SAFETY: a variable name private to this test.
        unsafe { std::env::set_var("OMNIGENT_TEST_KEY_X1", "sk-from-env") };
        let text = GOOD.replace("sk-test", "${OMNIGENT_TEST_KEY_X1}");
        let c = SessionConfig::from_yaml(&text, "a.yaml").unwrap();
        assert_eq!(c.executor.auth.unwrap().api_key.as_deref(), Some("sk-from-env"));
        let text = GOOD.replace("sk-test", "${OMNIGENT_SURELY_UNSET_VAR}");
        let e = SessionConfig::from_yaml(&text, "a.yaml").unwrap_err().to_string();
        assert!(e.starts_with("a.yaml:6:") && e.contains("OMNIGENT_SURELY_UNSET_VAR is not set"), "{e}");
    }

    #[test]
    fn omnigent_keys_without_effect_are_reported_not_silently_dropped() {
        let text = format!("{GOOD}async: true\nterminals: {{bash: {{command: bash}}}}\n");
        assert!(
            SessionConfig::from_yaml(
                &format!("{GOOD}policies: {{a: {{handler: cost_budget, factory_params: {{max_cost_usd: 1}}}}}}\n"),
                "a"
            )
            .unwrap()
            .unsupported_keys()
            .is_empty()
        );
        let c = SessionConfig::from_yaml(&text, "a.yaml").unwrap();
        assert_eq!(c.unsupported_keys(), vec!["terminals", "async"]);
        assert!(SessionConfig::from_yaml(GOOD, "a.yaml").unwrap().unsupported_keys().is_empty());
    }

    #[test]
    fn policies_keep_their_order_and_unknown_handlers_are_named() {
        let text = format!(
            "{GOOD}policies:\n  zeta: {{handler: omnigent.policies.builtins.safety.ask_on_os_tools}}\n  alpha:\n    type: function\n    \
             handler: cost_budget\n    factory_params: {{max_cost_usd: 2}}\n    on: [request, \"tool_call:shell\"]\n"
        );
        let c = SessionConfig::from_yaml(&text, "a.yaml").unwrap();
        let names: Vec<&str> = c.policies.as_ref().unwrap().0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["zeta", "alpha"]);
        // The order survives the JSON the session stores.
        let back = SessionConfig::from_json(c.to_json()).unwrap();
        assert_eq!(back.policies, c.policies);
        let e = SessionConfig::from_yaml(&format!("{GOOD}policies:\n  x: {{handler: nope.nope}}\n"), "a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no builtin policy 'nope.nope'") && e.contains("ask_on_os_tools"), "{e}");
        let e = SessionConfig::from_yaml(&format!("{GOOD}policies:\n  x: {{handler: detect_loop, on: [tool]}}\n"), "a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'tool' is not a phase"), "{e}");
        let e = SessionConfig::from_yaml(
            &format!("{GOOD}policies:\n  x: {{handler: detect_loop, hanlder: 1}}\n"),
            "s.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("s.yaml:") && e.contains("unknown field `hanlder`"), "{e}");
    }

    #[test]
    fn bad_values_say_what_was_expected() {
        let e =
            SessionConfig::from_yaml(&GOOD.replace("harness: agent", "harness: nope"), "a").unwrap_err().to_string();
        assert!(e.contains("neither a builtin harness"), "{e}");
        let e = SessionConfig::from_yaml(&GOOD.replace("shell: {type: builtin}", "rm: {type: builtin}"), "a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no builtin tool 'rm'"), "{e}");
        let e = SessionConfig::from_yaml(&GOOD.replace("model: gpt-4o-mini", "provider: scripted"), "a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs executor.script"), "{e}");
        let e = SessionConfig::from_yaml(&GOOD.replace("harness: agent", "harness: agent\n  memory_mb: 5000"), "a")
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory_mb"), "{e}");
    }
}
