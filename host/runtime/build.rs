//! Builds the guest components in `harnesses/` and `policies/` so the builtin harness and policies can be embedded in
//! the binary (omnigent then needs no files beside it).
//!
//! Guests that need nothing but our worlds (the builtin harness and policies) are built for `wasm32-unknown-unknown`
//! and made components here with `wit-component` (what `wasm-tools component new` does): they import no WASI. A
//! policy (whose world imports no functions) is then one core instance instead of three (its module, and the shim
//! and fixup modules that link WASI into it), which is much of the cost of the fresh instance each evaluation gets.
//! Test fixtures that exercise WASI (a networked policy, a WASI command, components from older WIT) are built for
//! `wasm32-wasip2`, as plugin authors build theirs.
//!
//! Why a build script that runs cargo (which the anchors advise against): the design asks for `cargo build` /
//! `cargo run` on a fresh clone to just work with the harness embedded. The guest build uses its own target dir
//! (`<target>/wasm-guests`) so it never contends for the outer build's lock, and it only reruns when guest
//! sources or the WIT change.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a guest is built for.
#[derive(Clone, Copy)]
enum Target {
    /// `wasm32-unknown-unknown`, made a component here: no WASI imports.
    Bare,
    /// `wasm32-wasip2`: rustc links it as a component that imports WASI.
    Wasi,
}

impl Target {
    fn triple(self) -> &'static str {
        match self {
            Target::Bare => "wasm32-unknown-unknown",
            Target::Wasi => "wasm32-wasip2",
        }
    }
}

/// Guest workspaces, and the packages each builds for each target. A package's component is named for the package
/// with `-` as `_` (`ask-on-os-tools` → `ask_on_os_tools.wasm`).
const GUESTS: [(&str, Target, &[&str]); 4] = [
    ("harnesses", Target::Bare, &["agent"]),
    ("harnesses", Target::Wasi, &["hostile", "harness-0-1-0"]),
    ("policies", Target::Bare, &["ask-on-os-tools", "max-tool-calls", "cost-budget", "detect-loop", "tool-filter"]),
    ("policies", Target::Wasi, &["hostile-policy", "networked-policy", "policy-0-1-0", "not-a-plugin"]),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().parent().unwrap().to_path_buf();
    for dir in ["harnesses", "policies", "wit"] {
        // A directory here is scanned recursively by cargo.
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    ensure_wasm_targets(&[Target::Bare.triple(), Target::Wasi.triple()]);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = guest_target_dir(&out_dir);
    for (workspace, target, packages) in GUESTS {
        build_guests(&root.join(workspace), target, packages, &target_dir, &out_dir);
    }
    println!("cargo:rustc-env=OMNIGENT_GUEST_DIR={}", out_dir.display());
}

/// Builds packages of one guest workspace (sequentially: one cargo at a time) and puts their components in
/// `out_dir`.
fn build_guests(workspace: &Path, target: Target, packages: &[&str], target_dir: &Path, out_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--target", target.triple(), "--manifest-path"])
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for package in packages {
        cmd.args(["-p", package]);
    }
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
            "building the guest components in {} for {} failed (see above). If the error says the target is \
             missing, run: rustup target add {}",
            workspace.display(),
            target.triple(),
            target.triple()
        );
    }
    let built = target_dir.join(target.triple()).join("release");
    for package in packages {
        let name = package.replace('-', "_");
        let from = built.join(format!("{name}.wasm"));
        let bytes = std::fs::read(&from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let component = match target {
            Target::Wasi => bytes,
            Target::Bare => wit_component::ComponentEncoder::default()
                .module(&bytes)
                .and_then(|encoder| encoder.validate(true).encode())
                .unwrap_or_else(|e| panic!("make {} a component: {e:#}", from.display())),
        };
        let to = out_dir.join(format!("{name}.wasm"));
        std::fs::write(&to, component).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
    }
}

/// Installs the wasm targets' standard libraries through rustup when they are missing (one listing, one install),
/// so a fresh clone builds. If that fails, the guest build's error says which target to add.
fn ensure_wasm_targets(triples: &[&str]) {
    let Ok(listed) = Command::new("rustup").args(["target", "list", "--installed"]).output() else { return };
    let installed = String::from_utf8_lossy(&listed.stdout).lines().map(|l| l.trim().to_string()).collect::<Vec<_>>();
    let missing: Vec<&str> = triples.iter().copied().filter(|t| !installed.iter().any(|i| i == t)).collect();
    if !missing.is_empty() {
        println!("cargo:warning=installing {} (rustup target add {})", missing.join(", "), missing.join(" "));
        let _ = Command::new("rustup").args(["target", "add"]).args(&missing).status();
    }
}

/// `<target>/wasm-guests`, found from OUT_DIR (`<target>/<profile>/build/<pkg>-<hash>/out`).
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir.ancestors().nth(4).map(|target| target.join("wasm-guests")).unwrap_or_else(|| out_dir.join("wasm-guests"))
}
