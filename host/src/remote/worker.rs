//! The runner's side of the tunnel: it makes the calls the server sends — model calls with this machine's keys
//! (its `omnigent auth` credentials and, unless told otherwise, its environment), builtin tools in this machine's
//! files, confined as the session's config says. Calls run concurrently; a cancelled one is stopped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::wire::{Call, FromRunner, Outcome, ToRunner};
use crate::config::{SessionConfig, ToolKind};
use crate::credentials::Credentials;
use crate::llm::{Provider, Streamed};
use crate::sandbox::Sandbox;

/// What the runner makes its calls with.
#[derive(Clone)]
pub struct Worker {
    pub http: reqwest::Client,
    pub credentials: Arc<Credentials>,
    pub sandbox: Arc<Sandbox>,
    running: Arc<Mutex<HashMap<u64, AbortHandle>>>,
}

impl Worker {
    pub fn new(http: reqwest::Client, credentials: Arc<Credentials>, sandbox: Arc<Sandbox>) -> Worker {
        Worker { http, credentials, sandbox, running: Arc::default() }
    }

    /// Starts a call (its frames go to `out`), or stops one.
    pub fn handle(&self, frame: ToRunner, out: mpsc::UnboundedSender<FromRunner>) {
        match frame {
            ToRunner::Call { id, session, call } => {
                let worker = self.clone();
                // Registered under the lock the task's own removal takes, so a call that ends at once is not left
                // behind in the map.
                let mut running = self.running.lock().unwrap();
                let task = tokio::spawn(async move {
                    let result = worker.make(id, &session, *call, &out).await;
                    worker.running.lock().unwrap().remove(&id);
                    let _ = out.send(FromRunner::Done { id, result });
                });
                running.insert(id, task.abort_handle());
            }
            ToRunner::Cancel { id } => {
                if let Some(task) = self.running.lock().unwrap().remove(&id) {
                    task.abort();
                }
            }
        }
    }

    /// Stops every call (the tunnel closed: nobody waits for them).
    pub fn abort_all(&self) {
        for (_, task) in self.running.lock().unwrap().drain() {
            task.abort();
        }
    }

    async fn make(&self, id: u64, session: &str, call: Call, out: &mpsc::UnboundedSender<FromRunner>) -> Outcome {
        match call {
            Call::Complete { config, request } => {
                let config: SessionConfig = match serde_json::from_value(config) {
                    Ok(c) => c,
                    Err(e) => return Outcome::Refused(format!("the runner cannot read the session's config: {e}")),
                };
                let provider = match Provider::from_config(&config, self.http.clone(), &self.credentials) {
                    Ok(p) => p,
                    Err(e) => return Outcome::ModelFailed(e),
                };
                tracing::info!(session, call = id, model = %request.model, "model call");
                let mut on_delta = |d: Streamed<'_>| {
                    let frame = match d {
                        Streamed::Text(t) => FromRunner::Text { id, text: t.to_string() },
                        Streamed::ReasoningSummary(t) => FromRunner::Reasoning { id, text: t.to_string() },
                    };
                    let _ = out.send(frame);
                };
                let mut on_retry = |attempt: u32, delay: Duration, e: &crate::llm::LlmError| {
                    let delay_ms = delay.as_millis() as u64;
                    let _ = out.send(FromRunner::Retry { id, attempt, delay_ms, error: e.clone() });
                };
                match provider.complete(&request, &mut on_delta, &mut on_retry).await {
                    Ok(completion) => Outcome::Completed(completion),
                    Err(e) => Outcome::ModelFailed(e),
                }
            }
            Call::Tool { config, name, arguments } => {
                let config: SessionConfig = match serde_json::from_value(config) {
                    Ok(c) => c,
                    Err(e) => return Outcome::Refused(format!("the runner cannot read the session's config: {e}")),
                };
                let Some(tool) = config.tools.get(&name).filter(|t| t.kind == ToolKind::Builtin) else {
                    return Outcome::Refused(format!("the session's config has no builtin tool '{name}'"));
                };
                let place = match self.sandbox.confine(&config) {
                    Ok(place) => place,
                    Err(why) => {
                        return Outcome::ToolFailed(format!("the session's tools cannot run on this runner: {why}"));
                    }
                };
                tracing::info!(session, call = id, tool = %name, "tool call");
                match crate::tools::run(&name, tool, &arguments, &place).await {
                    Ok(output) => Outcome::ToolOutput(output),
                    Err(message) => Outcome::ToolFailed(message),
                }
            }
        }
    }
}
