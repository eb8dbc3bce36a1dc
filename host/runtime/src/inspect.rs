//! What a `.wasm` file is, for a plugin author (`omnigent plugin check`): a component or not, which of our worlds
//! it implements (told by its exports), what it imports, and whether this host can load it.

use wasmtime::component::Component;

use crate::{LoadError, Runtime};

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
        let component = Component::new(self.engine(), bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
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
