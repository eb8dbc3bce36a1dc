//! Confining a session's builtin tools (`os_env.sandbox`).
//!
//! The server knows what no tool may see (its data dir, database, credentials), whether bubblewrap runs on this
//! machine, and the operator's `--workspace-root`. From that and a session's config it admits the session (or
//! says why not) and, at each turn, resolves a [`Confinement`]: how the shell tool runs (in bubblewrap, or
//! unconfined) and where the file tools may read and write ([`Reach`]).
//!
//! Defaults: a session without `os_env.sandbox` gets `auto` with its working directory writable and the network
//! allowed — bubblewrap when it runs here, else unconfined with a notice once per session. A written `sandbox:`
//! means what it means in Omnigent (the working directory is read-only unless `write_paths` names it). With
//! `--workspace-root`, every working directory and grant must lie under the root and the tools always run in
//! bubblewrap (a server whose bubblewrap does not work refuses to start with a root).

mod bwrap;
mod reach;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use reach::Reach;

use crate::config::{SandboxKind, SandboxSpec, SessionConfig};
use crate::ids::SessionId;

/// Environment variables a sandboxed tool gets from the server (plus the session's `env_passthrough`): enough for
/// programs to run, none that carries a key.
const PASSED_ENV: [&str; 8] = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ", "USER", "LOGNAME"];

/// How many sessions' fallback notices are remembered.
const MAX_TOLD: usize = 100_000;

/// What the operator decided for every session's tools.
#[derive(Clone, Debug, Default)]
pub struct SandboxOptions {
    /// Paths no tool may see, whatever a session grants: the data dir, the database file.
    pub private_paths: Vec<PathBuf>,
    /// Every session's working directory and grants must lie under this folder, and its tools run in bubblewrap.
    pub workspace_root: Option<PathBuf>,
    /// The bubblewrap program (None: `bwrap` on PATH).
    pub bwrap: Option<PathBuf>,
}

/// The server's side of confinement: built once at start-up.
pub struct Sandbox {
    private: Vec<PathBuf>,
    root: Option<PathBuf>,
    /// The bubblewrap that works here, or why there is none.
    bwrap: Result<PathBuf, String>,
    /// Sessions already told that `auto` fell back to no sandbox.
    told: Mutex<HashSet<SessionId>>,
}

impl Sandbox {
    /// Probes bubblewrap. Err only when a workspace root is set and bubblewrap cannot confine its sessions.
    pub async fn start(options: SandboxOptions) -> Result<Sandbox, String> {
        let bwrap = match options.bwrap.or_else(|| crate::program::on_path("bwrap")) {
            Some(path) => bwrap::probe(&path).await.map(|()| path),
            None => Err("bubblewrap (bwrap) is not installed (apt-get install bubblewrap)".to_string()),
        };
        let root = match options.workspace_root {
            Some(root) => {
                let real =
                    std::fs::canonicalize(&root).map_err(|e| format!("--workspace-root {}: {e}", root.display()))?;
                if let Err(why) = &bwrap {
                    return Err(format!(
                        "--workspace-root confines every session's tools with bubblewrap, which cannot run here: {why}"
                    ));
                }
                Some(real)
            }
            None => None,
        };
        match &bwrap {
            Ok(path) => {
                tracing::info!(bwrap = %path.display(), "builtin tools run in bubblewrap unless a session says type: none")
            }
            Err(why) => {
                tracing::warn!(reason = %why, "bubblewrap is not available: sessions with sandbox auto run their tools unconfined")
            }
        }
        let private =
            options.private_paths.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
        Ok(Sandbox { private, root, bwrap, told: Mutex::default() })
    }

    /// Whether a session with this config may be created here: its working directory and grants under the
    /// workspace root and out of the server's private paths, a sandbox this server can run. A native CLI brings its
    /// own tools: only its working directory is judged.
    pub fn admit(&self, config: &SessionConfig) -> Result<(), String> {
        self.resolve(config).map(|_| ())
    }

    /// The real paths of a config's working directory and grants, once they are admitted.
    fn resolve(&self, config: &SessionConfig) -> Result<Resolved, String> {
        let spec = config.sandbox();
        let given = absolute(&config.work_dir())?;
        let cwd = self.admitted("os_env.cwd", &given)?;
        let mut grants = Vec::new();
        if !config.executor.is_native() {
            let fields: [(&str, bool, Vec<&str>); 3] = [
                ("os_env.sandbox.read_paths", false, spec.read_paths.iter().flatten().map(String::as_str).collect()),
                ("os_env.sandbox.write_paths", true, spec.write_paths.iter().flatten().map(|w| w.path()).collect()),
                ("os_env.sandbox.write_files", true, spec.write_files.iter().flatten().map(String::as_str).collect()),
            ];
            for (field, writable, paths) in fields {
                for path in paths {
                    grants.push((self.admitted(field, &cwd.join(path))?, writable));
                }
            }
            match (spec.kind, &self.bwrap, &self.root) {
                (SandboxKind::None, _, Some(root)) => {
                    return Err(format!(
                        "os_env.sandbox.type none: this server runs every session's tools in its sandbox (workspace \
                         root {})",
                        root.display()
                    ));
                }
                (SandboxKind::LinuxBwrap, Err(why), _) => {
                    return Err(format!("os_env.sandbox.type linux_bwrap: {why}"));
                }
                _ => {}
            }
        }
        Ok(Resolved { spec, cwd, grants })
    }

    /// The real path of `path` (named by `field`) if it lies out of the server's data and under the workspace root.
    fn admitted(&self, field: &str, path: &Path) -> Result<PathBuf, String> {
        let real = reach::real_path(path)?;
        if self.private.iter().any(|p| real.starts_with(p)) {
            return Err(format!("{field} {}: the server's own data lives there", path.display()));
        }
        if let Some(root) = &self.root
            && !real.starts_with(root)
        {
            return Err(format!(
                "{field} {}: this server confines sessions to its workspace root {}",
                path.display(),
                root.display()
            ));
        }
        Ok(real)
    }

    /// How the tools of a turn run. Err: why they cannot (each tool call reports it).
    pub fn confine(&self, config: &SessionConfig) -> Result<Confinement, String> {
        let Resolved { spec, cwd, grants } = self.resolve(config)?;
        let bwrap = match (spec.kind, &self.bwrap) {
            (SandboxKind::None, _) | (_, Err(_)) => None,
            (_, Ok(path)) => Some(path.clone()),
        };
        let mut reach = Reach { hidden: self.private.clone(), ..Reach::default() };
        add(&mut reach.read, cwd.clone());
        for (real, writable) in grants {
            add(&mut reach.read, real.clone());
            if writable {
                add(&mut reach.write, real);
            }
        }
        // Unconfined, the file tools may still write in the working directory (Omnigent's `none`).
        if bwrap.is_none() {
            add(&mut reach.write, cwd.clone());
        }
        for path in spec.mask_paths.iter().flatten() {
            add(&mut reach.hidden, reach::real_path(&cwd.join(path))?);
        }
        Ok(Confinement {
            cwd,
            bwrap,
            reach,
            allow_network: spec.allows_network(),
            env_passthrough: spec.env_passthrough.clone().unwrap_or_default(),
            confined_to_root: self.root.is_some(),
        })
    }

    /// Why a session that asked for `auto` runs its tools unconfined here — the first time it is asked for this
    /// session (in this server's run); None afterwards, or when its tools are sandboxed or `type: none`.
    pub fn fallback_notice(&self, session: &SessionId, config: &SessionConfig) -> Option<String> {
        let Err(why) = &self.bwrap else { return None };
        if config.sandbox().kind == SandboxKind::None {
            return None;
        }
        {
            let mut told = self.told.lock().unwrap();
            // Bounded: past the cap a session may be told twice, which is harmless.
            if told.len() >= MAX_TOLD {
                told.clear();
            }
            if !told.insert(session.clone()) {
                return None;
            }
        }
        tracing::warn!(%session, reason = %why, "os_env.sandbox auto: the session's tools run unconfined");
        Some(format!(
            "os_env.sandbox auto: no sandbox on this server ({why}); this session's tools run with the server's rights"
        ))
    }
}

/// A config's sandbox, and its working directory and grants as real paths (each grant: whether it is writable).
struct Resolved {
    spec: SandboxSpec,
    cwd: PathBuf,
    grants: Vec<(PathBuf, bool)>,
}

/// A turn's confinement of its tools.
#[derive(Clone, Debug)]
pub struct Confinement {
    /// The working directory (its real path).
    pub cwd: PathBuf,
    /// The bubblewrap the shell runs in; None: unconfined.
    bwrap: Option<PathBuf>,
    pub reach: Reach,
    allow_network: bool,
    env_passthrough: Vec<String>,
    /// A workspace root confines the session: nothing outside it is shown, a program's installation included.
    confined_to_root: bool,
}

impl Confinement {
    /// No sandbox, file tools kept to `cwd` (tests of the tools themselves).
    pub fn unconfined(cwd: &Path) -> Confinement {
        let cwd = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
        let reach = Reach { read: vec![cwd.clone()], write: vec![cwd.clone()], hidden: Vec::new() };
        Confinement {
            cwd,
            bwrap: None,
            reach,
            allow_network: true,
            env_passthrough: Vec::new(),
            confined_to_root: false,
        }
    }

    pub fn is_sandboxed(&self) -> bool {
        self.bwrap.is_some()
    }

    /// Where a program given by path is installed, following its symlinks — a venv's `bin/python` leads to the
    /// venv and to the Python it was made from — so the sandbox can show it read-only: each hop's folder, or the
    /// folder above a `bin/`. Never a system folder (already shown), `/`, or anything holding a hidden path.
    fn installation_of(&self, program: &str) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = Vec::new();
        let mut hop = PathBuf::from(program);
        if !hop.is_absolute() {
            return found;
        }
        for _ in 0..8 {
            if let Some(dir) = hop.parent() {
                let dir = if dir.file_name().is_some_and(|n| n == "bin") { dir.parent().unwrap_or(dir) } else { dir };
                let shown = dir.components().count() < 3
                    || bwrap::SYSTEM_DIRS.iter().any(|s| dir.starts_with(s))
                    || self.reach.hidden.iter().any(|h| h.starts_with(dir) || dir.starts_with(h));
                if !shown && !found.iter().any(|f| dir.starts_with(f)) {
                    found.push(dir.to_path_buf());
                }
            }
            match std::fs::read_link(&hop) {
                Ok(next) => hop = hop.parent().map(|p| p.join(&next)).unwrap_or(next),
                Err(_) => break,
            }
        }
        found
    }

    /// The command that runs `program args…` as a tool: in the sandbox (with a clean environment: a few harmless
    /// variables and the session's `env_passthrough`, `HOME` and `TMPDIR` on the sandbox's own /tmp), or
    /// unconfined in the working directory.
    pub fn command(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let Some(bwrap) = &self.bwrap else {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args).current_dir(&self.cwd);
            return cmd;
        };
        let installs = if self.confined_to_root { Vec::new() } else { self.installation_of(program) };
        let mut cmd = tokio::process::Command::new(bwrap);
        cmd.args(bwrap::args(self, program, args, &installs)).env_clear();
        let names = PASSED_ENV.iter().copied().chain(self.env_passthrough.iter().map(String::as_str));
        for name in names {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        if std::env::var_os("PATH").is_none() {
            cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        }
        cmd.env("HOME", "/tmp").env("TMPDIR", "/tmp");
        cmd
    }
}

/// Adds a root once.
fn add(roots: &mut Vec<PathBuf>, path: PathBuf) {
    if !roots.contains(&path) {
        roots.push(path);
    }
}

/// A relative working directory is relative to where the server runs, as the OS would take it.
fn absolute(path: &Path) -> Result<PathBuf, String> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let here = std::env::current_dir().map_err(|e| format!("os_env.cwd {}: {e}", path.display()))?;
    Ok(here.join(path))
}
