//! A remote viewer of the session's terminal, through tmux control mode (`tmux -C attach`): no pty needed, the
//! pane's output arrives as `%output` lines (octal-escaped bytes), keystrokes go in as `send-keys -H`, and the
//! viewer's size is the control client's size. The WebSocket route relays it; several viewers may watch at once.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::tmux::{TARGET, Tmux, TmuxError};

/// What the viewer receives.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Bytes the terminal printed.
    Bytes(Vec<u8>),
    /// The terminal (or its tmux server) has gone.
    Ended,
}

/// One control-mode client attached to the CLI's window.
pub struct Viewer {
    child: Child,
    input: ChildStdin,
    lines: tokio::io::Lines<BufReader<ChildStdout>>,
}

impl Viewer {
    /// Attaches; a read-only viewer does not resize the window (`ignore-size`).
    pub async fn attach(tmux: &Tmux, read_only: bool) -> Result<Viewer, TmuxError> {
        let mut args = vec!["-S".into(), tmux.socket().as_os_str().to_owned(), "-C".into(), "attach".into()];
        if read_only {
            args.extend(["-f".into(), "ignore-size".into()]);
        }
        args.extend(["-t".into(), TARGET.into()]);
        let mut child = Command::new("tmux")
            .args(&args)
            .env_remove("TMUX")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(
                |e| if e.kind() == std::io::ErrorKind::NotFound { TmuxError::Missing } else { TmuxError::Io(e) },
            )?;
        let input = child.stdin.take().expect("piped");
        let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        Ok(Viewer { child, input, lines })
    }

    /// The next output of the terminal.
    pub async fn next(&mut self) -> Output {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) => {
                    if let Some(rest) = line.strip_prefix("%output ") {
                        // `%output %<pane> <escaped bytes>`
                        let data = rest.split_once(' ').map(|(_, d)| d).unwrap_or_default();
                        return Output::Bytes(unescape(data));
                    }
                    if line.starts_with("%exit")
                        || line.starts_with("%window-close")
                        || line.starts_with("%unlinked-window-close")
                    {
                        return Output::Ended;
                    }
                }
                _ => return Output::Ended,
            }
        }
    }

    /// Types bytes into the terminal as if on its keyboard.
    pub async fn type_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        for chunk in bytes.chunks(512) {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let line = format!("send-keys -t {TARGET} -H {}\n", hex.join(" "));
            self.input.write_all(line.as_bytes()).await?;
        }
        self.input.flush().await
    }

    /// Sizes the window to the viewer.
    pub async fn resize(&mut self, cols: u16, rows: u16) -> std::io::Result<()> {
        let (cols, rows) = (cols.clamp(10, 1000), rows.clamp(5, 1000));
        self.input.write_all(format!("refresh-client -C {cols}x{rows}\n").as_bytes()).await?;
        self.input.flush().await
    }

    pub async fn detach(mut self) {
        let _ = self.input.write_all(b"detach-client\n").await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.child.wait()).await;
    }
}

/// The screen as it is now, as bytes that draw it on a fresh terminal: clear, the rows with their colours,
/// then the cursor where the CLI has it.
pub async fn snapshot(tmux: &Tmux) -> Result<Vec<u8>, TmuxError> {
    let screen = tmux.capture_rows().await?;
    let (x, y) = tmux.cursor().await.unwrap_or((0, 0));
    let mut out = b"\x1b[H\x1b[2J".to_vec();
    out.extend(screen.trim_end_matches('\n').replace('\n', "\r\n").as_bytes());
    out.extend(format!("\x1b[{};{}H", y + 1, x + 1).as_bytes());
    Ok(out)
}

/// Decodes control mode's escaping: `\ooo` octal for control characters and the backslash itself.
fn unescape(data: &str) -> Vec<u8> {
    let bytes = data.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = bytes[i + 1..i + 4].iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn control_mode_escapes_are_decoded() {
        assert_eq!(unescape(r"hi\015\012"), b"hi\r\n");
        assert_eq!(unescape(r"a\134b"), b"a\\b");
        assert_eq!(unescape(r"\033[1mbold"), b"\x1b[1mbold");
        assert_eq!(unescape(r"tail\01"), b"tail\\01");
    }
}
