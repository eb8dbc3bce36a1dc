//! The web UI in a real browser: `host/ui/e2e/*.test.mjs` (node's test runner + playwright-core) drive Debian's
//! `chromium-headless-shell` against this build's `omnigent` binary, each test file with its own server and data
//! dir, offline (the `scripted` provider). Also: the committed `host/ui/dist` is exactly what the sources build, and
//! the sources type-check. (The terminal tab's scenario needs the Claude Code CLI: it is in tests/natives.rs.)
//!
//! Needs node + npm and chromium-headless-shell (`scripts/test` installs the browser; the test runs `npm ci`).
//! Without them the tests are skipped with one loud line; CI sets `OMNIGENT_UI_TESTS=1`, which fails instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use omnigent_testkit::browser;

#[test]
fn committed_assets_are_what_the_sources_build_and_they_type_check() {
    if !browser::node_modules() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    browser::run(Command::new("node").args(["build.mjs", "--outdir"]).arg(out.path()), "building the UI");
    let built = files(out.path());
    let committed = files(&browser::ui_dir().join("dist"));
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
    browser::run(Command::new("node").args(["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."]), "tsc");
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn browser_scenarios() {
    let Some(chromium) = browser::ready() else { return };
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_omnigent"));
    let mut cmd = browser::node(&bin, &chromium);
    cmd.args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .args(std::env::var("OMNIGENT_UI_TEST_FILTER").ok().map(|f| format!("--test-name-pattern={f}")))
        .arg("e2e/")
        .env("OMNIGENT_TEST_HOSTILE_WASM", format!("{}/hostile.wasm", omnigent_runtime::GUEST_DIR));
    browser::run(&mut cmd, "the browser scenarios (node --test e2e/)");
}
