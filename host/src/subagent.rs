//! Sub-agents: a `type: agent` tool runs each call as a child session (`kind: sub_agent`) with its own log and
//! stream. The parent's stream announces the child (`session.created`) and follows its state
//! (`session.child_session.updated`); the child's final answer returns to the parent's turn as the tool result,
//! exactly once (one call, one child, one result).

use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::config::SessionConfig;
use crate::ids::SessionId;
use crate::protocol::{self, EventType, NewEvent};
use crate::record::{SessionRecord, SessionStatus, secs};
use crate::session::{Input, NewSession, Published, Sessions};
use crate::store::Page;

/// The arguments the parent's model passes to a sub-agent.
pub fn parameters() -> Value {
    json!({"type": "object", "properties": {"task": {"type": "string", "description": "What the sub-agent should do"}},
           "required": ["task"]})
}

/// One sub-agent call.
pub struct Child {
    pub sessions: Sessions,
    pub parent: SessionId,
    pub config: SessionConfig,
    pub title: String,
    /// The call's JSON arguments (`{"task": …}`).
    pub arguments: String,
    /// The parent turn's cancellation: interrupting the parent interrupts the child.
    pub cancel: CancellationToken,
}

impl Child {
    fn task(&self) -> Result<String, String> {
        serde_json::from_str::<Value>(&self.arguments)
            .ok()
            .and_then(|a| a.get("task").and_then(Value::as_str).map(str::to_string))
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| "the sub-agent call needs a non-empty string argument 'task'".to_string())
    }

    /// Creates the child session (idle, no task yet) and announces it on the parent's stream. The parent journals
    /// the id with the model's call, so a parent turn replayed after a restart finds the same child.
    pub async fn create(&self) -> Result<SessionId, String> {
        self.task()?;
        let new = NewSession {
            title: Some(self.title.clone()),
            config: self.config.to_json(),
            parent: Some(self.parent.clone()),
            ..NewSession::default()
        };
        let child = self.sessions.create(new).await.map_err(|e| format!("cannot start the sub-agent: {e}"))?;
        self.to_parent(protocol::child_created(&self.parent, &child.id, &agent_id_of(&child))).await;
        Ok(child.id)
    }

    /// Hands the task to the child (unless it has it already: a resumed parent) and follows it to the end of its
    /// turn; Ok is its final answer, Err a message for the parent's model.
    pub async fn run(self, child_id: SessionId) -> Result<String, String> {
        let task = self.task()?;
        // Subscribe before the task goes in, so no state change is missed.
        let (mut rx, child) = self.sessions.subscribe(&child_id).await.map_err(|e| e.to_string())?;
        let handed_over = child.last_seq > 0;
        let mut started = matches!(child.status, SessionStatus::Running | SessionStatus::Paused);
        if handed_over && !started {
            // It finished while the parent was away (or had already failed).
            match child.status {
                SessionStatus::Failed => {
                    let error = child.last_task_error.map(|e| format!("{}: {}", e.code, e.message)).unwrap_or_default();
                    return Err(format!("the sub-agent {} failed: {error}", child.id));
                }
                _ => return Ok(self.final_answer(&child.id).await),
            }
        }
        if !handed_over {
            let input = Input::Message {
                content: vec![json!({"type": "input_text", "text": task})],
                created_by: Some(self.parent.to_string()),
            };
            self.sessions
                .post(&child.id, input)
                .await
                .map_err(|e| format!("cannot hand the task to the sub-agent: {e}"))?;
        }
        loop {
            let status = tokio::select! {
                message = rx.recv() => match message {
                    Ok(Published::Event(e)) => match EventType::parse(&e.event_type) {
                        Some(EventType::SessionStatus) => e.data["status"].as_str().and_then(SessionStatus::parse),
                        // The child's approval requests show on the parent's stream; `params.target_session_id`
                        // names the child (answer there, or through the parent's resolve endpoint).
                        Some(t) if t.is_elicitation() => {
                            self.to_parent(protocol::child_elicitation(t, &e.data, &child.id)).await;
                            continue;
                        }
                        _ => continue,
                    },
                    Ok(Published::Closed) | Err(RecvError::Closed) => return Err("the sub-agent's session was deleted".into()),
                    // Fell behind: the stored state says where the child is.
                    Err(RecvError::Lagged(_)) => self.sessions.get(&child.id).await.ok().map(|r| r.status),
                },
                _ = self.cancel.cancelled() => {
                    let _ = self.sessions.post(&child.id, Input::Interrupt).await;
                    return Err("the parent turn was interrupted".into());
                }
            };
            let Some(status) = status else { continue };
            let record = self.sessions.get(&child.id).await.map_err(|e| e.to_string())?;
            self.to_parent(protocol::child_updated(&self.parent, &child.id, summary(&record))).await;
            match status {
                SessionStatus::Running | SessionStatus::Paused => started = true,
                SessionStatus::Idle if started => return Ok(self.final_answer(&child.id).await),
                SessionStatus::Idle => {}
                SessionStatus::Failed => {
                    let error =
                        record.last_task_error.map(|e| format!("{}: {}", e.code, e.message)).unwrap_or_default();
                    return Err(format!("the sub-agent {} failed: {error}", child.id));
                }
            }
        }
    }

    async fn to_parent(&self, event: NewEvent) {
        if let Err(e) = self.sessions.emit(&self.parent, vec![event], Vec::new()).await {
            tracing::warn!(session = %self.parent, error = %e, "could not record a sub-agent event");
        }
    }

    /// The child's last assistant message.
    async fn final_answer(&self, child: &SessionId) -> String {
        let page = Page { limit: 50, after: None, before: None, descending: true };
        let items = self.sessions.store().list_items(child, &page).await.map(|(items, _)| items).unwrap_or_default();
        items
            .iter()
            .find(|i| i.item_type == "message" && i.data["role"] == "assistant")
            .and_then(|i| i.data["content"].as_array())
            .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"))
            .unwrap_or_else(|| "(the sub-agent finished without a message)".into())
    }
}

/// The agent a session runs: its registered agent, or the session's own (an inline config).
pub fn agent_id_of(record: &SessionRecord) -> String {
    record.agent_id.clone().unwrap_or_else(|| crate::ids::session_agent_id(&record.id))
}

/// A child's state in Omnigent's task vocabulary (what `subtree_busy` and the web's sub-agent panel read): a child
/// runs one task per call, so an idle child has completed it.
fn task_status(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Running | SessionStatus::Paused => "in_progress",
        SessionStatus::Idle => "completed",
        SessionStatus::Failed => "failed",
    }
}

/// Omnigent's `ChildSessionSummary`.
pub fn summary(record: &SessionRecord) -> Value {
    json!({
        "id": record.id.as_str(),
        "object": protocol::object::CHILD_SESSION,
        "parent_session_id": record.parent_session_id.as_ref().map(SessionId::as_str),
        "title": record.title,
        "kind": record.kind.as_str(),
        "created_at": secs(record.created_at_us),
        "updated_at": secs(record.updated_at_us),
        "agent_name": record.config.get("name"),
        "agent_id": agent_id_of(record),
        "current_task_status": task_status(record.status),
        "busy": matches!(record.status, SessionStatus::Running | SessionStatus::Paused),
        "labels": record.labels,
        "last_task_error": record.last_task_error,
        "pending_elicitations_count": record.policy.pending.len(),
    })
}
