//! `omnigent plugin new KIND NAME`: writes a project that builds on its own (the SDK is copied into `vendor/`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::templates::{self, File, Names};
use super::{Kind, Lang};

pub(super) fn new(kind: Kind, name: &str, lang: Lang, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let names = match Names::new(name) {
        Ok(names) => names,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let (project, sdk): (&[File], &[File]) = match (kind, lang) {
        (Kind::Policy, Lang::Rust) => (templates::RUST_POLICY, templates::POLICY_SDK),
        (Kind::Policy, Lang::Python) => (templates::PYTHON_POLICY, templates::PYTHON_POLICY_SDK),
        (Kind::Harness, Lang::Rust) => (templates::RUST_HARNESS, templates::HARNESS_SDK),
        (Kind::Harness, Lang::Python) => {
            println!(
                "harnesses are written in Rust here (`omnigent plugin new harness {name}`); Python is for policies"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let root = dir.unwrap_or_else(|| PathBuf::from(name));
    if root.exists() && std::fs::read_dir(&root).map(|mut d| d.next().is_some()).unwrap_or(true) {
        println!("{}: already exists and is not empty; choose another name or --dir", root.display());
        return Ok(ExitCode::from(2));
    }
    // Templates get the project's names; SDK files are copied as they are.
    for file in project {
        write(&root.join(file.path), &names.render(file.text))?;
    }
    for file in sdk {
        write(&root.join(file.path), file.text)?;
    }
    let shown = root.display();
    let what = match (kind, lang) {
        (Kind::Policy, Lang::Rust) => "a Rust policy",
        (Kind::Policy, Lang::Python) => "a Python policy",
        (Kind::Harness, _) => "a Rust harness",
    };
    println!("wrote {what} in {shown}/ (see its README.md)");
    let unit_tests = match lang {
        Lang::Rust => "cargo test",
        Lang::Python => "python3 -m unittest",
    };
    let try_it = match kind {
        Kind::Policy => format!("omnigent plugin test dist/{}.wasm --events events.jsonl", names.snake),
        Kind::Harness => format!("omnigent plugin test dist/{}.wasm --script script.jsonl", names.snake),
    };
    println!("next:");
    println!("  cd {shown}");
    println!("  {unit_tests:<60} # unit tests, natively");
    println!("  {:<60} # → dist/{}.wasm", "omnigent plugin build", names.snake);
    println!("  {try_it}");
    let run = match kind {
        Kind::Policy => "omnigent run -f session.yaml -p \"push it\"",
        Kind::Harness => "omnigent run -f session.yaml -p \"what is here?\"",
    };
    println!("  {run:<60} # a session that uses it (offline demo model)");
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| anyhow::anyhow!("creating {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
