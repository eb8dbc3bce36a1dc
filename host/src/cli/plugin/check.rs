//! `omnigent plugin check FILE.wasm`: what a file is, its world and version, its imports, whether this host loads
//! it, and what a policy's `describe()` declares.

use std::path::PathBuf;
use std::process::ExitCode;

use omnigent_runtime::{Inspection, PolicyLimits, World};

pub(super) async fn check(file: PathBuf) -> anyhow::Result<ExitCode> {
    let Some(bytes) = super::read_component(&file) else { return Ok(ExitCode::from(2)) };
    let runtime = super::runtime()?;
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
