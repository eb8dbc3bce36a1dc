//! Session configs: Omnigent's single-file agent YAML, with our extensions (`executor.harness` names a builtin
//! WASM harness or a `.wasm` path; `executor.provider`; the `scripted` demo provider).
//!
//! Structure errors carry `file:line:column`; `${VAR}` expands from the environment after the structure is known
//! to be right, and an unset variable is reported where it is used.

pub mod bundle;
mod check;
mod load;
mod sandbox;
mod skill;

pub use load::server_policies;
pub use sandbox::{SandboxKind, SandboxSpec, WritePath};
pub use skill::{LOAD_SKILL, READ_SKILL_FILE, Skill, parse_skill};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest config file accepted.
pub const MAX_CONFIG_BYTES: usize = 1 << 20;

/// Builtin harness names: the WASM agent loop, and Claude Code run as a native CLI in the session's terminal.
pub const BUILTIN_HARNESSES: [&str; 3] = ["agent", CLAUDE_NATIVE, CODEX_NATIVE];

/// The harness that runs the real Claude Code CLI in a tmux terminal owned by the session.
pub const CLAUDE_NATIVE: &str = "claude-native";

/// Whether `harness` names a vendor CLI (a native harness) rather than a WASM harness.
pub fn is_native_harness(harness: &str) -> bool {
    harness == CLAUDE_NATIVE || harness == CODEX_NATIVE
}

/// The harness that runs the real Codex CLI (its app-server, and its TUI in a tmux terminal) for the session.
pub const CODEX_NATIVE: &str = "codex-native";

/// Claude Code's permission modes (`executor.permission_mode`).
pub const CLAUDE_PERMISSION_MODES: [&str; 5] = ["default", "acceptEdits", "plan", "auto", "bypassPermissions"];

/// Where a native CLI keeps its own config and login.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NativeConfigDir {
    /// The user's own (`~/.claude`): their login, settings and skills.
    #[default]
    Inherit,
    /// A fresh folder per session under the data dir (nothing of the user's is read or changed).
    Isolated,
}

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
    /// When the older conversation is summarized so the model's context does not overflow (Omnigent's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<Compaction>,
    /// Which skills (`type: skill` tools) are offered: `all` (default), `none`, or a list of their keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<SkillsFilter>,
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
    /// The model's context window in tokens, for automatic compaction (default 128,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
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
    /// Native harnesses: the CLI's permission mode (claude: default, acceptEdits, plan, auto, bypassPermissions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    /// Native harnesses: extra arguments for the CLI, passed as they are (no shell).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub launch_args: Vec<String>,
    /// Native harnesses: the user's own CLI config (`inherit`, default) or a private one per session (`isolated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<NativeConfigDir>,
    /// Native harnesses: the CLI's executable (default: `claude` on the server's PATH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cli_path: Option<String>,
}

/// `compaction:` — the conversation a turn starts with is summarized when it fills `trigger_threshold` of the
/// model's context window, keeping the last `recent_window` exchanges as they are.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Compaction {
    /// The share of the context window (0 < t ≤ 1, default 0.8) at which a turn compacts first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_threshold: Option<f64>,
    /// How many of the newest user messages, with what followed each, stay word for word (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_window: Option<u32>,
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
            context_window: None,
            max_steps: None,
            turn_timeout_s: None,
            memory_mb: None,
            profile: None,
            pricing: None,
            permission_mode: None,
            launch_args: Vec::new(),
            config_dir: None,
            cli_path: None,
        }
    }

    /// Whether the harness is a native CLI run in the session's terminal (not a WASM component).
    pub fn is_native(&self) -> bool {
        is_native_harness(&self.harness)
    }
}

/// OpenAI models served only on the Responses wire (no Chat Completions): a config naming one without a
/// `provider` gets `openai-responses`.
fn responses_only(model: &str) -> bool {
    let model = model.strip_prefix("openai/").unwrap_or(model);
    (model.ends_with("-pro") && (model.starts_with('o') || model.starts_with("gpt-5")))
        || model.contains("deep-research")
        || model.starts_with("codex-")
        || model.contains("-codex")
        || model.starts_with("computer-use")
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Openai,
    /// OpenAI's Responses wire (`openai-responses`), with the same keys as `openai`.
    #[serde(rename = "openai-responses")]
    OpenaiResponses,
    Anthropic,
    Scripted,
}

/// `executor.auth`: where the model's credential comes from. Omitted: the stored credential of the model's
/// provider, then the server's environment (see [`crate::credentials`]).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(rename = "type")]
    pub kind: AuthKind,
    /// A key, or a `${VAR}` reference resolved when a turn needs it (a stored credential named VAR, then the
    /// server's environment). Configs keep the reference, never its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// With `type: provider`: the name of a stored credential (`omnigent auth set NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Auth {
    /// The variable a `${VAR}` key names, when the key is a reference and not a key.
    pub fn key_reference(&self) -> Option<&str> {
        self.api_key.as_deref().and_then(reference)
    }
}

/// The keys never show in debug output (a reference does: it names, but does not hold, the secret).
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = self.api_key.as_deref().map(|k| if reference(k).is_some() { k } else { REDACTED });
        f.debug_struct("Auth")
            .field("kind", &self.kind)
            .field("api_key", &key)
            .field("base_url", &self.base_url)
            .field("name", &self.name)
            .finish()
    }
}

/// The kinds of `executor.auth`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// `api_key` (and optional `base_url`); the wire follows the model.
    ApiKey,
    /// The same, speaking OpenAI's wire.
    Openai,
    /// The same, speaking Anthropic's wire.
    Anthropic,
    /// The demo/test provider: no key.
    Scripted,
    /// A stored credential named by `name` (Omnigent's `{type: provider, name}`).
    Provider,
}

/// `VAR` when `text` is exactly `${VAR}` (letters, digits, `_`).
pub fn reference(text: &str) -> Option<&str> {
    let var = text.strip_prefix("${")?.strip_suffix('}')?;
    (!var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(var)
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
    /// Pause before each streamed word, in milliseconds (demos and tests that must catch a turn mid-stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptedCall {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// `builtin` (shell, read_file, write_file, list_dir — the map key picks which), `function` (with
    /// `runtime: client`: the client runs it and posts a `function_call_output`), `agent` (a sub-agent that runs
    /// each call as a child session) or `skill` (instructions the model loads on demand).
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
    /// Sub-agent: its own tools; MCP server: the names of the server's tools offered (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolTools>,
    /// MCP server over Streamable HTTP: its URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// MCP server over HTTP: headers sent with every request (e.g. `Authorization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// MCP server over stdio: the program (run in the session's sandbox, in its working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// MCP server over stdio: the program's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// MCP server over stdio: environment variables set for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// MCP server: offer only this one of its tools (as `tools: [name]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// Skill: its SKILL.md, or the folder holding it (relative paths are relative to the YAML file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Skill: the SKILL.md text itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
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
    /// Instructions the model loads on demand (`crate::skills`).
    Skill,
    /// An MCP server's tools (`crate::mcp`), offered as `<key>__<tool>`.
    Mcp,
}

/// A tool's own `tools`: a sub-agent's tools, or the names an MCP server's tools are limited to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolTools {
    Map(BTreeMap<String, ToolConfig>),
    Names(Vec<String>),
}

/// The top-level `skills:` of Omnigent's YAML: which of the config's skills are offered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SkillsFilter {
    /// Only the skills with these tool keys.
    Names(Vec<String>),
    Keyword(SkillsKeyword),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SkillsKeyword {
    All,
    None,
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

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OsEnv {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Working directory of the session's tools (relative paths are relative to the YAML file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// How the builtin tools are confined; absent: [`SandboxSpec::default_for_session`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSpec>,
}

pub const BUILTIN_TOOLS: [&str; 4] = ["shell", "read_file", "write_file", "list_dir"];

impl SessionConfig {
    /// Where the session's tools (or its native CLI) work: `os_env.cwd`, else where the server runs (a
    /// background server inherits its starter's directory).
    pub fn work_dir(&self) -> std::path::PathBuf {
        self.os_env
            .as_ref()
            .and_then(|o| o.cwd.clone())
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(std::env::temp_dir)
    }

    /// The sandbox the builtin tools run in: `os_env.sandbox`, else [`SandboxSpec::default_for_session`].
    pub fn sandbox(&self) -> SandboxSpec {
        self.os_env.as_ref().and_then(|o| o.sandbox.clone()).unwrap_or_else(SandboxSpec::default_for_session)
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
        let model = self.executor.model.as_deref().unwrap_or_default();
        let openai = if responses_only(model) { ProviderKind::OpenaiResponses } else { ProviderKind::Openai };
        match self.executor.auth.as_ref().map(|a| a.kind) {
            Some(AuthKind::Anthropic) => return ProviderKind::Anthropic,
            Some(AuthKind::Openai) => return openai,
            Some(AuthKind::Scripted) => return ProviderKind::Scripted,
            _ => {}
        }
        match model {
            "scripted" => ProviderKind::Scripted,
            m if m.starts_with("claude") || m.starts_with("anthropic/") => ProviderKind::Anthropic,
            _ => openai,
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
            compaction: None,
            skills: None,
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
            tools: match &tool.tools {
                Some(ToolTools::Map(tools)) => tools.clone(),
                _ => BTreeMap::new(),
            },
            os_env: self.os_env.clone(),
            // Delegated work is judged by the same policies as the parent's own.
            policies: self.policies.clone(),
            ..SessionConfig::new(name, tool.executor.clone().unwrap_or_else(|| self.executor.clone()))
        }
    }
}

/// What a credential is replaced with in configs shown to clients.
pub const REDACTED: &str = "[redacted]";

/// A config as shown to clients: every credential (a key named like `api_key`, `token`, `secret`, `password`)
/// replaced by [`REDACTED`], unless it is a `${VAR}` reference (which names, but does not hold, the secret).
pub fn redacted(config: &Value) -> Value {
    let secret = |key: &str| {
        let key = key.to_ascii_lowercase().replace(['-', '_'], "");
        ["apikey", "token", "secret", "password", "authorization"].iter().any(|s| key.contains(s))
    };
    match config {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| {
                    let shown = match v {
                        Value::String(s) if secret(k) && !s.starts_with("${") => Value::String(REDACTED.into()),
                        other => redacted(other),
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn credentials_are_redacted_wherever_they_are_and_references_kept() {
        let config = json!({"executor": {"auth": {"type": "api_key", "api_key": "sk-live-1", "base_url": "http://x"}},
            "tools": {"helper": {"executor": {"auth": {"apiKey": "sk-live-2"}}}},
            "mcp": [{"headers": {"Authorization": "Bearer t"}, "token": "${GH_TOKEN}"}], "name": "kept"});
        let shown = redacted(&config);
        let text = shown.to_string();
        assert!(!text.contains("sk-live") && !text.contains("Bearer t"), "{text}");
        assert_eq!(shown["executor"]["auth"]["base_url"], "http://x");
        assert_eq!(shown["mcp"][0]["token"], "${GH_TOKEN}");
        assert_eq!(shown["name"], "kept");
    }
}
