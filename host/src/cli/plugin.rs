//! `omnigent plugin`: tools for people who write harness and policy components. `check FILE.wasm` says what a file
//! is, which world it implements, what it imports, whether this host can load it and — for a policy — what its
//! `describe()` declares; `test FILE.wasm --events F` runs a policy over a recorded session.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use omnigent_runtime::{Inspection, PolicyLimits, Runtime, World};

use crate::policy::replay::Replay;
use crate::policy::{Outcome, PolicyEnv, PolicyMap, Situation, apply_state, evaluate};

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Say what a .wasm file is: a component or not, its world (omnigent:policy or omnigent:harness) and version,
    /// its imports, whether this host loads it, and a policy's name, description and parameter schema. Exit code
    /// 0: loads here; 1: it does not (the reason is printed); 2: not a file this host can read as a component.
    Check {
        /// The component file.
        file: PathBuf,
    },
    /// Run a policy over a recorded session — a file of its events, one JSON object per line, as `omnigent
    /// sessions show ID --events` prints them — and print its verdict on each request, tool call, tool result and
    /// response (its state and labels carried from one to the next, as in a session). Exit code 0 when every event
    /// was judged (whatever the verdicts), 1 when the policy cannot load or refuses the parameters, 2 on a bad file.
    Test {
        /// The policy component.
        file: PathBuf,
        /// The recorded events (JSON lines).
        #[arg(long)]
        events: PathBuf,
        /// The policy's parameters, a JSON object (its `factory_params`).
        #[arg(long, default_value = "{}")]
        params: String,
    },
}

pub async fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::Check { file } => check(file).await,
        PluginCommand::Test { file, events, params } => test(file, events, &params).await,
    }
}

async fn test(file: PathBuf, events: PathBuf, params: &str) -> anyhow::Result<ExitCode> {
    let params: serde_json::Value = match serde_json::from_str(params) {
        Ok(p @ serde_json::Value::Object(_)) => p,
        _ => {
            println!("--params must be a JSON object");
            return Ok(ExitCode::from(2));
        }
    };
    let text = match std::fs::read_to_string(&events) {
        Ok(text) => text,
        Err(e) => {
            println!("{}: cannot be read: {e}", events.display());
            return Ok(ExitCode::from(2));
        }
    };
    let decl = serde_json::json!({"component": file, "factory_params": params});
    let map = PolicyMap(vec![("under_test".to_string(), serde_json::from_value(decl)?)]);
    let env = PolicyEnv::new(Runtime::new(None)?, PolicyMap::default());
    if let Err(e) = env.check(&map).await {
        println!("{e}");
        return Ok(ExitCode::FAILURE);
    }
    let chain = match env.chain(&map, &PolicyMap::default()).await {
        Ok(chain) => chain,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut situation = Situation {
        session_id: "plugin-test".into(),
        model: String::new(),
        harness: String::new(),
        usage: omnigent_runtime::policy::Usage {
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            total_cost_usd: 0.0,
        },
        labels: serde_json::Map::new(),
        state: serde_json::Map::new(),
    };
    let mut replay = Replay::default();
    let mut judged_any = false;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            println!("{}:{}: not a JSON object", events.display(), n + 1);
            return Ok(ExitCode::from(2));
        };
        let Some(judged) = replay.judged(&event) else { continue };
        judged_any = true;
        let target = judged.target.as_deref();
        let what = match target {
            Some(t) => format!("{}:{t}", judged.phase.as_str()),
            None => judged.phase.as_str().to_string(),
        };
        let outcome =
            evaluate(&chain, judged.phase, target, judged.data, judged.request_data.as_ref(), &situation).await;
        let (verdict, changes, labels) = match outcome {
            Outcome::Allow { data, changes, labels } => {
                (if data.is_some() { "allow (rewritten)".to_string() } else { "allow".to_string() }, changes, labels)
            }
            Outcome::Deny { reason, changes, labels, .. } => (format!("deny: {reason}"), changes, labels),
            Outcome::Ask(asked) => (format!("ask: {}", asked.message), asked.changes, asked.labels),
        };
        println!("line {}: {what} → {verdict}", n + 1);
        apply_state(&mut situation.state, &changes);
        crate::record::merge_labels(&mut situation.labels, &labels);
    }
    if !judged_any {
        println!("no request, tool call, tool result or response in {}", events.display());
    }
    if !situation.state.is_empty() || !situation.labels.is_empty() {
        println!("state: {}", serde_json::Value::Object(situation.state));
        println!("labels: {}", serde_json::Value::Object(situation.labels));
    }
    Ok(ExitCode::SUCCESS)
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
