//! Live sessions: one actor task per live session is the only writer of that session's log.
//!
//! Every change is an event: the actor folds it into the session's cached state (`fold`), persists events and
//! folds in one transaction, and only then publishes the events to subscribers. Actors start on first use and
//! stop after a quiet spell with no subscribers, so stored-but-quiet sessions cost nothing.

mod actor;
mod adoption;
mod changes;
mod draft;
mod feed_relay;
pub mod fold;
mod follower;
mod fork;
pub mod history_import;
pub mod input;
mod intake;
pub mod runner;
pub mod transcript;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::config::SessionConfig;
use crate::ids::SessionId;
use crate::protocol::NewEvent;
use crate::record::{Item, SessionRecord, SessionStatus, StoredEvent, now_us};
use crate::stages::Stage;
use crate::store::{FileChange, JournalEntry, Page, Store, StoreError};
use actor::{Actor, Command};
use changes::ChangeFeed;
pub use changes::SessionChange;
pub use input::{Answer, ApprovalAction, EventInput, Input};
pub use runner::{FailureCode, TokenUsage, TurnOutcome, TurnRunner, TurnShared, TurnStart, Waiter};
use transcript::Transcript;

/// How many published events a subscriber may fall behind before it is caught up from the log instead.
pub const BROADCAST_CAPACITY: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session {0}")]
    NotFound(SessionId),
    #[error("{0}")]
    Invalid(String),
    #[error("no pending elicitation '{0}' in this session")]
    NoSuchElicitation(String),
    #[error("no client tool call '{0}' is waiting for output in this session")]
    NoPendingCall(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("session {0} was changed by another writer; retry")]
    Conflict(SessionId),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Another replica writes this session (its address, when known): writes go there.
    #[error("session {id} is written by another replica{}; send the request there or retry", owner.as_deref().map(|o| format!(" ({o})")).unwrap_or_default())]
    Elsewhere { id: SessionId, owner: Option<String> },
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
            SessionError::Elsewhere { id, owner } => SessionError::Elsewhere { id: id.clone(), owner: owner.clone() },
            SessionError::Invalid(m) => SessionError::Invalid(m.clone()),
            SessionError::NoSuchElicitation(m) => SessionError::NoSuchElicitation(m.clone()),
            SessionError::NoPendingCall(m) => SessionError::NoPendingCall(m.clone()),
            SessionError::AlreadyExists(m) => SessionError::AlreadyExists(m.clone()),
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
    pub archived: Option<bool>,
    /// `Some(None)` clears it.
    pub reasoning_effort: Option<Option<String>>,
    /// `Some(None)` clears it.
    pub model_override: Option<Option<String>>,
    /// Write-once: a different value than the one set is refused before it gets here.
    pub external_session_id: Option<String>,
    /// `Some(None)` unbinds the session from its runner (checked to exist before it gets here).
    pub runner_id: Option<Option<String>>,
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
    /// For a sub-agent's child session: its parent (the session is then of kind `sub_agent`).
    pub parent: Option<SessionId>,
    /// Reasoning effort and model override asked for at creation.
    pub settings: crate::record::SessionSettings,
}

/// A change validated against the session's current state inside its actor: returns the events to append.
pub type Change = Box<dyn FnOnce(&SessionRecord) -> Result<Vec<NewEvent>, SessionError> + Send>;

/// A live session on this replica: its actor (this replica writes it), or a follower that publishes what another
/// replica commits (`commands` None).
#[derive(Clone)]
struct Handle {
    commands: Option<mpsc::Sender<Command>>,
    events: broadcast::Sender<Published>,
}

impl Handle {
    fn is_actor(&self, commands: &mpsc::Sender<Command>) -> bool {
        self.commands.as_ref().is_some_and(|c| c.same_channel(commands))
    }
}

/// Where a session's writes go.
pub enum Placement {
    /// This replica writes it (or it does not exist: the request answers so).
    Here,
    /// Another replica writes it, at this address.
    Owner(String),
    /// Another replica holds it but its address is unknown (it is starting or stopping): try again shortly.
    Unknown,
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
    runner: Arc<dyn TurnRunner>,
    changes: ChangeFeed,
    /// The other replicas on this database (Postgres), or None: this process is the only server.
    cluster: Option<Arc<Cluster>>,
}

impl Sessions {
    /// `runner` starts the turns the sessions' actors begin.
    pub fn new(store: Store, shutdown: CancellationToken, runner: Arc<dyn TurnRunner>) -> Self {
        Self::with_cluster(store, shutdown, runner, None)
    }

    /// Sessions shared with other replicas of `cluster`: this replica writes a session only while it holds its
    /// lock, follows the others' commits, and adopts running sessions whose replica died (checked every second).
    pub fn with_cluster(
        store: Store,
        shutdown: CancellationToken,
        runner: Arc<dyn TurnRunner>,
        cluster: Option<Arc<Cluster>>,
    ) -> Self {
        let idle_timeout = Duration::from_secs(60);
        let changes = ChangeFeed::new();
        let inner = Inner { store, live: Mutex::default(), shutdown, idle_timeout, runner, changes, cluster };
        let sessions = Sessions { inner: Arc::new(inner) };
        if sessions.inner.cluster.is_some() {
            tokio::spawn(adoption::run(sessions.clone()));
            tokio::spawn(feed_relay::run(sessions.clone()));
        }
        sessions
    }

    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.cluster.as_ref()
    }

    /// Where writes to `id` go: here (its actor is started, if this replica may write it) or another replica.
    pub async fn placement(&self, id: &SessionId) -> Placement {
        match self.handle(id).await {
            Err(SessionError::Elsewhere { owner: Some(url), .. }) => Placement::Owner(url),
            Err(SessionError::Elsewhere { owner: None, .. }) => Placement::Unknown,
            // Whatever else went wrong, the request itself says so.
            _ => Placement::Here,
        }
    }

    /// Appends events (through the actor, the session's only writer); the running turn may wait for answers.
    pub async fn emit(&self, id: &SessionId, events: Vec<NewEvent>, waiters: Vec<Waiter>) -> Result<(), SessionError> {
        self.record(id, events, waiters, Vec::new()).await
    }

    /// Appends events together with the journal entries of the host calls that produced them (one transaction).
    pub async fn record(
        &self,
        id: &SessionId,
        events: Vec<NewEvent>,
        waiters: Vec<Waiter>,
        journal: Vec<JournalEntry>,
    ) -> Result<(), SessionError> {
        let recording = self.call(id, |reply| Command::Record { events, waiters, journal, files: Vec::new(), reply });
        tracing::Instrument::instrument(recording, Stage::Emit.span()).await
    }

    /// Appends events together with journal entries and file rows (one transaction: a file is never stored
    /// without the event that announces it).
    pub async fn record_with_files(
        &self,
        id: &SessionId,
        events: Vec<NewEvent>,
        journal: Vec<JournalEntry>,
        files: Vec<FileChange>,
    ) -> Result<(), SessionError> {
        let recording = self.call(id, |reply| Command::Record { events, waiters: Vec::new(), journal, files, reply });
        tracing::Instrument::instrument(recording, Stage::Emit.span()).await
    }

    /// Deletes a file and announces it; false when the session has no such file.
    pub async fn delete_file(&self, id: &SessionId, file_id: &str) -> Result<bool, SessionError> {
        let file_id = file_id.to_string();
        self.call(id, |reply| Command::DeleteFile { file_id, reply }).await
    }

    /// Applies a change computed from the session's current state, atomically with respect to other writes.
    pub async fn control(&self, id: &SessionId, change: Change) -> Result<SessionRecord, SessionError> {
        self.call(id, |reply| Command::Control { change, reply }).await
    }

    /// Records how a turn ended. The end must be stored, or the session would stay `running`: a storage failure
    /// is tried again for about 30 s (the actor keeps the turn until its end is stored); if the database stays away
    /// longer, the next start resumes the turn from its journal.
    pub async fn end_turn(&self, id: &SessionId, response_id: &str, outcome: TurnOutcome) -> Result<(), SessionError> {
        let ending = async {
            for wait in [1, 2, 4, 8, 15].map(Duration::from_secs) {
                let (response_id, outcome) = (response_id.to_string(), outcome.clone());
                match self.call(id, |reply| Command::EndTurn { response_id, outcome, reply }).await {
                    Err(e @ (SessionError::Store(_) | SessionError::Internal(_))) => {
                        tracing::warn!(session = %id, error = %e, "could not record the end of a turn; retrying in {wait:?}");
                        tokio::time::sleep(wait).await;
                    }
                    result => return result,
                }
            }
            let response_id = response_id.to_string();
            self.call(id, |reply| Command::EndTurn { response_id, outcome, reply }).await
        };
        tracing::Instrument::instrument(ending, Stage::TurnEnd.span()).await
    }

    /// After a restart: every session still marked running or paused lost its turn's task with the old process.
    /// Each turn is resumed from its journal (no model or tool call is repeated); one that cannot be resumed is
    /// marked failed with a reason, so none stays stuck in `running`.
    pub async fn recover_interrupted(&self) -> Result<usize, SessionError> {
        let mut recovered = 0;
        for status in [SessionStatus::Running, SessionStatus::Paused] {
            // Walk with a cursor, so a session that stays in the state cannot make this loop forever.
            let mut page = Page { limit: 100, after: None, before: None, descending: false };
            loop {
                let (batch, more) = self.inner.store.list_sessions(&page, Some(status)).await?;
                page.after = batch.last().map(|r| r.id.to_string());
                for record in batch {
                    match self.call(&record.id, |reply| Command::Recover { reply }).await {
                        Ok(()) => recovered += 1,
                        // A live replica runs it.
                        Err(SessionError::Elsewhere { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                if !more {
                    break;
                }
            }
        }
        Ok(recovered)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// The feed of sessions whose summary changed (created, status, title, approvals, deleted).
    pub fn changes(&self) -> broadcast::Receiver<SessionChange> {
        self.inner.changes.subscribe()
    }

    /// Number of sessions with a live actor.
    pub fn live_count(&self) -> usize {
        self.inner.live.lock().unwrap().len()
    }

    pub async fn create(&self, new: NewSession) -> Result<SessionRecord, SessionError> {
        // The callers checked the config; one that does not even parse fails its first turn with the reason.
        if let Ok(config) = serde_json::from_value::<SessionConfig>(new.config.clone()) {
            self.inner.runner.admit(&config).map_err(SessionError::Invalid)?;
        }
        let mut record = SessionRecord::new(new.config, new.title, new.labels, now_us());
        record.agent_id = new.agent_id;
        record.settings = new.settings;
        if let Some(parent) = new.parent {
            record.kind = crate::record::SessionKind::SubAgent;
            record.parent_session_id = Some(parent);
        }
        self.inner.store.create_session(&record).await?;
        tracing::info!(session = %record.id, "session created");
        self.inner.changes.updated(&record);
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
        filter: crate::store::SessionFilter,
    ) -> Result<(Vec<SessionRecord>, bool), SessionError> {
        Ok(self.inner.store.list_sessions(page, filter).await?)
    }

    pub async fn items(&self, id: &SessionId, page: &Page) -> Result<(Vec<Item>, bool), SessionError> {
        // Distinguish "no such session" from "no items".
        self.get(id).await?;
        Ok(self.inner.store.list_items(id, page).await?)
    }

    pub async fn post(&self, id: &SessionId, input: Input) -> Result<Ack, SessionError> {
        input::check_references(&self.inner.store, id, &input).await?;
        let queued = Stage::Queue.span();
        self.call(id, |reply| Command::Post { input, reply, queued }).await
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
            // Subscribe under the registry lock so a retiring actor (or a follower) cannot slip away in between.
            let rx = self.inner.live.lock().unwrap().get(id).map(|h| h.events.subscribe());
            let rx = match (rx, &self.inner.cluster) {
                (Some(rx), _) => rx,
                (None, None) => {
                    self.handle(id).await?;
                    continue;
                }
                // Streams do not claim a session: its writes decide where it lives; elsewhere it is followed.
                (None, Some(cluster)) => match self.follow(cluster, id).await? {
                    Some(rx) => rx,
                    None => continue,
                },
            };
            let record = self.get(id).await?;
            return Ok((rx, record));
        }
    }

    /// Starts following a session another replica may write: registers for its wake-ups first, then reads where
    /// its log is, so no commit falls between. None when a live handle appeared meanwhile.
    async fn follow(
        &self,
        cluster: &Arc<Cluster>,
        id: &SessionId,
    ) -> Result<Option<broadcast::Receiver<Published>>, SessionError> {
        let wake = cluster.watch(id);
        let record = match self.get(id).await {
            Ok(record) => record,
            Err(e) => {
                drop(wake);
                cluster.unwatch(id);
                return Err(e);
            }
        };
        let mut live = self.inner.live.lock().unwrap();
        if live.contains_key(id) {
            drop((live, wake));
            cluster.unwatch(id);
            return Ok(None);
        }
        let (events, rx) = broadcast::channel(BROADCAST_CAPACITY);
        live.insert(id.clone(), Handle { commands: None, events: events.clone() });
        tokio::spawn(follower::run(self.clone(), id.clone(), record.last_seq, wake, events));
        Ok(Some(rx))
    }

    /// Whether the follower publishing on `events` should go on: true while it is the session's handle and
    /// somebody listens (otherwise it leaves the registry, unless an actor took its place).
    fn keeps_following(&self, id: &SessionId, events: &broadcast::Sender<Published>) -> bool {
        let mut live = self.inner.live.lock().unwrap();
        match live.get(id) {
            Some(h) if h.commands.is_none() && h.events.same_channel(events) => {
                if events.receiver_count() > 0 {
                    return true;
                }
                live.remove(id);
                false
            }
            _ => false,
        }
    }

    /// Whether this replica writes `id` now (its actor runs here).
    fn writes_here(&self, id: &SessionId) -> bool {
        self.inner.live.lock().unwrap().get(id).is_some_and(|h| h.commands.is_some())
    }

    /// This replica lost the lock of `id` (another took it): its actor, if one runs, stops writing.
    async fn lost(&self, id: &SessionId) {
        let commands = self.inner.live.lock().unwrap().get(id).and_then(|h| h.commands.clone());
        if let Some(commands) = commands {
            let _ = commands.send(Command::StepBack).await;
        }
    }

    /// A follower's session was deleted: its streams end.
    fn follower_closed(&self, id: &SessionId, events: &broadcast::Sender<Published>) {
        let _ = events.send(Published::Closed);
        let mut live = self.inner.live.lock().unwrap();
        if live.get(id).is_some_and(|h| h.commands.is_none() && h.events.same_channel(events)) {
            live.remove(id);
        }
    }

    /// An actor that may no longer write its session (another replica took it) leaves the registry; its streams
    /// go on, fed from the log by a follower.
    fn step_back(&self, id: &SessionId, events: &broadcast::Sender<Published>, last_seq: i64) {
        let Some(cluster) = self.inner.cluster.clone() else { return };
        let wake = cluster.watch(id);
        let mut live = self.inner.live.lock().unwrap();
        match live.get(id) {
            Some(h) if h.commands.is_some() && h.events.same_channel(events) => {
                live.insert(id.clone(), Handle { commands: None, events: events.clone() });
                tokio::spawn(follower::run(self.clone(), id.clone(), last_seq, wake, events.clone()));
            }
            _ => {
                drop((live, wake));
                cluster.unwatch(id);
            }
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
            let commands = self.handle(id).await?;
            match commands.send(command).await {
                Ok(()) => return answer.await.map_err(|_| SessionError::ShuttingDown)?,
                Err(mpsc::error::SendError(back)) => {
                    self.forget(id, &commands);
                    command = back;
                }
            }
        }
        Err(SessionError::ShuttingDown)
    }

    /// The mailbox of a session's live actor, started if needed. With other replicas, this one must hold the
    /// session's lock first (the actor releases it when it stops); if another holds it: `Elsewhere`.
    async fn handle(&self, id: &SessionId) -> Result<mpsc::Sender<Command>, SessionError> {
        if let Some(commands) = self.inner.live.lock().unwrap().get(id).and_then(|h| h.commands.clone()) {
            return Ok(commands);
        }
        let Some(cluster) = &self.inner.cluster else {
            let record = self.get(id).await?;
            return Ok(self.start_actor(record).0);
        };
        let elsewhere = async || {
            let owner = cluster.owner(id).await.map_err(|e| SessionError::Internal(e.to_string()))?;
            Err(SessionError::Elsewhere { id: id.clone(), owner })
        };
        let claimed = cluster.claim(id).await.map_err(|e| SessionError::Internal(e.to_string()))?;
        let Some(claim) = claimed else { return elsewhere().await };
        // Read after claiming (or by the claim itself): every commit of the previous writer is in, and the claim
        // fenced it out (cluster/leases.rs): none can follow.
        let read = match claim.session {
            Some(session) => Ok(session),
            None => self.get(id).await,
        };
        let started = match read {
            Ok(record) if record.writer_epoch == claim.epoch => self.start_actor(record),
            Ok(_) => {
                // Another replica claimed it since this one took its lock, which died unnoticed (the lock
                // connection is checked every second): this replica no longer writes it.
                cluster.release(id).await;
                return elsewhere().await;
            }
            Err(e) => {
                cluster.release(id).await;
                return Err(e);
            }
        };
        if !started.1 {
            // An actor started here meanwhile, with its own claim.
            cluster.release(id).await;
        }
        Ok(started.0)
    }

    /// Starts the session's actor unless one runs; true when this call started it. A follower's streams carry on
    /// with the actor's events.
    fn start_actor(&self, record: SessionRecord) -> (mpsc::Sender<Command>, bool) {
        let id = record.id.clone();
        let mut live = self.inner.live.lock().unwrap();
        let following = match live.get(&id) {
            Some(Handle { commands: Some(commands), .. }) => return (commands.clone(), false),
            Some(Handle { commands: None, events }) => Some(events.clone()),
            None => None,
        };
        let (commands, mailbox) = mpsc::channel(256);
        let events = following.unwrap_or_else(|| broadcast::channel(BROADCAST_CAPACITY).0);
        live.insert(id.clone(), Handle { commands: Some(commands.clone()), events: events.clone() });
        // A root span: the actor outlives the request that woke it.
        let span = tracing::info_span!(parent: None, "session", id = %id);
        let actor = Actor {
            sessions: self.clone(),
            record,
            mailbox,
            events,
            turn: None,
            transcript: Transcript::default(),
            stepped_back: false,
        };
        tokio::spawn(tracing::Instrument::instrument(actor.run(), span));
        (commands, true)
    }

    fn forget(&self, id: &SessionId, commands: &mpsc::Sender<Command>) {
        let mut live = self.inner.live.lock().unwrap();
        if live.get(id).is_some_and(|h| h.is_actor(commands)) {
            live.remove(id);
        }
    }
}
