//! `omnigent plugin build [DIR]`: makes the component of a plugin project and copies it to `DIR/dist/<name>.wasm`
//! (a path that does not depend on the user's `CARGO_TARGET_DIR`, so the project's session.yaml can name it).
//! A Rust project (a `Cargo.toml`) is built by cargo for wasm32-wasip2; a Python policy (`policy.py` beside the
//! vendored `omnigent_policy` module) by componentize-py. What is missing is installed first, saying so.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use super::templates::{PYTHON_COMPONENT_MODULE, PYTHON_POLICY_MODULE, PYTHON_SDK_DIR};

/// The componentize-py release Python policies are built with (the one the Python SDK's glue is tested against).
const COMPONENTIZE_PY: &str = "0.25.1";
const WASM_TARGET: &str = "wasm32-wasip2";

/// Why a build did not produce a component: said to the user as is.
#[derive(Debug, thiserror::Error)]
enum BuildError {
    /// Not a project this command knows (exit code 2).
    #[error("{0}")]
    NotAProject(String),
    /// The toolchain or the build failed (exit code 1).
    #[error("{0}")]
    Failed(String),
}

pub(super) async fn build(dir: PathBuf) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || build_in(&dir)).await?;
    match result {
        Ok(built) => {
            let size = std::fs::metadata(&built).map(|m| m.len()).unwrap_or(0);
            println!(
                "built {} ({}) in {:.1} s — next: omnigent plugin check {}",
                built.display(),
                human_size(size),
                started.elapsed().as_secs_f64(),
                built.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(BuildError::NotAProject(e)) => {
            println!("{e}");
            Ok(ExitCode::from(2))
        }
        Err(BuildError::Failed(e)) => {
            println!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn build_in(dir: &Path) -> Result<PathBuf, BuildError> {
    if dir.join("Cargo.toml").is_file() {
        let built = build_rust(dir)?;
        let name = built.file_name().map(PathBuf::from).unwrap_or_else(|| "component.wasm".into());
        let dist = dir.join("dist");
        std::fs::create_dir_all(&dist).map_err(|e| BuildError::Failed(format!("creating {}: {e}", dist.display())))?;
        let to = dist.join(name);
        std::fs::copy(&built, &to)
            .map_err(|e| BuildError::Failed(format!("copying {} to {}: {e}", built.display(), to.display())))?;
        Ok(to)
    } else if dir.join(PYTHON_POLICY_MODULE).is_file() {
        build_python(dir)
    } else {
        Err(BuildError::NotAProject(format!(
            "{}: neither a Rust project (Cargo.toml) nor a Python policy ({PYTHON_POLICY_MODULE}); \
             `omnigent plugin new policy NAME` writes one",
            dir.display()
        )))
    }
}

/// `cargo build --release --target wasm32-wasip2`, reading cargo's JSON messages for the component it made.
fn build_rust(dir: &Path) -> Result<PathBuf, BuildError> {
    ensure_wasm_target()?;
    let manifest = dir.join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building {} for {WASM_TARGET} (cargo build --release)", manifest.display());
    let mut child = Command::new(&cargo)
        .args(["build", "--release", "--target", WASM_TARGET, "--message-format=json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BuildError::Failed(format!("cannot run cargo ({e}): install Rust from https://rustup.rs")))?;
    // The project's own artifact (cargo names manifests by absolute path), not a workspace sibling's.
    let own = std::fs::canonicalize(&manifest).unwrap_or_else(|_| manifest.clone());
    let mut wasm = None;
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines().map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        if message["reason"] == "compiler-artifact"
            && message["manifest_path"].as_str().map(Path::new) == Some(own.as_path())
            && let Some(files) = message["filenames"].as_array()
            && let Some(file) = files.iter().filter_map(|f| f.as_str()).find(|f| f.ends_with(".wasm"))
        {
            wasm = Some(PathBuf::from(file));
        }
    }
    let status = child.wait().map_err(|e| BuildError::Failed(format!("waiting for cargo: {e}")))?;
    if !status.success() {
        return Err(BuildError::Failed(format!("cargo build failed ({status}); the errors are above")));
    }
    wasm.ok_or_else(|| {
        BuildError::NotAProject(format!(
            "{}: cargo built no .wasm — a plugin crate needs `[lib] crate-type = [\"cdylib\"]`",
            manifest.display()
        ))
    })
}

/// Installs the wasm32-wasip2 standard library through rustup when it is missing.
fn ensure_wasm_target() -> Result<(), BuildError> {
    let listed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    let Ok(listed) = listed else {
        // No rustup: a toolchain installed another way; cargo says whether it has the target.
        return Ok(());
    };
    if String::from_utf8_lossy(&listed.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    eprintln!("installing the {WASM_TARGET} target (rustup target add {WASM_TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .map_err(|e| BuildError::Failed(format!("rustup target add {WASM_TARGET}: {e}")))?;
    if !status.success() {
        return Err(BuildError::Failed(format!("rustup target add {WASM_TARGET} failed ({status})")));
    }
    Ok(())
}

/// componentize-py over the author's `policy.py` and the SDK's component module.
fn build_python(dir: &Path) -> Result<PathBuf, BuildError> {
    let sdk = dir.join(PYTHON_SDK_DIR);
    if !sdk.join(format!("{PYTHON_COMPONENT_MODULE}.py")).is_file() || !sdk.join("wit").is_dir() {
        return Err(BuildError::NotAProject(format!(
            "{}: the Python SDK is missing from {} — `omnigent plugin new policy NAME --lang python` writes a \
             project with it",
            dir.display(),
            sdk.display()
        )));
    }
    let name = python_project_name(dir)?;
    let componentize = componentize_py()?;
    let dist = dir.join("dist");
    std::fs::create_dir_all(&dist).map_err(|e| BuildError::Failed(format!("creating {}: {e}", dist.display())))?;
    let out = dist.join(format!("{name}.wasm"));
    eprintln!("building {} with componentize-py {COMPONENTIZE_PY}", dir.join(PYTHON_POLICY_MODULE).display());
    let status = Command::new(&componentize)
        .arg("-d")
        .arg(sdk.join("wit"))
        // No WASI at run time: a policy gets no files, clock, environment or network anyway, and CPython's socket
        // support would otherwise import wasi:sockets, which this host refuses.
        .args(["-w", "policy", "componentize", "--stub-wasi", "-p"])
        .arg(dir)
        .arg("-p")
        .arg(&sdk)
        .arg(PYTHON_COMPONENT_MODULE)
        .arg("-o")
        .arg(&out)
        // Its progress goes where cargo's does: stdout carries only the result.
        .stdout(stderr_handle()?)
        // A Python error is its own message; the tool's Rust backtrace would bury it.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .status()
        .map_err(|e| BuildError::Failed(format!("cannot run {}: {e}", componentize.display())))?;
    if !status.success() {
        return Err(BuildError::Failed(format!(
            "componentize-py failed ({status}); the errors are above (a Python error in {PYTHON_POLICY_MODULE} \
             shows there too)"
        )));
    }
    Ok(out)
}

/// This process's stderr, for a child's stdout.
fn stderr_handle() -> Result<Stdio, BuildError> {
    use std::os::fd::AsFd;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| BuildError::Failed(format!("stderr: {e}")))?;
    Ok(Stdio::from(fd))
}

/// The component's file name: `[project] name` of `pyproject.toml` in snake case, else the folder's name.
fn python_project_name(dir: &Path) -> Result<String, BuildError> {
    let from_pyproject = std::fs::read_to_string(dir.join("pyproject.toml")).ok().and_then(|text| {
        let mut in_project = false;
        text.lines().find_map(|line| {
            let line = line.trim();
            if line.starts_with('[') {
                in_project = line == "[project]";
                return None;
            }
            let value = line.strip_prefix("name")?.trim_start().strip_prefix('=')?.trim();
            in_project.then(|| value.trim_matches(|c| c == '"' || c == '\'').to_string())
        })
    });
    let name = from_pyproject
        .or_else(|| std::fs::canonicalize(dir).ok()?.file_name().map(|n| n.to_string_lossy().into_owned()));
    let name = name.unwrap_or_default().replace('-', "_");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(BuildError::NotAProject(format!(
            "{}: cannot name the component: give pyproject.toml a `[project] name` of letters, digits, '-' or '_'",
            dir.display()
        )));
    }
    Ok(name)
}

/// The componentize-py to run: `OMNIGENT_COMPONENTIZE_PY`, else the pinned release in the user's cache folder,
/// installed there from PyPI the first time. The install holds a file lock (concurrent builds wait for one install)
/// and is marked complete only at its end, so an interrupted one is redone rather than used.
fn componentize_py() -> Result<PathBuf, BuildError> {
    if let Some(given) = std::env::var_os("OMNIGENT_COMPONENTIZE_PY") {
        return Ok(PathBuf::from(given));
    }
    let root = super::cache_root().ok_or_else(|| {
        BuildError::Failed("neither XDG_CACHE_HOME nor HOME is set: set OMNIGENT_COMPONENTIZE_PY".into())
    })?;
    let home = root.join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let bin = home.join("bin").join("componentize-py");
    let complete = home.join(".installed");
    if complete.is_file() {
        return Ok(bin);
    }
    let failed = |what: &str, e: std::io::Error| BuildError::Failed(format!("{what}: {e}"));
    std::fs::create_dir_all(&root).map_err(|e| failed(&format!("creating {}", root.display()), e))?;
    let lock = std::fs::File::create(root.join(format!("componentize-py-{COMPONENTIZE_PY}.lock")))
        .map_err(|e| failed("creating the install lock", e))?;
    lock.lock().map_err(|e| failed("taking the install lock", e))?;
    if complete.is_file() {
        return Ok(bin);
    }
    eprintln!("installing componentize-py {COMPONENTIZE_PY} from PyPI into {} (once)", home.display());
    let _ = std::fs::remove_dir_all(&home);
    let run = |cmd: &mut Command, what: &str| -> Result<(), BuildError> {
        let status = cmd.status().map_err(|e| failed(what, e))?;
        if status.success() { Ok(()) } else { Err(BuildError::Failed(format!("{what} failed ({status})"))) }
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&home),
        "creating a virtualenv with python3 -m venv (is Python 3 with venv installed?)",
    )?;
    run(
        Command::new(home.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("componentize-py=={COMPONENTIZE_PY}"),
        ]),
        &format!("pip install componentize-py=={COMPONENTIZE_PY}"),
    )?;
    std::fs::write(&complete, COMPONENTIZE_PY).map_err(|e| failed("marking the install complete", e))?;
    Ok(bin)
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.0} KB", b as f64 / (1 << 10) as f64),
        b => format!("{b} bytes"),
    }
}
