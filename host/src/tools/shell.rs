//! The `shell` tool: `sh -c` in the session's sandbox (or unconfined when it has none), killed with everything it
//! started at its timeout, its output capped without ever blocking the command.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::cap;
use crate::sandbox::Confinement;

/// Runs `sh -c command` in the session's confinement. Exit code, stdout and stderr (each capped) are the output.
pub(super) async fn run(
    command: &str,
    place: &Confinement,
    timeout: Duration,
    max_output: usize,
) -> Result<String, String> {
    let mut cmd = place.command("sh", &["-c", command]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.process_group(0).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start sh in {}: {e}", place.cwd.display()))?;
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
