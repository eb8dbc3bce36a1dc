//! `omnigent plugin`: tools for people who write harness and policy components. `check FILE.wasm` says what a file
//! is, which world it implements, what it imports, whether this host can load it and — for a policy — what its
//! `describe()` declares.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use omnigent_runtime::{Inspection, PolicyLimits, Runtime, World};

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Say what a .wasm file is: a component or not, its world (omnigent:policy or omnigent:harness) and version,
    /// its imports, whether this host loads it, and a policy's name, description and parameter schema. Exit code
    /// 0: loads here; 1: it does not (the reason is printed); 2: not a file this host can read as a component.
    Check {
        /// The component file.
        file: PathBuf,
    },
}

/// Imports a plugin may not have here: plugins get no network.
const REFUSED_IMPORTS: [&str; 2] = ["wasi:sockets/", "wasi:http/"];

pub async fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Check { file } => check(file).await,
    }
}

async fn check(file: PathBuf) -> anyhow::Result<ExitCode> {
    let bytes = match std::fs::read(&file) {
        Ok(bytes) => bytes,
        Err(e) => {
            println!("{}: cannot be read: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = Runtime::new(None)?;
    let shown = file.display();
    let (world, imports) = match tokio::task::block_in_place(|| runtime.inspect(&bytes)) {
        Ok(Inspection::NotWasm) => {
            println!("{shown}: not a WebAssembly file (it does not start with \\0asm)");
            return Ok(ExitCode::from(2));
        }
        Ok(Inspection::CoreModule) => {
            println!(
                "{shown}: a core WebAssembly module, not a component. Build for wasm32-wasip2 (cargo build --target \
                 wasm32-wasip2), or make it one with `wasm-tools component new`."
            );
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            println!("{shown}: {e}");
            return Ok(ExitCode::from(2));
        }
        Ok(Inspection::Component { world, imports, .. }) => (world, imports),
    };
    let size = bytes.len();
    println!("{shown}: a WebAssembly component ({size} bytes)");
    // The version it was built against: that of the world's own interfaces it imports.
    let version = |package: &str| {
        imports.iter().find_map(|i| i.strip_prefix(package)?.split_once('@').map(|(_, v)| v.to_string()))
    };
    match world {
        World::Policy => {
            let v = version("omnigent:policy/").unwrap_or_else(|| "?".into());
            println!("world: omnigent:policy@{v} (exports describe, init, evaluate)")
        }
        World::Harness => {
            let v = version("omnigent:harness/").unwrap_or_else(|| "?".into());
            println!("world: omnigent:harness@{v} (exports run-turn)")
        }
        World::Unknown => {
            println!(
                "world: none of this host's — a policy exports describe, init and evaluate (wit/policy); a harness \
                 exports run-turn (wit/harness)"
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    println!("imports:");
    for name in &imports {
        println!("  {name}");
    }
    if let Some(refused) = imports.iter().find(|i| REFUSED_IMPORTS.iter().any(|r| i.starts_with(r))) {
        println!(
            "not loadable here: it imports {refused}, and plugins get no network on this host; remove the code (or \
             dependency) that pulls it in"
        );
        return Ok(ExitCode::FAILURE);
    }
    let loaded = match world {
        World::Policy => tokio::task::block_in_place(|| runtime.load_policy(&bytes)).map(Some),
        _ => tokio::task::block_in_place(|| runtime.load_harness(&bytes)).map(|_| None),
    };
    let policy = match loaded {
        Ok(policy) => policy,
        Err(e) => {
            println!("not loadable here: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("loads on this host: yes");
    if let Some(policy) = policy {
        match policy.describe(PolicyLimits::default()).await {
            Ok(d) => {
                println!("name: {}", d.name);
                println!("description: {}", d.description);
                println!("parameters (JSON Schema): {}", d.params_schema);
            }
            Err(e) => {
                println!("describe() failed: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
