//! Builtin tools a session config can enable: `shell`, `read_file`, `write_file`, `list_dir`. They run in the
//! session's confinement (`crate::sandbox`): the shell in its sandbox, the file tools within its roots — with a
//! timeout and an output cap. User text never goes through a shell other than the `shell` tool's own `sh -c`,
//! which is the tool.

mod files;
mod shell;

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::ToolConfig;
use crate::sandbox::Confinement;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_OUTPUT: usize = 64 * 1024;

/// The JSON schema and description the model sees for a builtin.
pub fn spec(name: &str) -> (&'static str, Value) {
    match name {
        "shell" => (
            "Run a shell command (sh -c) in the session's working directory. Returns exit code, stdout and stderr.",
            json!({"type": "object", "properties": {"command": {"type": "string", "description": "The command line"}}, "required": ["command"]}),
        ),
        "read_file" => (
            "Read a text file. Relative paths are relative to the session's working directory.",
            json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        ),
        "write_file" => (
            "Write (create or replace) a text file. Relative paths are relative to the session's working directory.",
            json!({"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}, "required": ["path", "content"]}),
        ),
        "list_dir" => (
            "List a directory's entries (directories end with /).",
            json!({"type": "object", "properties": {"path": {"type": "string", "description": "Default: the working directory"}}}),
        ),
        _ => ("", json!({"type": "object"})),
    }
}

/// Runs a builtin. Ok is the output for the model; Err is an error message for the model.
pub async fn run(name: &str, config: &ToolConfig, arguments: &str, place: &Confinement) -> Result<String, String> {
    let args: Value = serde_json::from_str(arguments).map_err(|e| format!("arguments are not valid JSON: {e}"))?;
    let max_output = config.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT);
    let str_arg =
        |key: &str| args.get(key).and_then(Value::as_str).ok_or_else(|| format!("missing string argument '{key}'"));
    match name {
        "shell" => {
            let timeout = config.timeout_s.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT);
            shell::run(str_arg("command")?, place, timeout, max_output).await
        }
        "read_file" => files::read(place, str_arg("path")?, max_output).await,
        "write_file" => files::write(place, str_arg("path")?, str_arg("content")?).await,
        "list_dir" => files::list(place, args.get("path").and_then(Value::as_str).unwrap_or("."), max_output).await,
        other => Err(format!("no builtin tool '{other}'")),
    }
}

/// Keeps at most `max` bytes (on a char boundary) and says how much was cut.
pub(crate) fn cap(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let total = s.len();
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(&format!("\n… [output truncated: {total} bytes, showing the first {cut}]"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here(dir: &tempfile::TempDir) -> Confinement {
        Confinement::unconfined(dir.path())
    }

    fn cfg(timeout_s: Option<u64>, max: Option<usize>) -> ToolConfig {
        ToolConfig { kind: crate::config::ToolKind::Builtin, timeout_s, max_output_bytes: max, ..ToolConfig::default() }
    }

    #[tokio::test]
    async fn shell_runs_in_the_working_directory_and_reports_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("marker.txt"), "x").unwrap();
        let out =
            run("shell", &cfg(None, None), r#"{"command": "ls; echo oops >&2; exit 3"}"#, &here(&dir)).await.unwrap();
        assert!(out.contains("exit code: 3") && out.contains("marker.txt") && out.contains("oops"), "{out}");
    }

    #[tokio::test]
    async fn shell_is_killed_at_its_timeout_and_output_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let err = run("shell", &cfg(Some(1), None), r#"{"command": "sleep 30"}"#, &here(&dir)).await.unwrap_err();
        assert!(err.contains("did not finish within 1s"), "{err}");
        let out =
            run("shell", &cfg(None, Some(100)), r#"{"command": "yes | head -c 100000"}"#, &here(&dir)).await.unwrap();
        assert!(out.contains("output truncated") && out.len() < 400, "{out}");
    }

    #[tokio::test]
    async fn file_tools_round_trip_and_errors_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(None, None);
        run("write_file", &c, r#"{"path": "sub/a.txt", "content": "hello"}"#, &here(&dir)).await.unwrap();
        assert_eq!(run("read_file", &c, r#"{"path": "sub/a.txt"}"#, &here(&dir)).await.unwrap(), "hello");
        assert_eq!(run("list_dir", &c, r#"{}"#, &here(&dir)).await.unwrap(), "sub/");
        let err = run("read_file", &c, r#"{"path": "nope.txt"}"#, &here(&dir)).await.unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        let err = run("read_file", &c, r#"{"file": "x"}"#, &here(&dir)).await.unwrap_err();
        assert!(err.contains("missing string argument 'path'"), "{err}");
        let err = run("shell", &c, "not json", &here(&dir)).await.unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
