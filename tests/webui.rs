//! The web UI in a real browser: `host/ui/e2e/*.test.mjs` (node's test runner + playwright-core) drive Debian's
//! `chromium-headless-shell` against this build's `omnigent` binary, each test with its own server and data dir,
//! offline (the `scripted` provider). Also: the committed `host/ui/dist` is exactly what the sources build, and
//! the sources type-check.
//!
//! Needs node + npm (for `npm ci` in host/ui) and chromium-headless-shell; `scripts/test` installs them. Without
//! them the tests are skipped with one loud line; CI sets `OMNIGENT_UI_TESTS=1`, which turns a skip into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ui")
}

fn required() -> bool {
    std::env::var("OMNIGENT_UI_TESTS").is_ok_and(|v| v == "1")
}

fn skip(why: &str) -> bool {
    if required() {
        panic!("OMNIGENT_UI_TESTS=1 but {why}");
    }
    eprintln!("SKIPPED: the web UI tests need {why}; scripts/test installs it");
    true
}

fn chromium() -> Option<PathBuf> {
    let path = std::env::var("OMNIGENT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium-headless-shell".into());
    Path::new(&path).exists().then(|| PathBuf::from(path))
}

/// `npm ci` once per checkout (node_modules kept; redone when the lockfile changed). The tests of this file run in
/// parallel: one installs, the others wait for it.
fn node_modules() -> bool {
    static INSTALLED: std::sync::Mutex<Option<bool>> = std::sync::Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    *installed.get_or_insert_with(install_node_modules)
}

fn install_node_modules() -> bool {
    let ui = ui_dir();
    let stamp = ui.join("node_modules/.package-lock.json");
    let lock = ui.join("package-lock.json");
    let fresh = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    if fresh(&stamp).is_some() && fresh(&stamp) >= fresh(&lock) {
        return true;
    }
    let status =
        Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(&ui).status();
    match status {
        Ok(s) if s.success() => true,
        Ok(s) => panic!("npm ci in {} failed: {s}", ui.display()),
        Err(_) => !skip("npm (node's package manager)"),
    }
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.current_dir(ui_dir()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "{what} failed:\n{text}");
}

#[test]
fn committed_assets_are_what_the_sources_build_and_they_type_check() {
    if !node_modules() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    run(Command::new("node").args(["build.mjs", "--outdir"]).arg(out.path()), "building the UI");
    let built = files(out.path());
    let committed = files(&ui_dir().join("dist"));
    assert_eq!(
        built.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "host/ui/dist is not what the sources build: run `npm run build` in host/ui and commit dist/"
    );
    for (name, bytes) in &built {
        assert!(
            committed[name] == *bytes,
            "host/ui/dist/{name} differs from the build: run `npm run build` in host/ui"
        );
    }
    run(Command::new("node").args(["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."]), "type-checking the UI");
}

fn files(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn browser_scenarios() {
    let Some(browser) = chromium() else {
        skip("chromium-headless-shell (apt-get install chromium-headless-shell)");
        return;
    };
    if !node_modules() {
        return;
    }
    let hostile = format!("{}/hostile.wasm", omnigent_runtime::GUEST_DIR);
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .args(std::env::var("OMNIGENT_UI_TEST_FILTER").ok().map(|f| format!("--test-name-pattern={f}")))
        .arg("e2e/")
        .env("OMNIGENT_BIN", env!("CARGO_BIN_EXE_omnigent"))
        .env("OMNIGENT_CHROMIUM", browser)
        .env("OMNIGENT_TEST_HOSTILE_WASM", hostile)
        .env("OMNIGENT_REPO", Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    run(&mut cmd, "the browser scenarios (node --test e2e/)");
}
