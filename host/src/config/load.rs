//! Reading a session config: YAML with `${VAR}` expansion and `file:line:column` errors, JSON from the API, the
//! server's policies file.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{ConfigError, MAX_CONFIG_BYTES, OsEnv, SessionConfig};

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
        check_nesting(&text).map_err(|(at, message)| err(Some(line_col(&text, at)), message))?;
        let config: SessionConfig = serde_norway::from_str(&text).map_err(|e| yaml_error(e, origin))?;
        config.validate().map_err(|m| err(None, m))?;
        Ok(config)
    }

    /// A config sent as YAML text over the API (the web UI's "paste a config"): parsed as `omnigent run -f` parses
    /// a file, except that `${VAR}` is not expanded from the server's environment — a client must not read the
    /// server's variables into a prompt. (An `executor.auth.api_key: ${VAR}` reference still resolves at each turn,
    /// as for any stored config.) The result goes through [`SessionConfig::from_json`] like any `config`.
    pub fn yaml_from_client(text: &str) -> Result<Value, ConfigError> {
        let err = |position, message: String| ConfigError { origin: "config_yaml".into(), position, message };
        if text.len() > MAX_CONFIG_BYTES {
            return Err(err(None, format!("the config is larger than {} bytes", MAX_CONFIG_BYTES)));
        }
        check_nesting(text).map_err(|(at, message)| err(Some(line_col(text, at)), message))?;
        serde_norway::from_str(text).map_err(|e| yaml_error(e, "config_yaml"))
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
        let text =
            read_text(path).map_err(|message| ConfigError { origin: origin.clone(), position: None, message })?;
        let mut config = Self::from_yaml(&text, &origin)?;
        // `session.yaml` has the parent "": the current directory.
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
        let cwd = config.os_env.as_ref().and_then(|o| o.cwd.clone()).unwrap_or_else(|| ".".into());
        let resolved = base.join(&cwd);
        config.os_env.get_or_insert_with(OsEnv::default).cwd =
            Some(std::fs::canonicalize(&resolved).unwrap_or(resolved).display().to_string());
        for tool in config.tools.values_mut().filter(|t| t.kind == super::ToolKind::Skill) {
            if let Some(path) = tool.path.as_mut().filter(|p| !Path::new(p.as_str()).is_absolute()) {
                *path = base.join(&*path).display().to_string();
            }
        }
        if config.executor.harness.ends_with(".wasm") && !Path::new(&config.executor.harness).is_absolute() {
            config.executor.harness = base.join(&config.executor.harness).display().to_string();
        }
        for decl in config.policies.iter_mut().flat_map(|p| p.0.iter_mut().map(|(_, d)| d)) {
            if let Some(component) = decl.component.as_mut().filter(|c| !Path::new(c.as_str()).is_absolute()) {
                *component = base.join(&*component).display().to_string();
            }
        }
        Ok(config)
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
    let text = read_text(path).map_err(err)?;
    let text = expand_env(&text).map_err(|(var, at)| ConfigError {
        origin: origin.clone(),
        position: Some(line_col(&text, at)),
        message: format!("environment variable {var} is not set (used as ${{{var}}})"),
    })?;
    check_nesting(&text).map_err(|(at, message)| ConfigError {
        origin: origin.clone(),
        position: Some(line_col(&text, at)),
        message,
    })?;
    let file: ServerFile = serde_norway::from_str(&text).map_err(|e| yaml_error(e, &origin))?;
    for (name, decl) in &file.policies.0 {
        decl.validate(name).map_err(err)?;
    }
    Ok(file.policies)
}

/// Deepest nesting a config may have: far beyond any real config, and short of where the YAML parser's time grows
/// with the square of the depth.
const MAX_NESTING: usize = 64;

/// Refuses YAML nested deeper than [`MAX_NESTING`] — flow collections (`[`, `{`) or indentation — before the
/// parser sees it. Returns the byte offset where the limit is passed.
fn check_nesting(text: &str) -> Result<(), (usize, String)> {
    let too_deep = |at| Err((at, format!("the YAML is nested deeper than {MAX_NESTING} levels")));
    let (mut depth, mut quote, mut comment, mut line_start) = (0usize, None, false, true);
    let mut indent = 0;
    let mut prev = ' ';
    for (at, c) in text.char_indices() {
        if c == '\n' {
            (comment, line_start, indent) = (false, true, 0);
            prev = c;
            continue;
        }
        if line_start {
            if c == ' ' {
                indent += 1;
                // Two spaces a level is the narrowest indentation anyone writes.
                if indent > 2 * MAX_NESTING {
                    return too_deep(at);
                }
                continue;
            }
            line_start = false;
        }
        match (quote, c) {
            _ if comment => {}
            (Some('"'), '"') if prev != '\\' => quote = None,
            (Some('\''), '\'') => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if prev.is_whitespace() => comment = true,
            (None, '[' | '{') => {
                depth += 1;
                if depth > MAX_NESTING {
                    return too_deep(at);
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    Ok(())
}

/// A config file's text: a regular file of at most `MAX_CONFIG_BYTES`, in UTF-8.
fn read_text(path: &Path) -> Result<String, String> {
    use crate::regular_file::ReadError;
    let bytes = crate::regular_file::read(path, MAX_CONFIG_BYTES as u64).map_err(|e| match e {
        // The path prefixes every config error already.
        ReadError::Io { source, .. } => format!("cannot read: {source}"),
        ReadError::NotRegular { kind, .. } => {
            format!("not a regular file (it is {kind}); give the path of a YAML file")
        }
        ReadError::TooLarge { limit, .. } => format!("larger than {limit} bytes"),
        ReadError::TimedOut { .. } => e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_string())
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
        let reference = &rest[start..start + 3 + len];
        if valid && is_key_reference(text, offset + start, offset + start + reference.len()) {
            // Kept as written, and resolved when a turn needs the key: the config never holds the secret.
            let quoted = matches!(text[..offset + start].chars().last(), Some('"' | '\''));
            if quoted {
                out.push_str(reference);
            } else {
                out.push_str(&format!("\"{reference}\""));
            }
        } else if valid {
            let value = std::env::var(var).map_err(|_| (var.to_string(), offset + start))?;
            out.push_str(&value);
        } else {
            out.push_str(reference);
        }
        offset += start + 3 + len;
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether the `${VAR}` at `text[start..end]` is the whole value of an `api_key` (`apiKey`) key — quoted or not,
/// in block or flow style. Such a reference is not expanded (see `crate::credentials`).
fn is_key_reference(text: &str, start: usize, end: usize) -> bool {
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..start];
    let (before, quote) = match before.chars().last() {
        Some(q @ ('"' | '\'')) => (&before[..before.len() - 1], Some(q)),
        _ => (before, None),
    };
    let Some(key) = before.trim_end().strip_suffix(':') else { return false };
    let key = key.trim_end().trim_end_matches(['"', '\'']);
    let Some(prefix) = key.strip_suffix("api_key").or_else(|| key.strip_suffix("apiKey")) else { return false };
    if prefix.chars().last().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
        return false;
    }
    let mut after = &text[end..];
    if let Some(q) = quote {
        match after.strip_prefix(q) {
            Some(rest) => after = rest,
            None => return false,
        }
    }
    let after = after.trim_start_matches([' ', '\t']);
    after.is_empty() || after.starts_with(['\n', '\r', ',', '}', '#'])
}

#[cfg(test)]
mod tests {
    use crate::config::*;

    const GOOD: &str = "name: helper\nprompt: Be brief.\nexecutor:\n  harness: agent\n  model: gpt-4o-mini\n  auth: {type: api_key, api_key: sk-test}\ntools:\n  shell: {type: builtin}\n";

    #[test]
    fn mcp_servers_and_skills_are_checked_before_any_session_runs() {
        let with = |tools: &str| SessionConfig::from_yaml(&format!("{GOOD}{tools}"), "a.yaml").map(|_| ());
        assert!(with("  gh: {type: mcp, url: \"https://example.test/mcp\", headers: {X: y}, tools: [a]}\n").is_ok());
        assert!(with("  fs: {type: mcp, command: npx, args: [-y, x], env: {A: b}, tool_name: read}\n").is_ok());
        let err = |tools: &str| with(tools).unwrap_err().to_string();
        assert!(err("  gh: {type: mcp}\n").contains("`url` (HTTP) or `command` (stdio)"));
        assert!(err("  gh: {type: mcp, url: x, command: y}\n").contains("one of them"));
        assert!(err("  gh: {type: mcp, url: \"ftp://x\"}\n").contains("http:// or https://"));
        assert!(err("  a__b: {type: mcp, command: x}\n").contains("without '__'"));
        assert!(err("  gh: {type: mcp, url: \"http://x\", args: [a]}\n").contains("for a stdio server"));
        assert!(err("  shell: {type: builtin, url: \"http://x\"}\n").contains("is for an MCP server"));
        assert!(err("  r: {type: skill}\n").contains("`path` or `content`"));
        assert!(err("  r: {type: skill, content: \"no description\"}\n").contains("needs a description"));
        assert!(
            err("  r: {type: skill, path: x}\n  load_skill: {type: skill, path: y}\n").contains("taken by the skills")
        );
        let filtered = |names: &str| {
            SessionConfig::from_yaml(&format!("{GOOD}  r: {{type: skill, path: x}}\nskills: {names}\n"), "a.yaml")
        };
        assert!(filtered("[r]").is_ok() && filtered("none").is_ok());
        assert!(filtered("[rr]").unwrap_err().to_string().contains("\"rr\" is not the key of a `type: skill` tool"));
    }

    #[test]
    fn parses_omnigent_single_file_yaml() {
        let c = SessionConfig::from_yaml(GOOD, "a.yaml").unwrap();
        assert_eq!(c.name, "helper");
        assert_eq!(c.system_prompt(), Some("Be brief."));
        assert_eq!(c.provider(), ProviderKind::Openai);
        assert!(c.tools.contains_key("shell"));
    }

    #[test]
    fn a_model_only_the_responses_wire_serves_picks_it() {
        let with = |model: &str, extra: &str| {
            let text = format!("name: x\nexecutor:\n  harness: agent\n  model: {model}\n{extra}");
            SessionConfig::from_yaml(&text, "a.yaml").unwrap().provider()
        };
        assert_eq!(with("o3-pro", ""), ProviderKind::OpenaiResponses);
        assert_eq!(with("gpt-5-codex", "  auth: {type: openai}\n"), ProviderKind::OpenaiResponses);
        assert_eq!(with("codex-mini-latest", ""), ProviderKind::OpenaiResponses);
        assert_eq!(with("gpt-5", ""), ProviderKind::Openai);
        assert_eq!(with("o3-pro", "  provider: openai\n"), ProviderKind::Openai, "a provider named wins");
    }

    #[test]
    fn unknown_keys_are_reported_with_line_and_column() {
        let text = "name: x\nexecutor:\n  harness: agent\n  modle: gpt\n";
        let e = SessionConfig::from_yaml(text, "s.yaml").unwrap_err().to_string();
        assert!(e.starts_with("s.yaml:4:3: "), "{e}");
        assert!(e.contains("unknown field `modle`") && e.contains("expected one of"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_at_once() {
        let deep = format!("name: x\nexecutor: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        // Refused by the nesting check, before the parser (whose time grows with the square of the depth) runs.
        let err = SessionConfig::from_yaml(&deep, "deep.yaml").unwrap_err().to_string();
        assert!(err.contains("nested deeper than 64 levels") && err.starts_with("deep.yaml:2:"), "{err}");
        let indented: String = (0..200).map(|i| format!("{}k{i}:\n", " ".repeat(i * 2))).collect();
        assert!(SessionConfig::from_yaml(&indented, "i.yaml").unwrap_err().to_string().contains("nested deeper"));
        // Brackets in strings and comments do not count.
        let fine = format!("name: \"{}\"  # {}\nexecutor: {{harness: agent}}\n", "[".repeat(100), "{".repeat(100));
        assert!(SessionConfig::from_yaml(&fine, "f.yaml").is_ok());
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
        unsafe { std::env::set_var("OMNIGENT_TEST_MODEL_X1", "gpt-from-env") };
        let text = GOOD.replace("gpt-4o-mini", "${OMNIGENT_TEST_MODEL_X1}");
        let c = SessionConfig::from_yaml(&text, "a.yaml").unwrap();
        assert_eq!(c.executor.model.as_deref(), Some("gpt-from-env"));
        let text = GOOD.replace("gpt-4o-mini", "${OMNIGENT_SURELY_UNSET_VAR}");
        let e = SessionConfig::from_yaml(&text, "a.yaml").unwrap_err().to_string();
        assert!(e.starts_with("a.yaml:5:") && e.contains("OMNIGENT_SURELY_UNSET_VAR is not set"), "{e}");
    }

    #[test]
    fn a_key_reference_is_kept_for_the_server_to_resolve_not_expanded() {
        // SAFETY: a variable name private to this test.
        unsafe { std::env::set_var("OMNIGENT_TEST_KEY_X1", "sk-from-env") };
        let forms = [
            "  auth: {type: api_key, api_key: ${OMNIGENT_TEST_KEY_X1}}\n",
            "  auth: {type: api_key, api_key: \"${OMNIGENT_TEST_KEY_X1}\", base_url: \"http://x\"}\n",
            "  auth:\n    type: api_key\n    api_key: ${OMNIGENT_TEST_KEY_X1}   # the key\n",
            "  auth:\n    type: api_key\n    \"api_key\": '${OMNIGENT_TEST_KEY_X1}'\n",
        ];
        for form in forms {
            let text = GOOD.replace("  auth: {type: api_key, api_key: sk-test}\n", form);
            let c = SessionConfig::from_yaml(&text, "a.yaml").unwrap_or_else(|e| panic!("{form}: {e}"));
            let auth = c.executor.auth.unwrap();
            assert_eq!(auth.api_key.as_deref(), Some("${OMNIGENT_TEST_KEY_X1}"), "{form}");
            assert_eq!(auth.key_reference(), Some("OMNIGENT_TEST_KEY_X1"));
        }
        // Even when the variable is not set here: the server resolves it (or says it cannot).
        let text = GOOD.replace("sk-test", "${OMNIGENT_SURELY_UNSET_VAR}");
        assert!(SessionConfig::from_yaml(&text, "a.yaml").is_ok());
        // A reference inside a longer value, or under another key, still expands.
        let text = GOOD.replace("sk-test", "prefix-${OMNIGENT_TEST_KEY_X1}");
        let c = SessionConfig::from_yaml(&text, "a.yaml").unwrap();
        assert_eq!(c.executor.auth.unwrap().api_key.as_deref(), Some("prefix-sk-from-env"));
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
