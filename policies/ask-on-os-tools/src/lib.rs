//! Asks a human before the agent touches the operating system: shell commands and file writes (optionally reads
//! too). Omnigent's `omnigent.policies.builtins.safety.ask_on_os_tools`, with the tool names of our builtins and of
//! Claude Code, Codex and Omnigent's `sys_os_*` tools.

use omnigent_policy::*;

struct AskOnOsTools;

const WRITES: &[&str] = &[
    "shell",
    "write_file",
    "sys_os_shell",
    "sys_os_write_file",
    "sys_os_edit_file",
    "Bash",
    "Write",
    "Edit",
    "MultiEdit",
    "NotebookEdit",
    "apply_patch",
    "exec_command",
    "shell_command",
    "local_shell",
];
const READS: &[&str] = &["read_file", "list_dir", "sys_os_read_file", "sys_os_list_dir", "Read", "Glob", "Grep", "LS"];

impl Guest for AskOnOsTools {
    fn describe() -> Descriptor {
        Descriptor {
            name: "ask_on_os_tools".into(),
            description: "Ask a human before shell commands and file writes (and, with include_reads, file reads).".into(),
            params_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "tools": {"type": "array", "items": {"type": "string"}, "description": "Tool names to ask about instead of the default list (a trailing * matches a prefix)"},
                "include_reads": {"type": "boolean", "default": false, "description": "Also ask before file reads and listings"}
            }}).to_string(),
        }
    }

    fn init(params: String) -> Result<(), String> {
        let p = init_params(&params)?;
        only_keys(p, &["tools", "include_reads"])?;
        string_list(p, "tools", &[])?;
        if p.get("include_reads").is_some_and(|v| !v.is_boolean()) {
            return Err("include_reads must be true or false".into());
        }
        Ok(())
    }

    fn evaluate(event: Event) -> Decision {
        let Some(tool) = event.tool_call() else { return abstain() };
        let p = params();
        let custom = string_list(p, "tools", &[]).unwrap_or_default();
        let guarded = if custom.is_empty() {
            let mut names: Vec<String> = WRITES.iter().map(|s| s.to_string()).collect();
            if p.get("include_reads").and_then(Value::as_bool) == Some(true) {
                names.extend(READS.iter().map(|s| s.to_string()));
            }
            names
        } else {
            custom
        };
        if !guarded.iter().any(|g| matches(g, tool)) {
            return abstain();
        }
        let args = event.json().get("arguments").cloned().unwrap_or(Value::Null);
        ask(format!("The agent wants to run the OS tool '{tool}': {}. Allow it?", preview(&args, 300)))
    }
}

omnigent_policy::export_policy!(AskOnOsTools);
