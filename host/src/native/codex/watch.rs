//! Between omnigent's turns a human may type into the Codex TUI: a watcher subscribed to the session's thread
//! sees such a turn start (a `userMessage` no omnigent turn sent) and records the prompt as the session's
//! message (`created_by: terminal`); the turn that starts for it follows codex's turn instead of starting one.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::rpc::{Incoming, Rpc};
use crate::native::bridge::{Bridge, Typed};
use crate::session::{Input, Sessions};

/// The start of the client id omnigent gives the messages it sends (`turn/start`, `turn/steer`).
pub const CLIENT_PREFIX: &str = "omnigent-";

/// Watches the thread until the connection ends (the app-server stopped) or the task is aborted.
pub async fn watch(bridge: Arc<Bridge>, sessions: Sessions, thread: String) {
    let Ok((rpc, mut incoming)) = Rpc::connect(&super::socket(&bridge)).await else { return };
    if let Err(e) = subscribe(&rpc, &thread).await {
        tracing::debug!(session = %bridge.session, error = %e, "cannot watch the codex thread");
        return;
    }
    let mut handled = std::collections::HashSet::new();
    while let Some(message) = incoming.recv().await {
        let Incoming::Notification { method, params } = message else {
            if matches!(message, Incoming::Closed) {
                return;
            }
            // Approval requests are the live turn's (or the TUI's) to answer.
            continue;
        };
        if method != "item/started" || params["threadId"] != thread.as_str() || params["item"]["type"] != "userMessage"
        {
            continue;
        }
        // A prompt of an omnigent turn (or a steering message) is not the human's at the terminal: ours carry
        // our client id; the TUI's carry its own; replays of history carry none.
        let client = params["item"]["clientId"].as_str().unwrap_or_default();
        if bridge.live().is_some() || client.is_empty() || client.starts_with(CLIENT_PREFIX) {
            continue;
        }
        let item = params["item"]["id"].as_str().unwrap_or_default().to_string();
        if !handled.insert(item) {
            continue;
        }
        let text: Vec<&str> =
            params["item"]["content"].as_array().into_iter().flatten().filter_map(|c| c["text"].as_str()).collect();
        let text = text.join("\n");
        if text.trim().is_empty() {
            continue;
        }
        tracing::info!(session = %bridge.session, "a prompt typed into the codex TUI becomes the session's message");
        let external_id = params["turnId"].as_str().map(str::to_string);
        bridge.set_typed(Typed { text: text.clone(), offset: 0, external_id });
        let content = vec![json!({"type": "input_text", "text": text})];
        let input = Input::Message { content, created_by: Some("terminal".into()) };
        if let Err(e) = sessions.post(&bridge.session, input).await {
            tracing::warn!(session = %bridge.session, error = %e, "could not record a prompt typed into the codex TUI");
        }
    }
}

/// `thread/resume` subscribes this connection to the thread's events (retried while the thread has no rollout
/// yet: it gets one with its first turn).
async fn subscribe(rpc: &Rpc, thread: &str) -> Result<(), super::rpc::RpcError> {
    let mut tries = 0;
    loop {
        match rpc.request("thread/resume", json!({"threadId": thread, "excludeTurns": true})).await {
            Ok(_) => return Ok(()),
            Err(e) if tries < 50 => {
                tracing::debug!(error = %e, "the codex thread cannot be watched yet");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}
