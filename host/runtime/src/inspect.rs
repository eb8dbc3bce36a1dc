//! What a `.wasm` file is, for a plugin author (`omnigent plugin check`): a component or not, which of our worlds
//! it implements (told by its exports), what it imports, and whether this host can load it.

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::{LoadError, Runtime};

/// Interfaces a plugin may not import: plugins get no network on this host.
const NETWORK_INTERFACES: [&str; 2] = ["wasi:sockets/", "wasi:http/"];

/// Refuses a component that imports the network (checked on every load, and by `omnigent plugin check`).
pub(crate) fn refuse_network(engine: &Engine, component: &Component) -> Result<(), LoadError> {
    let imports = component.component_type().imports(engine).map(|(name, _)| name.to_string()).collect::<Vec<_>>();
    match imports.iter().find(|i| NETWORK_INTERFACES.iter().any(|n| i.starts_with(n))) {
        Some(network) => Err(LoadError::WrongWorld(format!(
            "it imports {network}, and plugins get no network on this host; remove the code (or dependency) that \
             pulls it in"
        ))),
        None => Ok(()),
    }
}

/// Which of this host's worlds a component's exports fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum World {
    /// `omnigent:policy` — exports `describe`, `init`, `evaluate`.
    Policy,
    /// `omnigent:harness` — exports `run-turn`.
    Harness,
    /// Neither.
    Unknown,
}

/// What a file holds.
#[derive(Debug)]
pub enum Inspection {
    /// Not WebAssembly at all.
    NotWasm,
    /// A core module: it needs to be made a component (built for wasm32-wasip2, or `wasm-tools component new`).
    CoreModule,
    /// A component, its world, and the names of what it imports and exports.
    Component { world: World, imports: Vec<String>, exports: Vec<String> },
}

impl Runtime {
    /// Reads a file's header and, for a component, its imports and exports (compiling it: CPU work).
    pub fn inspect(&self, bytes: &[u8]) -> Result<Inspection, LoadError> {
        let Some(header) = bytes.get(..8).filter(|h| h.starts_with(b"\0asm")) else {
            return Ok(Inspection::NotWasm);
        };
        if header[4..8] == [1, 0, 0, 0] {
            return Ok(Inspection::CoreModule);
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let component = self.compile(bytes, &digest)?;
        *self.inspected.lock().unwrap() = Some((digest, component.clone()));
        let ty = component.component_type();
        let imports: Vec<String> = ty.imports(self.engine()).map(|(name, _)| name.to_string()).collect();
        let exports: Vec<String> = ty.exports(self.engine()).map(|(name, _)| name.to_string()).collect();
        let has = |name: &str| exports.iter().any(|e| e == name);
        let world = if has("evaluate") && has("describe") && has("init") {
            World::Policy
        } else if has("run-turn") {
            World::Harness
        } else {
            World::Unknown
        };
        Ok(Inspection::Component { world, imports, exports })
    }
}
