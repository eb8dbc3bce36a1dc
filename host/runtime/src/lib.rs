//! The plugin sandbox: the one module that owns every wasmtime opinion.
//!
//! - One `Engine` per process: epoch interruption (a 10 ms ticker thread), the pooling allocator when the address
//!   space allows it (on-demand allocation otherwise), async host calls.
//! - Components are compiled once and cached on disk (keyed by content hash and engine compatibility), so a
//!   restart deserializes in ~0.2 ms instead of compiling for ~100 ms+.
//! - `InstancePre` per component; a fresh `Store` per turn with a memory cap and a wall-clock deadline. After any
//!   trap an instance is poisoned, so nothing is reused across turns.
//! - A guest that traps, loops or allocates past its cap fails its own turn with a `TurnFailure` that names the
//!   cause; the host and every other session carry on.

pub mod harness;
pub mod inspect;
mod loaded;
pub mod policy;
pub mod testing;
mod wasi;

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline};

pub use harness::{HarnessComponent, HostState, TurnFailure, TurnHost, TurnLimits};
pub use inspect::{Inspection, World};
use loaded::Loaded;
pub use policy::{PolicyComponent, PolicyFailure, PolicyLimits};

/// The builtin default harness (`harnesses/agent`), embedded in the binary.
pub const AGENT_HARNESS: &[u8] = include_bytes!(concat!(env!("OMNIGENT_GUEST_DIR"), "/agent.wasm"));

/// The builtin policy components (`policies/`), embedded in the binary, by component name.
pub const BUILTIN_POLICIES: [(&str, &[u8]); 5] = [
    ("ask_on_os_tools", include_bytes!(concat!(env!("OMNIGENT_GUEST_DIR"), "/ask_on_os_tools.wasm"))),
    ("max_tool_calls", include_bytes!(concat!(env!("OMNIGENT_GUEST_DIR"), "/max_tool_calls.wasm"))),
    ("cost_budget", include_bytes!(concat!(env!("OMNIGENT_GUEST_DIR"), "/cost_budget.wasm"))),
    ("detect_loop", include_bytes!(concat!(env!("OMNIGENT_GUEST_DIR"), "/detect_loop.wasm"))),
    ("tool_filter", include_bytes!(concat!(env!("OMNIGENT_GUEST_DIR"), "/tool_filter.wasm"))),
];

/// Why guest code was stopped (a harness turn or a policy evaluation).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("ran past its deadline of {0:?} and was stopped")]
    Deadline(Duration),
    #[error("tried to use more than its memory limit of {} MiB and was stopped", .0 >> 20)]
    OutOfMemory(usize),
    #[error("crashed (trap: {0})")]
    Trap(String),
    #[error("could not be started: {0}")]
    Instantiate(String),
}

/// Makes a store yield to the executor every epoch tick (a looping guest never starves other tasks) and trap once
/// `deadline` (moved later by `excluded`: time that does not count, such as waiting for a human) has passed.
/// `at + after`, or a year after `at` if that cannot be represented (a deadline too far to matter).
pub(crate) fn later(at: Instant, after: Duration) -> Instant {
    at.checked_add(after).unwrap_or_else(|| at + Duration::from_secs(365 * 24 * 60 * 60))
}

pub(crate) fn arm_deadline<T: Send>(store: &mut Store<T>, deadline: Instant, excluded: fn(&T) -> Duration) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |ctx| {
        if Instant::now() >= later(deadline, excluded(ctx.data())) {
            Ok(UpdateDeadline::Interrupt)
        } else {
            // tokio's yield_now lets the timer and IO drivers run before this task resumes.
            Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
        }
    });
}

pub(crate) fn classify(error: wasmtime::Error, memory: usize, deadline: Duration) -> Failure {
    let text = format!("{error:#}");
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Deadline(deadline),
        _ if text.contains("memory") && (text.contains("limit") || text.contains("grow")) => {
            Failure::OutOfMemory(memory)
        }
        Some(trap) => Failure::Trap(trap.to_string()),
        None => Failure::Trap(text.lines().next().unwrap_or("unknown").to_string()),
    }
}

/// Where the build put the guest components (test fixtures are read from here).
pub const GUEST_DIR: &str = env!("OMNIGENT_GUEST_DIR");

/// The initial heap size up to which a component always gets a copy-on-write memory image (see `config`).
const MAX_DENSE_IMAGE: u64 = 64 << 20;

/// How much of a freed linear memory stays mapped for the next instance (what a small guest touches).
const KEEP_RESIDENT_MEMORY: usize = 256 << 10;
/// How much of a freed table and async stack stays mapped.
const KEEP_RESIDENT_OTHER: usize = 64 << 10;

/// Epoch tick: how often a running guest yields to the async executor and checks its deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Pooled instance slots; more concurrent instances than this fall back to failing instantiation, so the turn
/// runner bounds concurrency below it.
pub const POOL_INSTANCES: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid WebAssembly component: {0}")]
    Invalid(String),
    /// The component's imports or exports do not match the world it was loaded as.
    #[error("{0}")]
    WrongWorld(String),
}

/// The process's wasmtime engine and its caches.
pub struct Runtime {
    engine: Engine,
    harness_linker: Linker<HostState>,
    policy_linker: Linker<policy::PolicyState>,
    cache_dir: Option<PathBuf>,
    pooling: bool,
    harnesses: Loaded<HarnessComponent>,
    policies: Loaded<PolicyComponent>,
    agent: std::sync::OnceLock<Arc<HarnessComponent>>,
    /// Held while a component compiles: concurrent first uses of one component wait for its one compile.
    compiling: Mutex<()>,
    /// Components compiled (not found in a cache) since start.
    compiled: std::sync::atomic::AtomicU64,
    /// The component `inspect` compiled last, so loading it next (as `omnigent plugin check` does) does not compile
    /// it again: a Python policy takes seconds.
    inspected: Mutex<Option<([u8; 32], Component)>>,
}

impl Runtime {
    /// Builds the engine. `cache_dir` keeps compiled components across restarts (None: compile every start).
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Arc<Runtime>> {
        let (engine, pooling) = match Engine::new(&config(true)) {
            Ok(engine) => (engine, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable (address space?); using on-demand allocation");
                (Engine::new(&config(false)).map_err(anyhow::Error::from)?, false)
            }
        };
        start_epoch_ticker(&engine);
        let harness_linker = harness::linker(&engine)?;
        let policy_linker = policy::linker(&engine)?;
        if let Some(dir) = &cache_dir
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the component cache dir; compiling without it");
        }
        Ok(Arc::new(Runtime {
            engine,
            harness_linker,
            policy_linker,
            cache_dir,
            pooling,
            harnesses: Loaded::default(),
            policies: Loaded::default(),
            agent: Default::default(),
            compiling: Mutex::default(),
            compiled: Default::default(),
            inspected: Mutex::new(None),
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// How many components were compiled (or read from the disk cache) since start: each at most once.
    pub fn compilations(&self) -> u64 {
        self.compiled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The builtin agent harness, if it was loaded already (no hashing on the hot path).
    pub fn agent(&self) -> Option<Arc<HarnessComponent>> {
        self.agent.get().cloned()
    }

    /// Loads the builtin agent harness (compiling it, or reading the disk cache, the first time).
    pub fn load_agent(&self) -> Result<Arc<HarnessComponent>, LoadError> {
        if let Some(a) = self.agent.get() {
            return Ok(a.clone());
        }
        let loaded = self.load_harness(AGENT_HARNESS)?;
        Ok(self.agent.get_or_init(|| loaded).clone())
    }

    /// Compiles (or fetches from the caches) a harness component and pre-links it.
    pub fn load_harness(&self, bytes: &[u8]) -> Result<Arc<HarnessComponent>, LoadError> {
        self.load(&self.harnesses, bytes, |c| HarnessComponent::new(&self.harness_linker, c))
    }

    /// Compiles (or fetches from the caches) a policy component and pre-links it. CPU work the first time: call it
    /// off the async workers.
    pub fn load_policy(&self, bytes: &[u8]) -> Result<Arc<PolicyComponent>, LoadError> {
        self.load(&self.policies, bytes, |c| PolicyComponent::new(&self.policy_linker, c))
    }

    /// The pre-linked component for `bytes` from `cache`, made by `link` (after compiling, or reading the disk cache)
    /// the first time.
    fn load<T>(
        &self,
        cache: &Loaded<T>,
        bytes: &[u8],
        link: impl FnOnce(&Component) -> Result<T, LoadError>,
    ) -> Result<Arc<T>, LoadError> {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(found) = cache.get(&digest) {
            return Ok(found);
        }
        // One compile at a time (single flight): whoever waited here finds the component cached.
        let _compiling = self.compiling.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(found) = cache.get(&digest) {
            return Ok(found);
        }
        let component = self.compile(bytes, &digest)?;
        inspect::refuse_network(&self.engine, &component)?;
        let loaded = Arc::new(link(&component)?);
        cache.insert(digest, loaded.clone());
        Ok(loaded)
    }

    fn compile(&self, bytes: &[u8], digest: &[u8; 32]) -> Result<Component, LoadError> {
        if let Some((inspected, component)) = &*self.inspected.lock().unwrap()
            && inspected == digest
        {
            return Ok(component.clone());
        }
        self.compiled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")));
        };
        let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut engine_hash);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let path = dir.join(format!("{hex}-{:016x}.cwasm", engine_hash.finish()));
        if path.exists() {
            // SAFETY: the file name binds it to these exact bytes and this engine's configuration and version, and
            // only this process kind writes the cache dir.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "stale component cache entry; recompiling")
                }
            }
        }
        let started = std::time::Instant::now();
        let component = Component::new(&self.engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "compiled a component");
        match component.serialize() {
            Ok(compiled) => {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                if std::fs::write(&tmp, compiled).and_then(|()| std::fs::rename(&tmp, &path)).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                    tracing::warn!(path = %path.display(), "cannot write the component cache");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot serialize a compiled component"),
        }
        Ok(component)
    }
}

fn config(pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Copy-on-write memory images for initial heaps up to this size, however sparse: a Python policy's
    // pre-initialized heap (componentize-py) spans more than wasmtime's 16 MiB default with gaps, and without an
    // image every instantiation copies it (2 ms instead of µs). Bounded by the component size cap, so a hostile
    // sparse module cannot make a larger image.
    config.memory_guaranteed_dense_image_size(MAX_DENSE_IMAGE);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES);
        pool.total_core_instances(POOL_INSTANCES * 4);
        pool.total_memories(POOL_INSTANCES * 2);
        pool.total_tables(POOL_INSTANCES * 2);
        pool.max_memory_size(harness::MAX_MEMORY_CEILING);
        // A freed slot keeps its low pages mapped and has only the pages the guest dirtied reset (found with the
        // PAGEMAP_SCAN ioctl, Linux 6.7+), instead of an madvise that drops them all: the next instance then takes
        // no page faults and no TLB-shootdown IPIs. A policy evaluation went from 25–34 µs to 12–15 µs with it.
        // Without the ioctl (older kernels) memset of the kept pages would cost more than it saves, so keep none.
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(wasmtime::Enabled::Yes);
            pool.linear_memory_keep_resident(KEEP_RESIDENT_MEMORY);
            pool.table_keep_resident(KEEP_RESIDENT_OTHER);
            pool.async_stack_keep_resident(KEEP_RESIDENT_OTHER);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Advances the engine's epoch every tick for as long as the engine lives.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawn the epoch ticker");
}
