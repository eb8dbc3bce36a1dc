//! Bubblewrap: whether this machine can run it, and the command line that gives a tool its view of the system —
//! the programs and libraries read-only, a fresh /proc, /dev and /tmp, the session's roots, nothing else; no
//! capabilities, its own process, IPC and host-name namespaces, and no network unless allowed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::Confinement;

/// System folders every tool needs (programs, libraries), read-only. Missing ones are skipped.
pub(super) const SYSTEM_DIRS: [&str; 6] = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"];

/// The few files and folders of /etc that libc, DNS, TLS and Debian's alternatives need — not /etc itself, so
/// /etc/shadow and the like stay out of sight.
const ETC: [&str; 14] = [
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/alternatives",
    "/etc/gitconfig",
];

/// Longest the start-up probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a trivial command in a sandbox like the tools' own: Ok when bubblewrap works here (installed, and the
/// kernel lets it create namespaces), else why not.
pub(super) async fn probe(bwrap: &Path) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new(bwrap);
    for dir in SYSTEM_DIRS {
        cmd.args(["--ro-bind-try", dir, dir]);
    }
    cmd.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    cmd.args(["--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-ipc", "--cap-drop", "ALL"]);
    cmd.args(["--die-with-parent", "--new-session", "--", "/bin/sh", "-c", "exit 0"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let run = async {
        let out = cmd.output().await.map_err(|e| format!("cannot run {}: {e}", bwrap.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(format!("{} failed ({}): {}", bwrap.display(), out.status, crate::ids::truncate(stderr.trim(), 300)))
    };
    match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Ok(result) => result,
        Err(_) => Err(format!("{} did not finish within {}s", bwrap.display(), PROBE_TIMEOUT.as_secs())),
    }
}

/// The arguments that run `program` in the session's sandbox. Later mounts win over earlier ones: the roots come
/// after the system folders, and the hidden paths last, so nothing a root shows can uncover them.
/// `installs`: folders shown read-only for the program itself (its installation).
pub(super) fn args(plan: &Confinement, program: &str, program_args: &[&str], installs: &[PathBuf]) -> Vec<OsString> {
    let mut a = Args::default();
    for path in SYSTEM_DIRS.iter().chain(ETC.iter()).map(Path::new) {
        a.mount("--ro-bind-try", path, path);
    }
    a.words(&["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
    let reach = &plan.reach;
    for dir in installs {
        a.mount("--ro-bind-try", dir, dir);
    }
    for root in reach.read.iter().filter(|r| !reach.write.contains(r)) {
        a.mount("--ro-bind-try", root, root);
    }
    for root in &reach.write {
        a.mount("--bind-try", root, root);
    }
    for hidden in reach.hidden.iter().filter(|h| visible(h, reach)) {
        if hidden.is_dir() {
            a.0.extend(["--tmpfs".into(), hidden.into()]);
        } else {
            a.mount("--ro-bind", Path::new("/dev/null"), hidden);
        }
    }
    if !plan.allow_network {
        a.words(&["--unshare-net"]);
    }
    a.words(&["--unshare-pid", "--unshare-uts", "--unshare-ipc", "--cap-drop", "ALL", "--die-with-parent"]);
    a.words(&["--new-session", "--chdir"]);
    a.0.push(plan.cwd.clone().into());
    a.words(&["--", program]);
    a.words(program_args);
    a.0
}

#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn mount(&mut self, flag: &str, from: &Path, to: &Path) {
        self.0.extend([flag.into(), from.into(), to.into()]);
    }

    fn words(&mut self, words: &[&str]) {
        self.0.extend(words.iter().map(OsString::from));
    }
}

/// Whether a hidden path lies where the sandbox would show it (under a root, or /tmp's view of nothing).
fn visible(hidden: &Path, reach: &super::Reach) -> bool {
    hidden.exists() && reach.read.iter().chain(&reach.write).any(|r| hidden.starts_with(r))
}
