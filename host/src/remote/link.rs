//! A turn's host calls that run on the session's runner: its model calls (with the runner's keys) and its builtin
//! tools (in the runner's files). The turn itself — the harness, the policies, the journal, the log — stays on the
//! server, so a runner that goes away costs only the call it was making: a model call is made again once the
//! runner is back (the text it had streamed is superseded, as after a provider's retry); a tool that was running
//! reports that it may or may not have finished, as after a server restart. While the runner is away the session
//! says `runner_unavailable` and the turn waits.

use std::sync::Arc;
use std::time::Duration;

use omnigent_runtime::harness::llm::Completion;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::hub::{CallStream, RunnerHub};
use super::wire::{Call, FromRunner, Outcome};
use crate::ids::SessionId;
use crate::llm::{ChatRequest, LlmError, Streamed};
use crate::protocol::{self, ErrorSource};
use crate::session::Sessions;

/// The session's runner, for one turn.
pub struct RunnerLink {
    pub hub: Arc<RunnerHub>,
    pub sessions: Sessions,
    pub runner: String,
    pub session: SessionId,
    /// The session's config (with its model override), as the runner builds its provider and tools from it.
    pub config: Value,
    pub cancel: CancellationToken,
}

fn interrupted() -> LlmError {
    LlmError::Fatal { code: "interrupted".into(), message: "the turn was interrupted".into() }
}

impl RunnerLink {
    /// Sends a call to the runner, waiting while it cannot be reached (the session says so, once); None when the
    /// turn was interrupted first.
    async fn send(&self, call: &Call) -> Option<CallStream> {
        let mut said = false;
        loop {
            if let Some(stream) = self.hub.open(&self.runner, &self.session, call.clone()).await {
                return Some(stream);
            }
            if !said {
                said = true;
                let message =
                    format!("runner {} is not connected; this turn goes on when it connects again", self.runner);
                let notice = protocol::error(ErrorSource::Runner, "runner_unavailable", &message);
                if let Err(e) = self.sessions.emit(&self.session, vec![notice], Vec::new()).await {
                    tracing::warn!(session = %self.session, error = %e, "could not record that the runner is away");
                }
                tracing::warn!(session = %self.session, runner = %self.runner, "waiting for the session's runner");
            }
            // A pause first: a replica that lists the runner may still fail to relay to it.
            let reachable = async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.hub.until_reachable(&self.runner).await
            };
            tokio::select! {
                _ = reachable => {}
                _ = self.cancel.cancelled() => return None,
            }
        }
    }

    /// A model call on the runner, streaming as a local one does.
    pub async fn complete(
        &self,
        request: &ChatRequest,
        on_delta: &mut (dyn FnMut(Streamed<'_>) + Send),
        on_retry: &mut (dyn FnMut(u32, Duration, &LlmError) + Send),
    ) -> Result<Completion, LlmError> {
        let call = Call::Complete { config: self.config.clone(), request: request.clone() };
        let mut attempt = 0;
        loop {
            let Some(mut stream) = self.send(&call).await else { return Err(interrupted()) };
            loop {
                let frame = tokio::select! {
                    f = stream.frames.recv() => f,
                    _ = self.cancel.cancelled() => {
                        self.hub.close(&self.runner, &stream).await;
                        return Err(interrupted());
                    }
                };
                match frame {
                    Some(FromRunner::Text { text, .. }) => on_delta(Streamed::Text(&text)),
                    Some(FromRunner::Reasoning { text, .. }) => on_delta(Streamed::ReasoningSummary(&text)),
                    Some(FromRunner::Retry { attempt, delay_ms, error, .. }) => {
                        on_retry(attempt, Duration::from_millis(delay_ms), &error)
                    }
                    Some(FromRunner::Done { result, .. }) => {
                        return match result {
                            Outcome::Completed(completion) => Ok(completion),
                            Outcome::ModelFailed(e) => Err(e),
                            other => Err(LlmError::Fatal { code: "runner_error".into(), message: refusal(other) }),
                        };
                    }
                    None => break,
                }
            }
            // The runner went away mid-call: the call is made again when it is back, its text so far superseded.
            attempt += 1;
            let gone =
                LlmError::Transient { message: format!("runner {} disconnected during the model call", self.runner) };
            on_retry(attempt, Duration::ZERO, &gone);
        }
    }

    /// A builtin tool on the runner.
    pub async fn tool(&self, name: &str, arguments: &str) -> Result<String, String> {
        let call = Call::Tool { config: self.config.clone(), name: name.to_string(), arguments: arguments.to_string() };
        let Some(mut stream) = self.send(&call).await else { return Err("the turn was interrupted".into()) };
        loop {
            let frame = tokio::select! {
                f = stream.frames.recv() => f,
                _ = self.cancel.cancelled() => {
                    self.hub.close(&self.runner, &stream).await;
                    return Err("the turn was interrupted".into());
                }
            };
            match frame {
                Some(FromRunner::Done { result: Outcome::ToolOutput(output), .. }) => return Ok(output),
                Some(FromRunner::Done { result, .. }) => return Err(refusal(result)),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "runner {} disconnected while the tool ran: it may or may not have finished",
                        self.runner
                    ));
                }
            }
        }
    }
}

fn refusal(outcome: Outcome) -> String {
    match outcome {
        Outcome::ToolFailed(m) | Outcome::Refused(m) => m,
        Outcome::ModelFailed(e) => e.to_string(),
        Outcome::Completed(_) | Outcome::ToolOutput(_) => "the runner answered a different kind of call".into(),
    }
}
