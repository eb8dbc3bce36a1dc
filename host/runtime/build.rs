//! Builds the guest components in `harnesses/` and `policies/` for wasm32-wasip2 so the builtin harness and
//! policies can be embedded in the binary (omnigent then needs no files beside it).
//!
//! Why a build script that runs cargo (which the anchors advise against): the design asks for `cargo build` /
//! `cargo run` on a fresh clone to just work with the harness embedded. The guest build uses its own target dir
//! (`<target>/wasm-guests`) so it never contends for the outer build's lock, and it only reruns when guest
//! sources or the WIT change.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest workspaces and the components each builds.
const GUESTS: [(&str, &[&str]); 2] = [
    ("harnesses", &["agent", "hostile", "harness_0_1_0"]),
    (
        "policies",
        &[
            "ask_on_os_tools",
            "max_tool_calls",
            "cost_budget",
            "detect_loop",
            "tool_filter",
            "hostile_policy",
            "networked_policy",
            "policy_0_1_0",
            "not_a_plugin",
        ],
    ),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().parent().unwrap().to_path_buf();
    for dir in ["harnesses", "policies", "wit"] {
        // A directory here is scanned recursively by cargo.
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    ensure_wasm_target();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = guest_target_dir(&out_dir);
    for (workspace, components) in GUESTS {
        build_guests(&root.join(workspace), components, &target_dir, &out_dir);
    }
    println!("cargo:rustc-env=OMNIGENT_GUEST_DIR={}", out_dir.display());
}

/// Builds one guest workspace (sequentially: one cargo at a time) and copies its components to `out_dir`.
fn build_guests(workspace: &Path, components: &[&str], target_dir: &Path, out_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's settings are for the host target; they must not leak into the guest build.
    for var in
        ["CARGO_TARGET_DIR", "RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET", "RUSTC_WORKSPACE_WRAPPER"]
    {
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
            "building the guest components in {} failed (see above). If the error says the wasm32-wasip2 \
             target is missing, run: rustup target add wasm32-wasip2",
            workspace.display()
        );
    }
    let built = target_dir.join("wasm32-wasip2").join("release");
    for guest in components {
        let from = built.join(format!("{guest}.wasm"));
        std::fs::copy(&from, out_dir.join(format!("{guest}.wasm")))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
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
    out_dir.ancestors().nth(4).map(|target| target.join("wasm-guests")).unwrap_or_else(|| out_dir.join("wasm-guests"))
}
