//! `omnigent plugin`: the kit for people who write harness and policy components. `new` writes a project (Rust, or
//! Python for a policy) around the guest SDKs, `build` makes the component, `check` says what a `.wasm` is and
//! whether this host loads it, `test` runs a policy over a recorded session or a harness over a scripted model.

mod build;
mod check;
mod harness_test;
mod policy_test;
mod scaffold;
mod templates;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use omnigent_runtime::{Inspection, Runtime, World};

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Write a new policy or harness project: sources with a working example, its unit tests, a README, a sample
    /// session to test against and a session YAML that uses it. It builds outside this repository: the guest SDK
    /// (`omnigent-policy` / `omnigent-harness`, or the Python `omnigent_policy` module) is copied into its
    /// `vendor/` folder. Next: `omnigent plugin build NAME`.
    New {
        /// What to write.
        kind: Kind,
        /// The project's name (lowercase letters, digits, `-` and `_`; it names the folder, the crate and the
        /// component).
        name: String,
        /// The language of the project (Python: policies only, built with componentize-py).
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// Where to create the project folder (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the component of a project written by `plugin new` (or any Rust crate of a harness or policy) and say
    /// where it is: `DIR/dist/<name>.wasm`. Installs what is missing first, saying so: the wasm32-wasip2 target
    /// (through rustup) for Rust, componentize-py (from PyPI, into a cache folder) for Python.
    Build {
        /// The project folder (default: the current one).
        dir: Option<PathBuf>,
    },
    /// Say what a .wasm file is: a component or not, its world (omnigent:policy or omnigent:harness) and version,
    /// its imports, whether this host loads it, and a policy's name, description and parameter schema. Exit code
    /// 0: loads here; 1: it does not (the reason is printed); 2: not a file this host can read as a component.
    Check {
        /// The component file.
        file: PathBuf,
    },
    /// Run a component offline and print what it does. A policy (`--events F`) runs over a recorded session — a
    /// file of its events, one JSON object per line, as `omnigent sessions show ID --events` prints them — with a
    /// verdict on each request, tool call, tool result and response (state and labels carried along, as in a
    /// session). A harness (`--script F`) runs one turn against a scripted model: each line of F is `{"user":
    /// TEXT}` (a history message), `{"tool": {name, description?, parameters?, output?, is_error?}}` (a tool it may
    /// call and what every call returns) or `{"model": {text?, tool_calls?: [{name, arguments}]}}` (the model's
    /// next reply); it prints every model call, tool call, event and log line of the turn. Exit code 0: it ran (a
    /// policy judged every event; a harness finished its turn); 1: it cannot load, refused its parameters, or the
    /// turn failed; 2: a bad file.
    Test {
        /// The component.
        file: PathBuf,
        /// For a policy: the recorded events (JSON lines).
        #[arg(long, conflicts_with = "script")]
        events: Option<PathBuf>,
        /// For a policy: its parameters, a JSON object (its `factory_params`).
        #[arg(long, default_value = "{}")]
        params: String,
        /// For a harness: the scripted conversation (JSON lines).
        #[arg(long)]
        script: Option<PathBuf>,
    },
}

/// What `plugin new` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A policy component (world `omnigent:policy`): allow, deny, ask or abstain on each action of a session.
    Policy,
    /// A harness component (world `omnigent:harness`): the LLM loop of a turn.
    Harness,
}

/// The language of a new project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

pub async fn run(cmd: PluginCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PluginCommand::New { kind, name, lang, dir } => scaffold::new(kind, &name, lang, dir),
        PluginCommand::Build { dir } => build::build(dir.unwrap_or_else(|| PathBuf::from("."))).await,
        PluginCommand::Check { file } => check::check(file).await,
        PluginCommand::Test { file, events, params, script } => test(file, events, &params, script).await,
    }
}

/// `$XDG_CACHE_HOME/omnigent`, else `~/.cache/omnigent`: the author's tools (componentize-py) and compiled
/// components.
fn cache_root() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("omnigent"))
}

/// The engine for `check` and `test`, with compiled components cached on disk as the server caches them: checking
/// and testing a Python policy again compiles nothing (8 s the first time, milliseconds after).
fn runtime() -> anyhow::Result<std::sync::Arc<Runtime>> {
    Runtime::new(cache_root().map(|root| root.join("components")))
}

/// A component file's bytes, or None after saying why it cannot be read (exit code 2 for the caller).
fn read_component(file: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(file).map_err(|e| println!("{}: cannot be read: {e}", file.display())).ok()
}

/// Sends a component to the test of its world, after checking the flags fit it.
async fn test(
    file: PathBuf,
    events: Option<PathBuf>,
    params: &str,
    script: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let Some(bytes) = read_component(&file) else { return Ok(ExitCode::from(2)) };
    let runtime = runtime()?;
    let world = match tokio::task::block_in_place(|| runtime.inspect(&bytes)) {
        Ok(Inspection::Component { world, .. }) => world,
        Ok(_) | Err(_) => {
            println!("{}: not a component this host reads; `omnigent plugin check` says why", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    match (world, events, script) {
        (World::Policy, Some(events), None) => policy_test::test(&runtime, file, events, params).await,
        (World::Harness, None, Some(script)) => harness_test::test(&runtime, &bytes, script).await,
        (World::Policy, _, _) => {
            println!("{}: a policy; say which recorded events to judge with --events FILE", file.display());
            Ok(ExitCode::from(2))
        }
        (World::Harness, _, _) => {
            println!("{}: a harness; say which scripted conversation to run with --script FILE", file.display());
            Ok(ExitCode::from(2))
        }
        (World::Unknown, _, _) => {
            println!("{}: neither a policy nor a harness; `omnigent plugin check` says why", file.display());
            Ok(ExitCode::FAILURE)
        }
    }
}
