//! Builtin tools a session config can enable: `shell`, `read_file`, `write_file`, `list_dir`. They run on the
//! host, in the session's working directory, with a timeout and an output cap. User text never goes through a
//! shell other than the `shell` tool's own `sh -c`, which is the tool.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::config::ToolConfig;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MAX_OUTPUT: usize = 64 * 1024;
const MAX_READ_BYTES: u64 = 8 << 20;

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
pub async fn run(name: &str, config: &ToolConfig, arguments: &str, cwd: &Path) -> Result<String, String> {
    let args: Value = serde_json::from_str(arguments).map_err(|e| format!("arguments are not valid JSON: {e}"))?;
    let max_output = config.max_output_bytes.unwrap_or(DEFAULT_MAX_OUTPUT);
    let str_arg =
        |key: &str| args.get(key).and_then(Value::as_str).ok_or_else(|| format!("missing string argument '{key}'"));
    match name {
        "shell" => {
            let timeout = config.timeout_s.map(Duration::from_secs).unwrap_or(DEFAULT_TIMEOUT);
            shell(str_arg("command")?, cwd, timeout, max_output).await
        }
        "read_file" => {
            let path = resolve(cwd, str_arg("path")?);
            let meta = tokio::fs::metadata(&path).await.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if meta.len() > MAX_READ_BYTES {
                return Err(format!("{} is {} bytes; the limit is {MAX_READ_BYTES}", path.display(), meta.len()));
            }
            let bytes = tokio::fs::read(&path).await.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Ok(cap(String::from_utf8_lossy(&bytes).into_owned(), max_output))
        }
        "write_file" => {
            let path = resolve(cwd, str_arg("path")?);
            let content = str_arg("content")?;
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            tokio::fs::write(&path, content).await.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(format!("wrote {} bytes to {}", content.len(), path.display()))
        }
        "list_dir" => {
            let path = resolve(cwd, args.get("path").and_then(Value::as_str).unwrap_or("."));
            let mut dir =
                tokio::fs::read_dir(&path).await.map_err(|e| format!("cannot list {}: {e}", path.display()))?;
            let mut names = Vec::new();
            while let Ok(Some(entry)) = dir.next_entry().await {
                let mut name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                    name.push('/');
                }
                names.push(name);
            }
            names.sort();
            Ok(cap(names.join("\n"), max_output))
        }
        other => Err(format!("no builtin tool '{other}'")),
    }
}

fn resolve(cwd: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { cwd.join(p) }
}

/// Keeps at most `max` bytes (on a char boundary) and says how much was cut.
fn cap(mut s: String, max: usize) -> String {
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

async fn shell(command: &str, cwd: &Path, timeout: Duration, max_output: usize) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(command).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.process_group(0).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start sh in {}: {e}", cwd.display()))?;
    let pgid = child.id();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    // Read at most a little more than the cap; the rest is drained and dropped so the child never blocks.
    let read = |mut r: Box<dyn tokio::io::AsyncRead + Unpin + Send>| async move {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        let mut total = 0usize;
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            total += n;
            if kept.len() < max_output + 1 {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        (kept, total)
    };
    let work = async {
        let (out, err, status) = tokio::join!(read(Box::new(stdout)), read(Box::new(stderr)), child.wait());
        (out, err, status)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((out, err, status)) => {
            let code = status.map(|s| s.code().map(|c| c.to_string()).unwrap_or_else(|| "killed by a signal".into()));
            let code = code.map_err(|e| format!("waiting for the command failed: {e}"))?;
            let text = |(bytes, total): (Vec<u8>, usize)| {
                let s = cap(String::from_utf8_lossy(&bytes).into_owned(), max_output);
                if total > bytes.len() { format!("{s}\n… [{total} bytes in all]") } else { s }
            };
            Ok(format!("exit code: {code}\nstdout:\n{}\nstderr:\n{}", text(out), text(err)))
        }
        Err(_) => {
            if let Some(pid) = pgid {
                // The whole process group: sh and whatever it started.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            }
            Err(format!("the command did not finish within {}s and was killed", timeout.as_secs()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(timeout_s: Option<u64>, max: Option<usize>) -> ToolConfig {
        ToolConfig {
            kind: crate::config::ToolKind::Builtin,
            description: None,
            parameters: None,
            runtime: None,
            callable: None,
            timeout_s,
            max_output_bytes: max,
            prompt: None,
            executor: None,
            tools: None,
        }
    }

    #[tokio::test]
    async fn shell_runs_in_the_working_directory_and_reports_exit_codes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("marker.txt"), "x").unwrap();
        let out =
            run("shell", &cfg(None, None), r#"{"command": "ls; echo oops >&2; exit 3"}"#, dir.path()).await.unwrap();
        assert!(out.contains("exit code: 3") && out.contains("marker.txt") && out.contains("oops"), "{out}");
    }

    #[tokio::test]
    async fn shell_is_killed_at_its_timeout_and_output_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let err = run("shell", &cfg(Some(1), None), r#"{"command": "sleep 30"}"#, dir.path()).await.unwrap_err();
        assert!(err.contains("did not finish within 1s"), "{err}");
        let out =
            run("shell", &cfg(None, Some(100)), r#"{"command": "yes | head -c 100000"}"#, dir.path()).await.unwrap();
        assert!(out.contains("output truncated") && out.len() < 400, "{out}");
    }

    #[tokio::test]
    async fn file_tools_round_trip_and_errors_are_readable() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(None, None);
        run("write_file", &c, r#"{"path": "sub/a.txt", "content": "hello"}"#, dir.path()).await.unwrap();
        assert_eq!(run("read_file", &c, r#"{"path": "sub/a.txt"}"#, dir.path()).await.unwrap(), "hello");
        assert_eq!(run("list_dir", &c, r#"{}"#, dir.path()).await.unwrap(), "sub/");
        let err = run("read_file", &c, r#"{"path": "nope.txt"}"#, dir.path()).await.unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        let err = run("read_file", &c, r#"{"file": "x"}"#, dir.path()).await.unwrap_err();
        assert!(err.contains("missing string argument 'path'"), "{err}");
        let err = run("shell", &c, "not json", dir.path()).await.unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
