//! Builds the guest components in `harnesses/` for wasm32-wasip2 so the builtin harness can be embedded in the
//! binary (omnigent then needs no files beside it).
//!
//! Why a build script that runs cargo (which the anchors advise against): the design asks for `cargo build` /
//! `cargo run` on a fresh clone to just work with the harness embedded. The guest build uses its own target dir
//! (`<target>/wasm-guests`) so it never contends for the outer build's lock, and it only reruns when guest
//! sources or the WIT change.

use std::path::{Path, PathBuf};
use std::process::Command;

const GUESTS: [&str; 2] = ["agent", "hostile"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().parent().unwrap().to_path_buf();
    let harnesses = root.join("harnesses");
    for path in ["Cargo.toml", "Cargo.lock", "agent/src", "agent/Cargo.toml", "fixtures/hostile/src", "fixtures/hostile/Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", harnesses.join(path).display());
    }
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    ensure_wasm_target();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = guest_target_dir(&out_dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(harnesses.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's settings are for the host target; they must not leak into the guest build.
    for var in ["CARGO_TARGET_DIR", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_PROFILE_") || key.starts_with("CARGO_CFG_") || key.starts_with("CARGO_FEATURE_") {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().expect("run cargo to build the guest components");
    if !status.success() {
        panic!(
            "building the guest components in harnesses/ failed (see above). If the error says the \
             wasm32-wasip2 target is missing, run: rustup target add wasm32-wasip2"
        );
    }
    let built = target_dir.join("wasm32-wasip2").join("release");
    for guest in GUESTS {
        let from = built.join(format!("{guest}.wasm"));
        std::fs::copy(&from, out_dir.join(format!("{guest}.wasm")))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
    println!("cargo:rustc-env=OMNIGENT_GUEST_DIR={}", out_dir.display());
}

/// Installs the wasm32-wasip2 standard library through rustup when it is missing, so a fresh clone builds.
fn ensure_wasm_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-wasip2"));
    if let Ok(false) = installed {
        println!("cargo:warning=installing the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
        let _ = Command::new("rustup").args(["target", "add", "wasm32-wasip2"]).status();
    }
}

/// `<target>/wasm-guests`, found from OUT_DIR (`<target>/<profile>/build/<pkg>-<hash>/out`).
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("wasm-guests"))
        .unwrap_or_else(|| out_dir.join("wasm-guests"))
}
