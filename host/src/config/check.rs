//! What a config must satisfy before any session runs it, and the Omnigent keys it accepts without acting on.

use super::{BUILTIN_HARNESSES, BUILTIN_TOOLS, ProviderKind, SessionConfig, ToolKind};
use crate::bounds::{
    MAX_CONTEXT_WINDOW, MAX_RECENT_WINDOW, MAX_SCRIPT_DELAY_MS, MAX_TOOL_OUTPUT_BYTES, MAX_TOOL_TIMEOUT_S,
    MAX_TURN_TIMEOUT_S, within,
};

/// Longest agent name.
const MAX_NAME_CHARS: usize = 256;

impl SessionConfig {
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
            // A native CLI brings its own tools, and runs them itself.
            (self.executor.is_native() && !self.tools.is_empty(), "tools (with a native harness)"),
            (
                self.executor.is_native() && self.os_env.as_ref().is_some_and(|o| o.sandbox.is_some()),
                "os_env.sandbox (with a native harness)",
            ),
        ] {
            if present {
                out.push(key);
            }
        }
        out
    }

    pub(super) fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name must not be empty".into());
        }
        // An agent is registered under its name (an indexed column).
        crate::ids::check_short_text("name", &self.name, MAX_NAME_CHARS)?;
        let harness = &self.executor.harness;
        if !BUILTIN_HARNESSES.contains(&harness.as_str()) && !harness.ends_with(".wasm") {
            return Err(format!(
                "executor.harness '{harness}' is neither a builtin harness ({}) nor a path to a .wasm component",
                BUILTIN_HARNESSES.join(", ")
            ));
        }
        if self.executor.permission_mode.is_some() && self.executor.harness == super::CODEX_NATIVE {
            return Err("executor.permission_mode is for claude-native; codex-native asks before escalated commands \
                        (approval policy on-request)"
                .into());
        }
        if let Some(mode) = &self.executor.permission_mode
            && !super::CLAUDE_PERMISSION_MODES.contains(&mode.as_str())
        {
            return Err(format!(
                "executor.permission_mode '{mode}' is not one of {}",
                super::CLAUDE_PERMISSION_MODES.join(", ")
            ));
        }
        let native_only = [
            (self.executor.permission_mode.is_some(), "permission_mode"),
            (!self.executor.launch_args.is_empty(), "launch_args"),
            (self.executor.config_dir.is_some(), "config_dir"),
            (self.executor.cli_path.is_some(), "cli_path"),
        ];
        if let Some((_, key)) = native_only.iter().find(|(set, _)| *set).filter(|_| !self.executor.is_native()) {
            return Err(format!(
                "executor.{key} applies to native harnesses ({}, {}) only",
                super::CLAUDE_NATIVE,
                super::CODEX_NATIVE
            ));
        }
        if let Some(arg) = self.executor.launch_args.iter().find(|a| a.contains('\0')) {
            return Err(format!("executor.launch_args: {arg:?} contains a NUL byte"));
        }
        if let Some(auth) = &self.executor.auth {
            check_auth(auth)?;
        }
        if let Some(mb) = self.executor.memory_mb
            && !(16..=1024).contains(&mb)
        {
            return Err(format!("executor.memory_mb must be between 16 and 1024, got {mb}"));
        }
        if let Some(sandbox) = self.os_env.as_ref().and_then(|o| o.sandbox.as_ref()) {
            sandbox.validate()?;
        }
        if self.executor.max_steps == Some(0) {
            return Err("executor.max_steps must be at least 1".into());
        }
        within("executor.turn_timeout_s", self.executor.turn_timeout_s, MAX_TURN_TIMEOUT_S, "seconds")?;
        within("executor.context_window", self.executor.context_window, MAX_CONTEXT_WINDOW, "tokens")?;
        if let Some(c) = &self.compaction {
            if let Some(t) = c.trigger_threshold
                && !(t > 0.0 && t <= 1.0)
            {
                return Err(format!("compaction.trigger_threshold must be above 0 and at most 1, got {t}"));
            }
            within("compaction.recent_window", c.recent_window.map(u64::from), MAX_RECENT_WINDOW, "messages")?;
        }
        if self.provider() == ProviderKind::Scripted && self.executor.script.is_empty() {
            return Err("the scripted provider needs executor.script (a list of replies)".into());
        }
        for (i, step) in self.executor.script.iter().enumerate() {
            if step.text.is_none() && step.tool_call.is_none() && step.tool_calls.is_empty() {
                return Err(format!("executor.script[{i}] needs text, tool_call or tool_calls"));
            }
            within(&format!("executor.script[{i}].delay_ms"), step.delay_ms, MAX_SCRIPT_DELAY_MS, "milliseconds")?;
        }
        if let Some(p) = &self.executor.pricing
            && !(p.input_usd_per_mtok >= 0.0 && p.output_usd_per_mtok >= 0.0)
        {
            return Err("executor.pricing: prices must be non-negative numbers".into());
        }
        for (name, decl) in self.policies.iter().flat_map(|p| p.0.iter()) {
            decl.validate(name)?;
        }
        if let Some(super::SkillsFilter::Names(names)) = &self.skills
            && let Some(unknown) =
                names.iter().find(|n| self.tools.get(n.as_str()).is_none_or(|t| t.kind != ToolKind::Skill))
        {
            return Err(format!("skills: {unknown:?} is not the key of a `type: skill` tool"));
        }
        if self.tools.values().any(|t| t.kind == ToolKind::Skill) {
            for own in [super::LOAD_SKILL, super::READ_SKILL_FILE] {
                if self.tools.contains_key(own) {
                    return Err(format!("tools.{own}: the name is taken by the skills' own tool"));
                }
            }
        }
        for (name, tool) in &self.tools {
            within(&format!("tools.{name}.timeout_s"), tool.timeout_s, MAX_TOOL_TIMEOUT_S, "seconds")?;
            within(
                &format!("tools.{name}.max_output_bytes"),
                tool.max_output_bytes.map(|b| b as u64),
                MAX_TOOL_OUTPUT_BYTES,
                "bytes",
            )?;
            let mcp_only = [
                (tool.url.is_some(), "url"),
                (tool.command.is_some(), "command"),
                (tool.args.is_some(), "args"),
                (tool.env.is_some(), "env"),
                (tool.headers.is_some(), "headers"),
                (tool.tool_name.is_some(), "tool_name"),
            ];
            if let Some((_, key)) = mcp_only.iter().find(|(set, _)| *set).filter(|_| tool.kind != ToolKind::Mcp) {
                return Err(format!("tools.{name}.{key} is for an MCP server (type: mcp)"));
            }
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
                ToolKind::Mcp => check_mcp(name, tool)?,
                ToolKind::Skill => match (&tool.path, &tool.content) {
                    (Some(_), Some(_)) | (None, None) => {
                        return Err(format!("tools.{name}: a skill takes `path` or `content` (one of them)"));
                    }
                    (None, Some(content)) => {
                        super::parse_skill(content, name, tool).map_err(|e| format!("tools.{name}: {e}"))?;
                    }
                    (Some(_), None) => {}
                },
                ToolKind::Agent if matches!(tool.tools, Some(super::ToolTools::Names(_))) => {
                    return Err(format!("tools.{name}.tools: a sub-agent's tools are a map of tool configs"));
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

/// An MCP server: `url` (Streamable HTTP) or `command` (stdio), never both; its key prefixes its tools' names.
fn check_mcp(name: &str, tool: &super::ToolConfig) -> Result<(), String> {
    let fine = !name.is_empty()
        && name.len() <= 32
        && !name.contains("__")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !fine {
        return Err(format!(
            "tools.{name}: an MCP server's key prefixes its tools (`{name}__<tool>`): at most 32 letters, digits, \
             '-' or '_', without '__'"
        ));
    }
    match (&tool.url, &tool.command) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(format!("tools.{name}: an MCP server takes `url` (HTTP) or `command` (stdio), one of them"));
        }
        (Some(url), None) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("tools.{name}.url: an http:// or https:// URL, got {url:?}"));
            }
            if tool.args.is_some() || tool.env.is_some() {
                return Err(format!("tools.{name}: `args` and `env` are for a stdio server (`command`)"));
            }
        }
        (None, Some(command)) => {
            if command.is_empty() || command.contains('\0') {
                return Err(format!("tools.{name}.command: {command:?} is not a program"));
            }
            if tool.headers.is_some() {
                return Err(format!("tools.{name}.headers: for an HTTP server (`url`)"));
            }
        }
    }
    if matches!(tool.tools, Some(super::ToolTools::Map(_))) {
        return Err(format!("tools.{name}.tools: an MCP server's `tools` is a list of its tool names"));
    }
    Ok(())
}

/// `executor.auth`: `type: provider` names a stored credential and holds no key; the other kinds name none.
fn check_auth(auth: &super::Auth) -> Result<(), String> {
    match (auth.kind, &auth.name) {
        (super::AuthKind::Provider, None) => {
            Err("executor.auth: type provider needs `name`, a stored credential (`omnigent auth set NAME`)".into())
        }
        (super::AuthKind::Provider, Some(name)) => {
            crate::ids::check_credential_name(name).map_err(|e| format!("executor.auth.name: {e}"))?;
            match auth.api_key {
                Some(_) => Err("executor.auth: type provider takes `name`, not `api_key`".into()),
                None => Ok(()),
            }
        }
        (_, Some(_)) => Err("executor.auth.name is for type provider (a stored credential)".into()),
        (_, None) => match auth.api_key.as_deref() {
            Some(key) if key.chars().any(char::is_control) || key.len() > 4096 => {
                Err("executor.auth.api_key must be one line of at most 4096 bytes".into())
            }
            _ => Ok(()),
        },
    }
}
