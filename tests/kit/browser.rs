//! Running the web UI's browser scenarios (`host/ui/e2e`, node's test runner + playwright-core driving Debian's
//! `chromium-headless-shell`) from a cargo test: finding the browser, `npm ci` once per checkout, and running node
//! with the test's environment.
//!
//! Without node/npm or the browser the caller is told to skip (one loud line); `OMNIGENT_UI_TESTS=1` (CI) turns a
//! skip into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The UI's folder (`host/ui`), found from the package under test at run time: cargo sets `CARGO_MANIFEST_DIR` for
/// the test process to `host/`. (This kit's own compile-time path can name another checkout when a target dir is
/// shared between clones: cargo does not rebuild a crate only because its path moved.)
pub fn ui_dir() -> PathBuf {
    match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(host) => PathBuf::from(host).join("ui"),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/ui"),
    }
}

/// The browser and node modules, or None when the tests must be skipped (said on stderr).
pub fn ready() -> Option<PathBuf> {
    let path = std::env::var("OMNIGENT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium-headless-shell".into());
    if !Path::new(&path).exists() {
        skip("chromium-headless-shell (apt-get install chromium-headless-shell)");
        return None;
    }
    node_modules().then(|| PathBuf::from(path))
}

fn skip(why: &str) {
    if std::env::var("OMNIGENT_UI_TESTS").is_ok_and(|v| v == "1") {
        panic!("OMNIGENT_UI_TESTS=1 but the web UI tests lack {why}");
    }
    eprintln!("SKIPPED: the web UI tests need {why}; scripts/test installs it");
}

/// `npm ci` once per checkout (node_modules kept; redone when the lockfile changed). Tests run in parallel: one
/// installs, the others wait for it.
pub fn node_modules() -> bool {
    static INSTALLED: std::sync::Mutex<Option<bool>> = std::sync::Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    *installed.get_or_insert_with(install)
}

fn install() -> bool {
    let ui = ui_dir();
    let stamp = ui.join("node_modules/.package-lock.json");
    let lock = ui.join("package-lock.json");
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    if modified(&stamp).is_some() && modified(&stamp) >= modified(&lock) {
        return true;
    }
    assert!(ui.join("package.json").is_file(), "no web UI sources at {}", ui.display());
    match Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(&ui).status() {
        Ok(s) if s.success() => true,
        Ok(s) => panic!("npm ci in {} failed: {s}", ui.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            skip("npm (node's package manager)");
            false
        }
        Err(e) => panic!("cannot run npm ci in {}: {e}", ui.display()),
    }
}

/// Runs a command in `host/ui`, prints what it wrote, and fails the test if it failed.
pub fn run(cmd: &mut Command, what: &str) {
    let out = cmd.current_dir(ui_dir()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "{what} failed:\n{text}");
}

/// `node` with the environment every scenario reads: the binary, the browser, the repository.
pub fn node(bin: &Path, browser: &Path) -> Command {
    let mut cmd = Command::new("node");
    cmd.env("OMNIGENT_BIN", bin).env("OMNIGENT_CHROMIUM", browser).env("OMNIGENT_REPO", ui_dir().join("../.."));
    cmd
}
