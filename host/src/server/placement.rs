//! Where Omnigent's `POST /v1/sessions` places a session: its workspace, host, harness and CLI arguments — applied
//! to the session's config, or refused with the reason where this server has no such thing.

use super::error::ApiError;
use crate::config::SessionConfig;

/// The placement fields of a create request.
pub struct Placement {
    pub workspace: Option<String>,
    pub host_type: Option<String>,
    pub host_id: Option<String>,
    pub terminal_launch_args: Option<Vec<String>>,
    pub harness: Option<String>,
}

impl Placement {
    /// Whether it changes the session's config (and so needs one).
    pub fn changes_config(&self) -> bool {
        self.workspace.is_some() || self.terminal_launch_args.is_some() || self.harness.is_some()
    }

    /// Only an external host (this server) and no host id: managed sandboxes and hosts do not exist here.
    pub fn check_host(&self) -> Result<(), ApiError> {
        match self.host_type.as_deref() {
            None | Some("external") => {}
            Some("managed") => {
                return Err(ApiError::invalid("host_type managed: this server has no managed sandboxes"));
            }
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "host_type must be external or managed; got '{}'",
                    crate::ids::truncate(other, 40)
                )));
            }
        }
        match &self.host_id {
            Some(_) => Err(ApiError::invalid("host_id: this server has no hosts; it runs its sessions itself")),
            None => Ok(()),
        }
    }

    /// Writes the workspace and the CLI arguments into the config, after checking them.
    pub fn apply(self, config: &mut SessionConfig) -> Result<(), ApiError> {
        if let Some(dir) = self.workspace {
            let path = std::path::Path::new(&dir);
            if !path.is_absolute() || !path.is_dir() {
                return Err(ApiError::invalid(format!(
                    "workspace must be an absolute path to a directory on this machine; got '{}'",
                    crate::ids::truncate(&dir, 200)
                )));
            }
            config.os_env.get_or_insert_with(Default::default).cwd = Some(dir);
        }
        let changes_executor = self.harness.is_some() || self.terminal_launch_args.is_some();
        if let Some(harness) = self.harness {
            config.executor.harness = harness;
        }
        if let Some(args) = self.terminal_launch_args {
            if !config.executor.is_native() {
                return Err(ApiError::invalid(
                    "terminal_launch_args are for native harnesses (claude-native, codex-native)",
                ));
            }
            config.executor.launch_args = args;
        }
        // The changed executor is checked as any config is.
        if changes_executor {
            SessionConfig::from_json(config.to_json())
                .map_err(|e| ApiError::invalid(format!("harness_override / terminal_launch_args: {e}")))?;
        }
        Ok(())
    }
}
