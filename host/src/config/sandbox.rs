//! `os_env.sandbox`: how a session's builtin tools are confined (Omnigent's keys and meanings, where we act on
//! them). The server turns it into a confinement for each turn (`crate::sandbox`).

use serde::{Deserialize, Serialize};

/// Which sandbox runs the builtin tools.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SandboxKind {
    /// Bubblewrap when the server can run it, else none (said once per session).
    #[default]
    Auto,
    /// Bubblewrap, or the tool fails with the reason.
    LinuxBwrap,
    /// No sandbox: the shell runs with the server's rights; file tools still keep to their roots.
    None,
    /// macOS's Seatbelt (Omnigent's): refused on this server, which runs on Linux.
    DarwinSeatbelt,
    /// Windows job objects (Omnigent's): refused on this server.
    WindowsJobobject,
}

impl SandboxKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxKind::Auto => "auto",
            SandboxKind::LinuxBwrap => "linux_bwrap",
            SandboxKind::None => "none",
            SandboxKind::DarwinSeatbelt => "darwin_seatbelt",
            SandboxKind::WindowsJobobject => "windows_jobobject",
        }
    }
}

/// A `write_paths` entry: a path, or Omnigent's `{path, copy_on_write}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum WritePath {
    Path(String),
    Grant {
        path: String,
        #[serde(default)]
        copy_on_write: bool,
    },
}

impl WritePath {
    pub fn path(&self) -> &str {
        match self {
            WritePath::Path(p) | WritePath::Grant { path: p, .. } => p,
        }
    }
}

/// `os_env.sandbox`. Relative paths are relative to the session's working directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    #[serde(rename = "type", default)]
    pub kind: SandboxKind,
    /// Writable roots. Absent in a written `sandbox:` means none — the working directory is then read-only, as in
    /// Omnigent; `["."]` makes it writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_paths: Option<Vec<WritePath>>,
    /// Readable roots besides the working directory and the system's programs and libraries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_paths: Option<Vec<String>>,
    /// Single writable files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_files: Option<Vec<String>>,
    /// Network access from the sandbox (default: allowed, as in Omnigent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_network: Option<bool>,
    /// Names of this server's environment variables passed into the sandbox (by default only a few harmless
    /// ones — PATH, LANG, TZ… — so the server's keys are never readable by a tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_passthrough: Option<Vec<String>>,
    /// Paths hidden inside the sandbox even where a root would show them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_paths: Option<Vec<String>>,
    /// Omnigent's egress proxy rules: refused (this server has no egress proxy; use `allow_network`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_rules: Option<serde_json::Value>,
}

impl SandboxSpec {
    /// What a session without `os_env.sandbox` gets: bubblewrap when available, the working directory writable,
    /// the network allowed — the tools work as they would unconfined, but see nothing of the server's.
    pub fn default_for_session() -> SandboxSpec {
        SandboxSpec {
            kind: SandboxKind::Auto,
            write_paths: Some(vec![WritePath::Path(".".into())]),
            allow_network: Some(true),
            ..SandboxSpec::default()
        }
    }

    pub fn allows_network(&self) -> bool {
        self.allow_network.unwrap_or(true)
    }

    /// The checks that need no machine: what this server cannot honour is refused rather than ignored.
    pub(super) fn validate(&self) -> Result<(), String> {
        match self.kind {
            SandboxKind::DarwinSeatbelt | SandboxKind::WindowsJobobject => {
                return Err(format!(
                    "os_env.sandbox.type {} is not available on this server (Linux): use auto, linux_bwrap or none",
                    self.kind.as_str()
                ));
            }
            SandboxKind::None if self.allow_network == Some(false) => {
                return Err("os_env.sandbox: type none cannot restrict the network (allow_network: false needs \
                            linux_bwrap or auto)"
                    .into());
            }
            _ => {}
        }
        if self.egress_rules.is_some() {
            return Err("os_env.sandbox.egress_rules: this server has no egress proxy; use allow_network".into());
        }
        if self.write_paths.iter().flatten().any(|w| matches!(w, WritePath::Grant { copy_on_write: true, .. })) {
            return Err("os_env.sandbox.write_paths: copy_on_write is not supported by this server".into());
        }
        let paths = self
            .write_paths
            .iter()
            .flatten()
            .map(WritePath::path)
            .chain(self.read_paths.iter().flatten().map(String::as_str))
            .chain(self.write_files.iter().flatten().map(String::as_str))
            .chain(self.mask_paths.iter().flatten().map(String::as_str));
        for path in paths {
            if path.is_empty() || path.contains('\0') {
                return Err(format!("os_env.sandbox: {path:?} is not a path"));
            }
        }
        for name in self.env_passthrough.iter().flatten() {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!("os_env.sandbox.env_passthrough: {name:?} is not a variable name"));
            }
        }
        Ok(())
    }
}
