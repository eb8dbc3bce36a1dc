//! The harness's `session` import: the conversation so far, messages that arrived during the turn, events and
//! files of its own, and its log lines.

use omnigent_runtime::harness::{Error as HarnessError, LogLevel, Message};
use serde_json::Value;

use super::host::{Host, harness_error};
use super::journal::{Entry, Kind};
use crate::conversation::Conversation;
use crate::protocol::{self, HARNESS_EMITTABLE, HARNESS_PREFIX, NewEvent};

/// Largest event payload a harness may emit.
const MAX_EMIT_BYTES: usize = 64 * 1024;

impl Host {
    pub(super) async fn session_history(&self) -> Vec<Message> {
        match self.journal.take(Kind::History) {
            Some(Entry::History { messages }) => return messages,
            Some(Entry::HistoryThrough { position }) => {
                return match super::history::history_through(&self.sessions, &self.id, &self.transcript, position).await
                {
                    Ok(read) => read.messages,
                    Err(e) => {
                        self.journal.fail(format!("reading the conversation failed: {e}"));
                        Vec::new()
                    }
                };
            }
            _ => {}
        }
        if self.journal.check_live("the history").is_err() {
            return Vec::new();
        }
        let read = self.read_history().await;
        if self.journal.storage_failure().is_none() {
            self.journal.defer(Vec::new(), Entry::HistoryThrough { position: read.through });
        }
        read.messages
    }

    /// The conversation so far, read from the transcript once per turn.
    pub(super) async fn read_history(&self) -> Conversation {
        if let Some(read) = self.history.lock().unwrap().clone() {
            return read;
        }
        match super::history::history(&self.sessions, &self.id, &self.transcript).await {
            Ok(read) => {
                *self.history.lock().unwrap() = Some(read.clone());
                read
            }
            Err(e) => {
                // The turn ends failed; the harness's next call is refused (`check_live`).
                self.journal.fail(format!("reading the conversation failed: {e}"));
                Conversation { messages: Vec::new(), through: None }
            }
        }
    }

    pub(super) async fn session_steering(&self) -> Vec<String> {
        if self.journal.replaying() {
            // Only what the original run took; new messages wait until the replay has caught up.
            return match self.journal.take(Kind::Steering) {
                Some(Entry::Steering { messages }) => messages,
                _ => Vec::new(),
            };
        }
        let taken: Vec<String> = self.shared.steering.lock().unwrap().drain(..).collect();
        if !taken.is_empty() {
            self.journal.record(Vec::new(), Vec::new(), Entry::Steering { messages: taken.clone() }).await;
        }
        taken
    }

    pub(super) async fn session_emit(&self, event_type: String, data: String) -> Result<(), HarnessError> {
        let invalid = |message: String| harness_error("invalid_request", message);
        let own = event_type.strip_prefix(HARNESS_PREFIX).is_some_and(|n| {
            !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
        if !own && !HARNESS_EMITTABLE.iter().any(|t| t.as_str() == event_type) {
            let allowed: Vec<&str> = HARNESS_EMITTABLE.iter().map(|t| t.as_str()).collect();
            return Err(invalid(format!(
                "a harness may not emit '{}'; allowed: {} or {HARNESS_PREFIX}<name>",
                crate::ids::truncate(&event_type, 80),
                allowed.join(", ")
            )));
        }
        if data.len() > MAX_EMIT_BYTES {
            return Err(invalid(format!("event data is {} bytes; the limit is {MAX_EMIT_BYTES}", data.len())));
        }
        let payload: Value =
            serde_json::from_str(&data).map_err(|e| invalid(format!("event data is not JSON: {e}")))?;
        if !payload.is_object() {
            return Err(invalid("event data must be a JSON object".into()));
        }
        if self.journal.take(Kind::Emit).is_some() {
            return Ok(()); // published before the restart
        }
        self.journal.check_live("an emit").map_err(|m| harness_error("replay_diverged", m))?;
        self.journal.record(vec![NewEvent::named(event_type, payload)], Vec::new(), Entry::Emit).await;
        Ok(())
    }

    /// A file the harness wrote: stored with its event and its journal entry in one transaction.
    pub(super) async fn session_write_file(&self, name: String, content: Vec<u8>) -> Result<String, HarnessError> {
        if let Some(Entry::File { id }) = self.journal.take(Kind::File) {
            return Ok(id);
        }
        self.journal.check_live("a file write").map_err(|m| harness_error("replay_diverged", m))?;
        let meta = crate::files::check(&name, None, &content, crate::store::FileSource::Harness)
            .map_err(|e| harness_error("file_error", e.to_string()))?;
        let id = meta.id.clone();
        let event = protocol::output_file_done(&meta.id, &meta.name, &meta.content_type);
        self.journal
            .record_file(meta, content, event, Entry::File { id: id.clone() })
            .await
            .map_err(|e| harness_error("file_error", e.to_string()))?;
        Ok(id)
    }

    pub(super) fn session_log(&self, level: LogLevel, message: String) {
        let id = &self.id;
        match level {
            LogLevel::Debug => tracing::debug!(session = %id, "harness: {message}"),
            LogLevel::Info => tracing::info!(session = %id, "harness: {message}"),
            LogLevel::Warn => tracing::warn!(session = %id, "harness: {message}"),
            LogLevel::Error => tracing::error!(session = %id, "harness: {message}"),
        }
    }
}
