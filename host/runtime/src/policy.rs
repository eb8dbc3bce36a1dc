//! The policy world (`omnigent:policy@0.1.0`): bindings and running one evaluation.
//!
//! Every call gets a fresh `Store` from the pre-linked component, so nothing a policy did in one evaluation can leak
//! into the next; state that must persist goes through the session's policy state, which the host owns. Each call
//! runs under a memory cap and a wall-clock deadline. With the pooling allocator a builtin's evaluation is ~9–11 µs,
//! nearly all of it wasmtime making and freeing the instance (host/runtime/build.rs says how the builtins are built
//! to keep that small); a component built for wasm32-wasip2 pays ~2–3 µs more for its WASI shims.

use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtxView, WasiView};

use crate::wasi::EmptyWasi;
use crate::{Failure, LoadError};

wasmtime::component::bindgen!({
    path: "../../wit/policy",
    world: "policy",
    exports: { default: async },
});

// `self::omnigent` is the module bindgen made for the WIT package `omnigent:policy`, not the host crate.
pub use self::omnigent::policy::types::{Context, Elicitation, Phase, StateAction, StateUpdate, Usage, Verdict};

/// What one evaluation may use.
#[derive(Clone, Copy, Debug)]
pub struct PolicyLimits {
    pub memory_bytes: usize,
    pub deadline: Duration,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits { memory_bytes: 32 << 20, deadline: Duration::from_millis(500) }
    }
}

/// Why an evaluation gave no decision.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFailure {
    #[error("{0}")]
    Sandbox(#[from] Failure),
    /// `init` refused the parameters.
    #[error("invalid parameters: {0}")]
    Params(String),
}

/// Per-store state: WASI (wasi.rs) and the limits.
pub struct PolicyState {
    wasi: EmptyWasi,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for PolicyState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: self.wasi.ctx(), table: &mut self.table }
    }
}

pub(crate) fn linker(engine: &Engine) -> anyhow::Result<Linker<PolicyState>> {
    let mut linker = Linker::new(engine);
    // A component built for wasm32-wasip2 (as plugin authors build theirs) imports WASI; see wasi.rs for what it gets.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Ok(linker)
}

/// A compiled, pre-linked policy component.
pub struct PolicyComponent {
    pre: PolicyPre<PolicyState>,
}

impl PolicyComponent {
    pub(crate) fn new(linker: &Linker<PolicyState>, component: &Component) -> Result<Self, LoadError> {
        let wrong = |e: wasmtime::Error| {
            LoadError::WrongWorld(format!("the component does not fit the policy world omnigent:policy@0.1.0: {e:#}"))
        };
        let pre = PolicyPre::new(linker.instantiate_pre(component).map_err(wrong)?).map_err(wrong)?;
        Ok(PolicyComponent { pre })
    }

    fn store(&self, limits: PolicyLimits) -> Store<PolicyState> {
        let memory = limits.memory_bytes.min(crate::harness::MAX_MEMORY_CEILING);
        let state = PolicyState {
            wasi: EmptyWasi::default(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory)
                // A Python policy (componentize-py) is ~20 core instances; a Rust one, a handful.
                .instances(64)
                .tables(64)
                .trap_on_grow_failure(true)
                .build(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        crate::arm_deadline(&mut store, crate::later(Instant::now(), limits.deadline), |_| Duration::ZERO);
        store
    }

    /// Runs `f` on a fresh instance under `limits`.
    async fn with_instance<T>(
        &self,
        limits: PolicyLimits,
        f: impl AsyncFnOnce(&Policy, &mut Store<PolicyState>) -> wasmtime::Result<Result<T, PolicyFailure>>,
    ) -> Result<T, PolicyFailure> {
        let mut store = self.store(limits);
        let classify =
            |e: wasmtime::Error| PolicyFailure::Sandbox(crate::classify(e, limits.memory_bytes, limits.deadline));
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await.map_err(classify)?;
            f(&instance, &mut store).await.map_err(classify)?
        };
        match tokio::time::timeout(limits.deadline, run).await {
            Ok(result) => result,
            Err(_) => Err(PolicyFailure::Sandbox(Failure::Deadline(limits.deadline))),
        }
    }

    /// The policy's name, description and parameter schema.
    pub async fn describe(&self, limits: PolicyLimits) -> Result<Descriptor, PolicyFailure> {
        self.with_instance(limits, async |p, store| Ok(Ok(p.call_describe(store).await?))).await
    }

    /// Checks parameters (`init`) without evaluating anything.
    pub async fn check_params(&self, params: &str, limits: PolicyLimits) -> Result<(), PolicyFailure> {
        self.with_instance(limits, async |p, store| {
            Ok(p.call_init(&mut *store, params).await?.map_err(PolicyFailure::Params))
        })
        .await
    }

    /// `init(params)` then `evaluate(event)` in one fresh instance.
    pub async fn evaluate(&self, params: &str, event: Event, limits: PolicyLimits) -> Result<Decision, PolicyFailure> {
        let evaluation = self.with_instance(limits, async |p, store| {
            if let Err(e) = p.call_init(&mut *store, params).await? {
                return Ok(Err(PolicyFailure::Params(e)));
            }
            Ok(Ok(p.call_evaluate(&mut *store, &event).await?))
        });
        // A stage of the turn path as the host names them (host/src/stages.rs).
        tracing::Instrument::instrument(evaluation, tracing::info_span!(target: "stage", "policy")).await
    }
}
