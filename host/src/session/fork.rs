//! Fork: a new, idle session whose log begins as a copy of another's.

use serde_json::Value;

use super::draft::Draft;
use super::{SessionError, Sessions};
use crate::ids::SessionId;
use crate::protocol;
use crate::record::{SessionRecord, SessionStatus, StoredEvent, now_us};
use crate::store::Commit;

impl Sessions {
    /// Forks a session: a new, idle session whose log begins as a copy of the source's — all of it, or through the
    /// end of the response `up_to_response_id`. The two are independent from then on.
    pub async fn fork(
        &self,
        source: &SessionId,
        title: Option<String>,
        up_to_response_id: Option<&str>,
    ) -> Result<SessionRecord, SessionError> {
        let src = self.get(source).await?;
        let mut events = Vec::new();
        loop {
            let after = events.last().map(|e: &StoredEvent| e.seq).unwrap_or(0);
            let page = self.store().events_after(source, after, Some(src.last_seq), 1000).await?;
            if page.is_empty() {
                break;
            }
            events.extend(page);
        }
        if let Some(wanted) = up_to_response_id {
            let end =
                events.iter().rposition(|e| protocol::response_id_of(&e.data) == Some(wanted)).ok_or_else(|| {
                    SessionError::Invalid(format!(
                        "session {source} has no response '{}'",
                        crate::ids::truncate(wanted, 80)
                    ))
                })?;
            events.truncate(end + 1);
        }
        let title = title.unwrap_or_else(|| format!("Fork of {}", src.title.as_deref().unwrap_or(src.id.as_str())));
        let mut record = SessionRecord::new(src.config.clone(), Some(title.clone()), src.labels.clone(), now_us());
        record.agent_id = src.agent_id.clone();
        self.store().create_session(&record).await?;
        let mut draft = Draft::new(&record);
        for event in events {
            // The copy speaks of the fork, not the source.
            let text = event.data.to_string().replace(source.as_str(), record.id.as_str());
            draft.emit_at(event.event_type, serde_json::from_str(&text).unwrap_or(Value::Null), event.created_at_us);
        }
        if draft.record.title.as_deref() != Some(title.as_str()) {
            draft.emit(protocol::title(&record.id, Some(&title)));
        }
        if draft.record.status != SessionStatus::Idle {
            draft.set_status(SessionStatus::Idle, None);
        }
        // A copy runs no turn: nothing of the source's turn in progress is pending in it.
        draft.record.policy.pending.clear();
        draft.record.policy.resolved.clear();
        draft.record.active_response_id = None;
        let commit = Commit {
            expected_last_seq: 0,
            session: &draft.record,
            events: &draft.events,
            items: &draft.items,
            comments: &draft.comments,
            files: &[],
            journal: &[],
            clear_journal: false,
            spend: None,
        };
        if let Err(e) = self.store().commit(&commit).await {
            // Leave no half-made fork behind.
            let _ = self.store().delete_session(&record.id).await;
            return Err(e.into());
        }
        tracing::info!(session = %record.id, source = %source, "session forked");
        Ok(draft.record)
    }
}
