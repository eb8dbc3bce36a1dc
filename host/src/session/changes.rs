//! The server-wide feed of session changes: which sessions a list of sessions must redraw (the web UI's live
//! sidebar). Only what a list shows counts — status, title, pending approvals, archived, the failure, labels — not
//! every streamed delta, so a busy session does not flood the feed. A change carries the session as committed, so
//! no subscriber reads it back from the database.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::ids::SessionId;
use crate::record::SessionRecord;

/// How many changes a slow feed subscriber may fall behind before it is told to re-list.
const FEED_CAPACITY: usize = 1024;

/// A change to a session as a list shows it.
#[derive(Clone, Debug)]
pub enum SessionChange {
    /// Created, or its summary changed: the session as committed.
    Updated(Arc<SessionRecord>),
    /// Deleted.
    Deleted(SessionId),
}

/// Where changes are announced; every subscriber gets each one (or learns it lagged).
pub(super) struct ChangeFeed {
    sender: broadcast::Sender<SessionChange>,
}

impl ChangeFeed {
    pub(super) fn new() -> Self {
        ChangeFeed { sender: broadcast::channel(FEED_CAPACITY).0 }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<SessionChange> {
        self.sender.subscribe()
    }

    /// A session was created or changed as a list shows it (nothing is copied while nobody listens).
    pub(super) fn updated(&self, record: &SessionRecord) {
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(SessionChange::Updated(Arc::new(record.clone())));
        }
    }

    pub(super) fn deleted(&self, id: &SessionId) {
        // No subscriber is the common case, not an error.
        let _ = self.sender.send(SessionChange::Deleted(id.clone()));
    }

    /// Whether anybody reads the feed.
    pub(super) fn is_read(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Announces `after` when a list would show it differently from `before`.
    pub(super) fn compare(&self, before: &SessionRecord, after: &SessionRecord) {
        if Summary::of(before) != Summary::of(after) {
            self.updated(after);
        }
    }
}

/// What a list shows of a session.
#[derive(PartialEq)]
pub(super) struct Summary {
    status: crate::record::SessionStatus,
    title: Option<String>,
    pending: usize,
    archived: bool,
    failed: bool,
    labels: serde_json::Map<String, serde_json::Value>,
}

impl Summary {
    pub(super) fn of(r: &SessionRecord) -> Summary {
        Summary {
            status: r.status,
            title: r.title.clone(),
            pending: r.policy.pending.len(),
            archived: r.archived,
            failed: r.last_task_error.is_some(),
            labels: r.labels.clone(),
        }
    }
}
