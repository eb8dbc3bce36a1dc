//! The harness world (`omnigent:harness@0.1.0`): bindings, the host side of its imports, and running a turn.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtxView, WasiView};

use crate::wasi::EmptyWasi;
use crate::{Failure, LoadError};

wasmtime::component::bindgen!({
    path: "../../wit/harness",
    world: "harness",
    imports: { default: async | trappable },
    exports: { default: async },
    // The host journals what it answers a harness (history, completions, tool results) and replays it after a
    // restart: the WIT values serialize as they are.
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

// `self::omnigent` is the module bindgen made for the WIT package `omnigent:harness`, not the host crate.
pub use self::omnigent::harness::session::LogLevel;
pub use self::omnigent::harness::types::{Message, Role, ToolCall, ToolSpec};
pub use self::omnigent::harness::{llm, tools};

/// The most memory any harness may be configured to use (the pooling allocator's slot size).
pub const MAX_MEMORY_CEILING: usize = 1 << 30;

/// What a turn may use.
#[derive(Clone, Copy, Debug)]
pub struct TurnLimits {
    /// Linear memory cap for the instance.
    pub memory_bytes: usize,
    /// Wall-clock deadline for the whole turn, model calls included.
    pub deadline: Duration,
}

impl Default for TurnLimits {
    fn default() -> Self {
        TurnLimits { memory_bytes: 256 << 20, deadline: Duration::from_secs(30 * 60) }
    }
}

/// Why a turn did not complete.
#[derive(Debug, thiserror::Error)]
pub enum TurnFailure {
    /// The harness returned an error (e.g. the model failed, max steps, cancelled).
    #[error("{}: {}", .0.code, .0.message)]
    Harness(Error),
    #[error("the harness {0}")]
    Sandbox(Failure),
}

impl TurnFailure {
    /// The `last_task_error.code` for this failure.
    pub fn code(&self) -> &str {
        match self {
            TurnFailure::Harness(e) => &e.code,
            TurnFailure::Sandbox(Failure::Deadline(_)) => "harness_timeout",
            TurnFailure::Sandbox(Failure::OutOfMemory(_)) => "harness_out_of_memory",
            TurnFailure::Sandbox(Failure::Trap(_)) => "harness_trap",
            TurnFailure::Sandbox(Failure::Instantiate(_)) => "harness_instantiate_failed",
        }
    }
}

/// The host side of a turn: the session, its model provider and its tools. Implemented by the server.
#[async_trait::async_trait]
pub trait TurnHost: Send + Sync {
    async fn complete(&self, request: llm::Request) -> Result<llm::Completion, Error>;
    async fn tools(&self) -> Vec<ToolSpec>;
    async fn call_tool(&self, call_id: String, name: String, arguments: String) -> tools::ToolResult;
    async fn history(&self) -> Vec<Message>;
    async fn steering(&self) -> Vec<String>;
    fn cancelled(&self) -> bool;
    async fn emit(&self, event_type: String, data: String) -> Result<(), Error>;
    async fn write_file(&self, name: String, content: Vec<u8>) -> Result<String, Error>;
    fn log(&self, level: LogLevel, message: String);
    /// Time this turn spent waiting for a human (an approval), including a wait in progress. It does not count
    /// against the turn's deadline: a turn may wait for an answer far longer than it may compute.
    fn waited(&self) -> Duration {
        Duration::ZERO
    }
}

/// Per-store state: WASI (wasi.rs), limits, and the turn's host.
pub struct HostState {
    wasi: EmptyWasi,
    table: ResourceTable,
    limits: StoreLimits,
    host: Arc<dyn TurnHost>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: self.wasi.ctx(), table: &mut self.table }
    }
}

impl omnigent::harness::types::Host for HostState {}

impl omnigent::harness::llm::Host for HostState {
    async fn complete(&mut self, request: llm::Request) -> wasmtime::Result<Result<llm::Completion, Error>> {
        Ok(self.host.complete(request).await)
    }
}

impl omnigent::harness::tools::Host for HostState {
    async fn available(&mut self) -> wasmtime::Result<Vec<ToolSpec>> {
        Ok(self.host.tools().await)
    }

    async fn call(&mut self, call_id: String, name: String, arguments: String) -> wasmtime::Result<tools::ToolResult> {
        Ok(self.host.call_tool(call_id, name, arguments).await)
    }
}

impl omnigent::harness::session::Host for HostState {
    async fn history(&mut self) -> wasmtime::Result<Vec<Message>> {
        Ok(self.host.history().await)
    }

    async fn steering(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.host.steering().await)
    }

    async fn cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.host.cancelled())
    }

    async fn emit(&mut self, event_type: String, data: String) -> wasmtime::Result<Result<(), Error>> {
        Ok(self.host.emit(event_type, data).await)
    }

    async fn write_file(&mut self, name: String, content: Vec<u8>) -> wasmtime::Result<Result<String, Error>> {
        Ok(self.host.write_file(name, content).await)
    }

    async fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        // Bound what a guest can push into the server log.
        let message: String = message.chars().take(4096).collect();
        self.host.log(level, message);
        Ok(())
    }
}

pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // A component built for wasm32-wasip2 (as plugin authors build theirs) imports WASI; see wasi.rs for what it gets.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Harness::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// A compiled, pre-linked harness component: instantiating it is a fresh Store and ~20 µs.
pub struct HarnessComponent {
    pre: HarnessPre<HostState>,
}

impl HarnessComponent {
    pub(crate) fn new(linker: &Linker<HostState>, component: &Component) -> Result<Self, LoadError> {
        let wrong = |e: wasmtime::Error| {
            LoadError::WrongWorld(format!("the component does not fit the harness world omnigent:harness@0.1.0: {e:#}"))
        };
        let pre = HarnessPre::new(linker.instantiate_pre(component).map_err(wrong)?).map_err(wrong)?;
        Ok(HarnessComponent { pre })
    }

    /// Runs one turn in a fresh instance under `limits`.
    pub async fn run_turn(
        &self,
        host: Arc<dyn TurnHost>,
        input: TurnInput,
        limits: TurnLimits,
    ) -> Result<TurnOutput, TurnFailure> {
        // A stage of the turn path as the host names them (host/src/stages.rs): the instance, store to started.
        let instantiating = tracing::info_span!(target: "stage", "instantiate");
        let memory = limits.memory_bytes.min(MAX_MEMORY_CEILING);
        let state = HostState {
            wasi: EmptyWasi::default(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory)
                .instances(64)
                .tables(64)
                .trap_on_grow_failure(true)
                .build(),
            host,
        };
        let host = state.host.clone();
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        let started = Instant::now();
        crate::arm_deadline(&mut store, crate::later(started, limits.deadline), |s: &HostState| s.host.waited());
        let classify = |e: wasmtime::Error| TurnFailure::Sandbox(crate::classify(e, memory, limits.deadline));
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await.map_err(|e| match classify(e) {
                TurnFailure::Sandbox(Failure::Trap(m)) => TurnFailure::Sandbox(Failure::Instantiate(m)),
                other => other,
            })?;
            drop(instantiating);
            match instance.call_run_turn(&mut store, input).await {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(e)) => Err(TurnFailure::Harness(e)),
                Err(e) => Err(classify(e)),
            }
        };
        // The epoch callback stops guest code; this also bounds time spent awaiting host calls (but not a human).
        tokio::pin!(run);
        loop {
            let until = crate::later(crate::later(started, limits.deadline), host.waited());
            tokio::select! {
                result = &mut run => return result,
                _ = tokio::time::sleep_until(until.into()) => {
                    if Instant::now() >= crate::later(crate::later(started, limits.deadline), host.waited()) {
                        return Err(TurnFailure::Sandbox(Failure::Deadline(limits.deadline)));
                    }
                }
            }
        }
    }
}
