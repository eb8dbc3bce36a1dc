//! Live sessions: one actor task per live session is the only writer of that session's log.
//!
//! Every change is an event: the actor folds it into the session's cached state (`fold`), persists events and
//! folds in one transaction, and only then publishes the events to subscribers. Actors start on first use and
//! stop after a quiet spell with no subscribers, so stored-but-quiet sessions cost nothing.

pub mod input;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::ids::{SessionId, prefixed};
use crate::model::{Item, SessionRecord, SessionStatus, StoredEvent, TaskError, now_us};
use crate::store::{Commit, Page, Store, StoreError};
pub use input::{EventInput, Input};

/// How many published events a subscriber may fall behind before it is caught up from the log instead.
pub const BROADCAST_CAPACITY: usize = 256;
/// Most input events one transaction takes (group commit under load).
const MAX_BATCH: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session {0}")]
    NotFound(SessionId),
    #[error("{0}")]
    Invalid(String),
    #[error("no pending elicitation '{0}' in this session")]
    NoSuchElicitation(String),
    #[error("session {0} was changed by another writer; retry")]
    Conflict(SessionId),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A storage failure reported to every input of a failed batch.
    #[error("storage failed: {0}")]
    Internal(String),
}

impl SessionError {
    /// The same error for another caller (a commit error is shared by every input of its batch).
    fn share(&self) -> SessionError {
        match self {
            SessionError::NotFound(id) => SessionError::NotFound(id.clone()),
            SessionError::Conflict(id) => SessionError::Conflict(id.clone()),
            SessionError::ShuttingDown => SessionError::ShuttingDown,
            SessionError::Invalid(m) => SessionError::Invalid(m.clone()),
            SessionError::NoSuchElicitation(m) => SessionError::NoSuchElicitation(m.clone()),
            SessionError::Store(e) => SessionError::Internal(e.to_string()),
            SessionError::Internal(m) => SessionError::Internal(m.clone()),
        }
    }
}

/// What `POST …/events` answers.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Ack {
    /// True when the input was persisted as an item.
    pub queued: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
}

/// Changes to a session's metadata (`PATCH /v1/sessions/{id}`).
#[derive(Clone, Debug, Default)]
pub struct Patch {
    /// `Some(None)` clears the title.
    pub title: Option<Option<String>>,
    /// Merged into the labels; a null value removes the key.
    pub labels: Option<Map<String, Value>>,
}

/// What a subscriber receives from a live session.
#[derive(Clone, Debug)]
pub enum Published {
    /// A persisted event (it is in the log before it is published).
    Event(Arc<StoredEvent>),
    /// The session was deleted: streams end with `[DONE]`.
    Closed,
}

/// A new session, as the API creates it.
#[derive(Clone, Debug, Default)]
pub struct NewSession {
    pub title: Option<String>,
    pub labels: Map<String, Value>,
    pub config: Value,
    pub agent_id: Option<String>,
    pub initial_items: Vec<Input>,
}

enum Command {
    Post { input: Input, reply: oneshot::Sender<Result<Ack, SessionError>> },
    Patch { patch: Patch, reply: oneshot::Sender<Result<SessionRecord, SessionError>> },
    Delete { reply: oneshot::Sender<Result<(), SessionError>> },
}

#[derive(Clone)]
struct Handle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Published>,
}

/// The registry of live sessions and the entry point for every session operation.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    live: Mutex<HashMap<SessionId, Handle>>,
    shutdown: CancellationToken,
    idle_timeout: Duration,
}

impl Sessions {
    pub fn new(store: Store, shutdown: CancellationToken) -> Self {
        Self::with_idle_timeout(store, shutdown, Duration::from_secs(60))
    }

    pub fn with_idle_timeout(store: Store, shutdown: CancellationToken, idle_timeout: Duration) -> Self {
        Sessions { inner: Arc::new(Inner { store, live: Mutex::default(), shutdown, idle_timeout }) }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Number of sessions with a live actor.
    pub fn live_count(&self) -> usize {
        self.inner.live.lock().unwrap().len()
    }

    pub async fn create(&self, new: NewSession) -> Result<SessionRecord, SessionError> {
        let mut record = SessionRecord::new(new.config, new.title, new.labels, now_us());
        record.agent_id = new.agent_id;
        self.inner.store.create_session(&record).await?;
        tracing::info!(session = %record.id, "session created");
        if new.initial_items.is_empty() {
            return Ok(record);
        }
        for input in new.initial_items {
            self.post(&record.id, input).await?;
        }
        self.get(&record.id).await
    }

    /// The session's current state (read from the store, which the actor updates with every commit).
    pub async fn get(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        self.inner.store.get_session(id).await?.ok_or_else(|| SessionError::NotFound(id.clone()))
    }

    pub async fn list(
        &self,
        page: &Page,
        status: Option<SessionStatus>,
    ) -> Result<(Vec<SessionRecord>, bool), SessionError> {
        Ok(self.inner.store.list_sessions(page, status).await?)
    }

    pub async fn items(&self, id: &SessionId, page: &Page) -> Result<(Vec<Item>, bool), SessionError> {
        // Distinguish "no such session" from "no items".
        self.get(id).await?;
        Ok(self.inner.store.list_items(id, page).await?)
    }

    pub async fn post(&self, id: &SessionId, input: Input) -> Result<Ack, SessionError> {
        self.call(id, |reply| Command::Post { input, reply }).await
    }

    pub async fn patch(&self, id: &SessionId, patch: Patch) -> Result<SessionRecord, SessionError> {
        self.call(id, |reply| Command::Patch { patch, reply }).await
    }

    pub async fn delete(&self, id: &SessionId) -> Result<(), SessionError> {
        self.call(id, |reply| Command::Delete { reply }).await
    }

    /// Subscribes to a session's published events. Returns the receiver and the session as it was after
    /// subscribing: every event with `seq > record.last_seq` will arrive on the receiver, every older one is in
    /// the log.
    pub async fn subscribe(
        &self,
        id: &SessionId,
    ) -> Result<(broadcast::Receiver<Published>, SessionRecord), SessionError> {
        loop {
            let handle = self.handle(id).await?;
            let rx = {
                let live = self.inner.live.lock().unwrap();
                // Subscribe under the registry lock so a retiring actor cannot slip away in between.
                match live.get(id) {
                    Some(h) if h.commands.same_channel(&handle.commands) => h.events.subscribe(),
                    _ => continue,
                }
            };
            let record = self.get(id).await?;
            return Ok((rx, record));
        }
    }

    async fn call<T>(
        &self,
        id: &SessionId,
        make: impl FnOnce(oneshot::Sender<Result<T, SessionError>>) -> Command,
    ) -> Result<T, SessionError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(SessionError::ShuttingDown);
        }
        let (reply, answer) = oneshot::channel();
        let mut command = make(reply);
        // An actor may retire between lookup and send; then the command comes back and goes to a fresh one.
        for _ in 0..5 {
            let handle = self.handle(id).await?;
            match handle.commands.send(command).await {
                Ok(()) => return answer.await.map_err(|_| SessionError::ShuttingDown)?,
                Err(mpsc::error::SendError(back)) => {
                    self.forget(id, &handle);
                    command = back;
                }
            }
        }
        Err(SessionError::ShuttingDown)
    }

    /// The live actor of a session, started if needed.
    async fn handle(&self, id: &SessionId) -> Result<Handle, SessionError> {
        if let Some(h) = self.inner.live.lock().unwrap().get(id) {
            return Ok(h.clone());
        }
        let record = self.get(id).await?;
        let mut live = self.inner.live.lock().unwrap();
        if let Some(h) = live.get(id) {
            return Ok(h.clone());
        }
        let (commands, mailbox) = mpsc::channel(256);
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        let handle = Handle { commands, events: events.clone() };
        live.insert(id.clone(), handle.clone());
        let span = tracing::info_span!("session", id = %id);
        let actor = Actor { sessions: self.clone(), record, mailbox, events };
        tokio::spawn(tracing::Instrument::instrument(actor.run(), span));
        Ok(handle)
    }

    fn forget(&self, id: &SessionId, handle: &Handle) {
        let mut live = self.inner.live.lock().unwrap();
        if live.get(id).is_some_and(|h| h.commands.same_channel(&handle.commands)) {
            live.remove(id);
        }
    }
}

struct Actor {
    sessions: Sessions,
    record: SessionRecord,
    mailbox: mpsc::Receiver<Command>,
    events: broadcast::Sender<Published>,
}

impl Actor {
    async fn run(mut self) {
        let idle = self.sessions.inner.idle_timeout;
        let mut carried: Option<Command> = None;
        loop {
            let command = match carried.take() {
                Some(c) => c,
                None => tokio::select! {
                    c = self.mailbox.recv() => match c {
                        Some(c) => c,
                        None => return,
                    },
                    _ = tokio::time::sleep(idle) => {
                        if self.try_retire() { return; }
                        continue;
                    }
                },
            };
            match command {
                Command::Post { input, reply } => {
                    let mut batch = vec![(input, reply)];
                    while batch.len() < MAX_BATCH {
                        match self.mailbox.try_recv() {
                            Ok(Command::Post { input, reply }) => batch.push((input, reply)),
                            Ok(other) => {
                                carried = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if self.post_batch(batch).await {
                        return;
                    }
                }
                Command::Patch { patch, reply } => {
                    let mut draft = Draft::new(&self.record);
                    draft.patch(patch);
                    let result = self.commit(draft).await.map(|()| self.record.clone());
                    let gone = matches!(result, Err(SessionError::NotFound(_)));
                    let _ = reply.send(result);
                    if gone {
                        return;
                    }
                }
                Command::Delete { reply } => {
                    let result = self.sessions.inner.store.delete_session(&self.record.id).await;
                    match result {
                        Ok(_) => {
                            tracing::info!(session = %self.record.id, "session deleted");
                            self.close();
                            let _ = reply.send(Ok(()));
                            return;
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e.into()));
                        }
                    }
                }
            }
        }
    }

    /// Applies a batch of inputs in one transaction. Returns true when the session turned out to be gone.
    async fn post_batch(&mut self, batch: Vec<(Input, oneshot::Sender<Result<Ack, SessionError>>)>) -> bool {
        let mut draft = Draft::new(&self.record);
        let mut outcomes = Vec::with_capacity(batch.len());
        for (input, reply) in batch {
            outcomes.push((draft.input(input), reply));
        }
        match self.commit(draft).await {
            Ok(()) => {
                for (outcome, reply) in outcomes {
                    let _ = reply.send(outcome);
                }
                false
            }
            Err(e) => {
                let gone = matches!(e, SessionError::NotFound(_));
                for (outcome, reply) in outcomes {
                    // Inputs that failed validation keep their own error; the rest share the commit's.
                    let _ = reply.send(match outcome {
                        Err(own) => Err(own),
                        Ok(_) => Err(e.share()),
                    });
                }
                gone
            }
        }
    }

    /// Persists a draft, then publishes its events. On a conflict the actor reloads; a vanished session closes.
    async fn commit(&mut self, draft: Draft) -> Result<(), SessionError> {
        if draft.events.is_empty() {
            return Ok(());
        }
        let commit = Commit {
            expected_last_seq: self.record.last_seq,
            session: &draft.record,
            events: &draft.events,
            items: &draft.items,
        };
        match self.sessions.inner.store.commit(&commit).await {
            Ok(()) => {
                self.record = draft.record;
                for event in draft.events {
                    let _ = self.events.send(Published::Event(Arc::new(event)));
                }
                Ok(())
            }
            Err(StoreError::Conflict(id)) => match self.sessions.inner.store.get_session(&id).await {
                Ok(Some(fresh)) => {
                    tracing::warn!(session = %id, "log moved under this writer; reloaded");
                    self.record = fresh;
                    Err(SessionError::Conflict(id))
                }
                Ok(None) => {
                    self.close();
                    Err(SessionError::NotFound(id))
                }
                Err(e) => Err(e.into()),
            },
            Err(e) => {
                tracing::error!(session = %self.record.id, error = %e, "commit failed");
                Err(e.into())
            }
        }
    }

    /// Tells subscribers the session is gone and leaves the registry.
    fn close(&self) {
        let _ = self.events.send(Published::Closed);
        let mut live = self.sessions.inner.live.lock().unwrap();
        live.remove(&self.record.id);
    }

    /// Leaves the registry if nobody listens and nothing is queued.
    fn try_retire(&self) -> bool {
        let mut live = self.sessions.inner.live.lock().unwrap();
        if self.events.receiver_count() == 0 && self.mailbox.is_empty() && self.record.status != SessionStatus::Running
        {
            live.remove(&self.record.id);
            true
        } else {
            false
        }
    }
}

/// The writes of one transaction, built against a copy of the session so a failed commit changes nothing.
struct Draft {
    record: SessionRecord,
    events: Vec<StoredEvent>,
    items: Vec<Item>,
}

impl Draft {
    fn new(record: &SessionRecord) -> Self {
        Draft { record: record.clone(), events: Vec::new(), items: Vec::new() }
    }

    /// Appends an event: numbers it, folds it into the session and its items.
    fn emit(&mut self, event_type: &str, payload: Value) {
        let seq = self.record.last_seq + 1;
        let now = now_us();
        let mut data = match payload {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        data.insert("type".into(), event_type.into());
        data.insert("sequence_number".into(), seq.into());
        let event = StoredEvent { seq, event_type: event_type.to_string(), data: Value::Object(data), created_at_us: now };
        fold(&mut self.record, &event);
        if let Some(item) = item_of(&event) {
            self.items.retain(|i| i.id != item.id);
            self.items.push(item);
        }
        self.events.push(event);
    }

    fn set_status(&mut self, status: SessionStatus, error: Option<TaskError>) {
        let mut payload = json!({"conversation_id": self.record.id.as_str(), "status": status.as_str()});
        if let Some(e) = error {
            payload["error"] = serde_json::to_value(e).unwrap_or_default();
        }
        self.emit("session.status", payload);
    }

    fn input(&mut self, input: Input) -> Result<Ack, SessionError> {
        match input {
            Input::Message { content, created_by } => {
                let item_id = prefixed("msg");
                self.consume(&item_id, "message", json!({"role": "user", "content": content}), created_by);
                self.start_turn();
                Ok(Ack { queued: true, item_id: Some(item_id) })
            }
            Input::FunctionCallOutput { call_id, output, created_by } => {
                let item_id = prefixed("fco");
                self.consume(&item_id, "function_call_output", json!({"call_id": call_id, "output": output}), created_by);
                Ok(Ack { queued: true, item_id: Some(item_id) })
            }
            // No turn runs without a harness runtime, so there is nothing to interrupt.
            Input::Interrupt => Ok(Ack { queued: false, item_id: None }),
            Input::Approval { elicitation_id, .. } => Err(SessionError::NoSuchElicitation(elicitation_id)),
        }
    }

    fn consume(&mut self, item_id: &str, item_type: &str, data: Value, created_by: Option<String>) {
        let mut inner = json!({"item_id": item_id, "type": item_type, "data": data});
        if let Some(by) = created_by {
            inner["created_by"] = by.into();
        }
        self.emit("session.input.consumed", json!({"data": inner}));
    }

    /// A message starts a turn with the session's harness. Resolving the harness is the first step of every turn;
    /// a session whose harness cannot be resolved fails the turn before any model is called, as Omnigent does.
    fn start_turn(&mut self) {
        let error = match harness_name(&self.record.config) {
            None => TaskError {
                code: "no_harness".into(),
                message: "this session's config names no executor.harness, so no turn can run; create the session \
                          with a config that sets executor.harness"
                    .into(),
            },
            Some(name) => TaskError {
                code: "harness_not_found".into(),
                message: format!("harness '{name}' is not available on this server (available harnesses: none)"),
            },
        };
        self.set_status(SessionStatus::Failed, Some(error));
    }

    fn patch(&mut self, patch: Patch) {
        if let Some(title) = patch.title
            && title != self.record.title
        {
            self.emit("session.title", json!({"conversation_id": self.record.id.as_str(), "title": title}));
        }
        if let Some(changes) = patch.labels {
            let mut labels = self.record.labels.clone();
            for (k, v) in changes {
                if v.is_null() {
                    labels.remove(&k);
                } else {
                    labels.insert(k, v);
                }
            }
            if labels != self.record.labels {
                self.emit("session.labels", json!({"conversation_id": self.record.id.as_str(), "labels": labels}));
            }
        }
    }
}

fn harness_name(config: &Value) -> Option<&str> {
    config.pointer("/executor/harness").and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Folds one event into the session's cached state. The session row is exactly the fold of its log.
pub fn fold(record: &mut SessionRecord, event: &StoredEvent) {
    record.last_seq = event.seq;
    record.updated_at_us = event.created_at_us;
    let data = &event.data;
    match event.event_type.as_str() {
        "session.status" => {
            if let Some(status) = data.get("status").and_then(Value::as_str).and_then(SessionStatus::parse) {
                record.status = status;
                record.last_task_error = match status {
                    SessionStatus::Failed => data.get("error").and_then(|e| serde_json::from_value(e.clone()).ok()),
                    _ => None,
                };
            }
        }
        "session.title" => record.title = data.get("title").and_then(Value::as_str).map(str::to_string),
        "session.labels" => {
            if let Some(Value::Object(labels)) = data.get("labels") {
                record.labels = labels.clone();
            }
        }
        _ => {}
    }
}

/// The transcript item an event creates or updates, if any.
pub fn item_of(event: &StoredEvent) -> Option<Item> {
    match event.event_type.as_str() {
        "session.input.consumed" => {
            let inner = event.data.get("data")?;
            Some(Item {
                id: inner.get("item_id")?.as_str()?.to_string(),
                position: event.seq,
                response_id: None,
                item_type: inner.get("type")?.as_str()?.to_string(),
                status: "completed".into(),
                created_at_us: event.created_at_us,
                data: inner.get("data").cloned().unwrap_or(Value::Null),
                created_by: inner.get("created_by").and_then(Value::as_str).map(str::to_string),
            })
        }
        "response.output_item.done" => {
            let item = event.data.get("item")?;
            let mut data = item.as_object()?.clone();
            let id = data.remove("id")?.as_str()?.to_string();
            let item_type = data.remove("type")?.as_str()?.to_string();
            let status = data.remove("status").and_then(|v| v.as_str().map(str::to_string)).unwrap_or("completed".into());
            let response_id = data.remove("response_id").and_then(|v| v.as_str().map(str::to_string));
            let created_by = data.remove("created_by").and_then(|v| v.as_str().map(str::to_string));
            data.remove("created_at");
            data.remove("object");
            Some(Item {
                id,
                position: event.seq,
                response_id,
                item_type,
                status,
                created_at_us: event.created_at_us,
                data: Value::Object(data),
                created_by,
            })
        }
        _ => None,
    }
}
