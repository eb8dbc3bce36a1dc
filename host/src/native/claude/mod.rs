//! Claude Code as a session's CLI: started in the session's tmux server with our hooks, a session id of our
//! choosing (so the transcript's path is known before launch), and its conversation resumed when it starts again.

pub mod deliver;
pub mod hooks;
pub mod launch;
pub mod screen;
pub mod transcript;
pub mod turn;

use std::path::{Path, PathBuf};

use super::bridge::{Bridge, Running};
use super::tmux::Launch;
use super::{NativeError, Natives};
use crate::config::SessionConfig;
use launch::ClaudeHome;

/// The terminal's size until a viewer resizes it.
pub const COLS: u16 = 120;
pub const ROWS: u16 = 40;

/// The CLI's session id: made once, kept in the folder (a restart resumes the same conversation).
fn claude_session_id(bridge: &Bridge) -> Result<String, NativeError> {
    let path = bridge.dir.join("claude-session-id");
    if let Ok(id) = std::fs::read_to_string(&path)
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_string());
    }
    let id = uuid_v4();
    crate::private_files::write_private(&path, id.as_bytes())
        .map_err(NativeError::io("writing the CLI's session id"))?;
    Ok(id)
}

/// Makes sure Claude runs: adopts a live one, or starts it (resuming its conversation if it had one).
/// Called by [`Natives::ensure`], which holds the launch lock and has prepared the folder.
pub(super) async fn ensure(
    bridge: &Bridge,
    natives: &Natives,
    config: &SessionConfig,
    cwd: &Path,
) -> Result<Running, NativeError> {
    let session_id = claude_session_id(bridge)?;
    let home = ClaudeHome::of(&bridge.dir, config)?;
    let transcript = home.transcript(cwd, &session_id);
    if bridge.tmux.alive().await {
        match bridge.tmux.pane().await {
            Ok(pane) if !pane.dead => return Ok(Running { transcript, fresh: false }),
            _ => {
                tracing::info!(session = %bridge.session, "the CLI's pane is dead; starting it again");
                bridge.tmux.kill().await;
            }
        }
    }
    let program = cli_path(config)?;
    home.trust(cwd)?;
    let settings = launch::settings(&bridge.dir, natives.hook_exe(), config)?;
    let resume = transcript.exists();
    let args = launch::arguments(&settings, &session_id, resume, config);
    let env = launch::environment(&home, config);
    tracing::info!(session = %bridge.session, cli = %program.display(), cwd = %cwd.display(), resume, "starting Claude Code");
    bridge.tmux.start("main", Launch { cwd, env, program: &program, args }, COLS, ROWS).await?;
    Ok(Running { transcript, fresh: true })
}

/// The CLI to run: the config's `cli_path`, else `OMNIGENT_CLAUDE_PATH`, else `claude` on the PATH.
fn cli_path(config: &SessionConfig) -> Result<PathBuf, NativeError> {
    super::find_cli(config, "OMNIGENT_CLAUDE_PATH", "claude", "Claude Code", "npm install -g @anthropic-ai/claude-code")
}

/// A random (version 4) UUID, as Claude's `--session-id` wants.
fn uuid_v4() -> String {
    let mut n = rand::random::<u128>();
    n = (n & !(0xf << 76)) | (0x4 << 76);
    n = (n & !(0x3 << 62)) | (0x2 << 62);
    let h = format!("{n:032x}");
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids_are_v4_uuids() {
        let id = super::uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!("89ab".contains(&id[19..20]), "{id}");
    }
}
