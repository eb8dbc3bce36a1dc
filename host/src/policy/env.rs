//! Where policy components come from: builtins embedded in the binary or `.wasm` paths, compiled once per
//! process, and the chain a session's turn runs (its own policies, its config's, the server's).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use omnigent_runtime::{BUILTIN_POLICIES, PolicyComponent, Runtime};
use serde_json::Value;

use super::{Level, Loaded, PolicyDecl, PolicyMap, builtin_for};

/// A component file's size and modification time: a change means it was rebuilt.
type FileStamp = (u64, Option<std::time::SystemTime>);

/// A loaded component and, for a file, the stamp it was loaded at.
struct Cached {
    stamp: Option<FileStamp>,
    component: Arc<PolicyComponent>,
}

/// Loads policy components once per process and keeps the server-wide defaults.
pub struct PolicyEnv {
    runtime: Arc<Runtime>,
    /// Server-wide defaults (`omnigent server --policies FILE`), judged after the session's and the agent's.
    pub server: PolicyMap,
    /// By source (`builtin:<name>`, `path:<file>`), with the file's size and time when loaded: a rebuilt file
    /// replaces its older version here, which the runtime then drops once no session's chain holds it.
    loaded: Mutex<HashMap<String, Cached>>,
}

impl PolicyEnv {
    pub fn new(runtime: Arc<Runtime>, server: PolicyMap) -> PolicyEnv {
        PolicyEnv { runtime, server, loaded: Mutex::default() }
    }

    /// The component a declaration names (compiled on first use, then cached).
    pub async fn component(&self, decl: &PolicyDecl) -> Result<Arc<PolicyComponent>, String> {
        let (key, stamp) = match (&decl.handler, &decl.component) {
            (Some(h), _) => {
                let name = builtin_for(h).ok_or_else(|| format!("no builtin policy '{h}'"))?;
                (format!("builtin:{name}"), None)
            }
            (None, Some(path)) => {
                // The file's size and time, so a rebuilt policy is picked up without a restart.
                let meta =
                    tokio::fs::metadata(path).await.map_err(|e| format!("cannot read policy component {path}: {e}"))?;
                (format!("path:{path}"), Some((meta.len(), meta.modified().ok())))
            }
            (None, None) => return Err("the policy names no handler or component".into()),
        };
        if let Some(cached) = self.loaded.lock().unwrap().get(&key)
            && cached.stamp == stamp
        {
            return Ok(cached.component.clone());
        }
        let bytes: Vec<u8> = match key.split_once(':') {
            Some(("builtin", name)) => {
                BUILTIN_POLICIES.iter().find(|(n, _)| *n == name).map(|(_, b)| b.to_vec()).unwrap_or_default()
            }
            _ => {
                let path = decl.component.clone().unwrap_or_default();
                crate::regular_file::read_async(std::path::Path::new(&path), crate::bounds::MAX_COMPONENT_BYTES)
                    .await
                    .map_err(|e| format!("policy component: {e}"))?
            }
        };
        let runtime = self.runtime.clone();
        let component = tokio::task::spawn_blocking(move || runtime.load_policy(&bytes))
            .await
            .map_err(|e| format!("loading the policy panicked: {e}"))?
            .map_err(|e| format!("{}: {e}", decl.source_name()))?;
        self.loaded.lock().unwrap().insert(key, Cached { stamp, component: component.clone() });
        Ok(component)
    }

    /// Loads a declaration (its component compiled or from the cache) without running it.
    async fn prepare(&self, name: &str, level: Level, decl: &PolicyDecl) -> Result<Loaded, String> {
        decl.validate(name)?;
        let component = self.component(decl).await?;
        Ok(Loaded::new(name, level, decl.clone(), component))
    }

    /// Checks declarations where they are made (session or agent creation, REST, server start): each component
    /// loads and accepts its parameters in its own `init`, so a mistake is refused up front, with the component's
    /// message, rather than denying the first turn's actions.
    pub async fn check(&self, map: &PolicyMap) -> Result<(), String> {
        for (name, decl) in &map.0 {
            decl.validate(name)?;
            let component = self.component(decl).await?;
            let params = Value::Object(decl.factory_params.clone()).to_string();
            component.check_params(&params, decl.limits()).await.map_err(|e| format!("policies.{name}: {e}"))?;
        }
        Ok(())
    }

    /// The chain for a session: its own policies, then its config's, then the server's; disabled ones left out.
    /// Parameters were checked when they were declared (`check`); a component that refuses them now counts as a
    /// failing policy.
    pub async fn chain(&self, session: &PolicyMap, agent: &PolicyMap) -> Result<Vec<Loaded>, String> {
        let mut out = Vec::new();
        for (level, map) in [(Level::Session, session), (Level::Agent, agent), (Level::Server, &self.server)] {
            for (name, decl) in map.0.iter().filter(|(_, d)| d.enabled) {
                out.push(self.prepare(name, level, decl).await?);
            }
        }
        Ok(out)
    }
}
