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

use crate::config::SessionConfig;
use crate::ids::{SessionId, prefixed};
use crate::model::{Item, SessionRecord, SessionStatus, StoredEvent, TaskError, now_us, secs};
use crate::store::{CommentChange, Commit, JournalEntry, Page, Store, StoreError};
use crate::turn::{TurnEnv, TurnOutcome, TurnShared};
pub use input::{ApprovalAction, EventInput, Input};

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
    #[error("{0}")]
    AlreadyExists(String),
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
}

/// Something the running turn waits for, delivered by the actor when it is committed.
pub enum Waiter {
    /// A client tool call's `function_call_output`, by call id.
    Output(String, oneshot::Sender<String>),
    /// A human's answer to an elicitation, by elicitation id.
    Approval(String, oneshot::Sender<ApprovalAction>),
}

/// A change validated against the session's current state inside its actor: returns the events to append.
pub type Change = Box<dyn FnOnce(&SessionRecord) -> Result<Vec<(String, Value)>, SessionError> + Send>;

enum Command {
    Post {
        input: Input,
        reply: oneshot::Sender<Result<Ack, SessionError>>,
    },
    Patch {
        patch: Patch,
        reply: oneshot::Sender<Result<SessionRecord, SessionError>>,
    },
    Delete {
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    /// Events from the running turn, the journal entry they complete, and what the turn waits for next.
    Emit {
        events: Vec<(String, Value)>,
        waiters: Vec<Waiter>,
        journal: Vec<JournalEntry>,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    /// A change checked against the current state (policy CRUD).
    Control {
        change: Change,
        reply: oneshot::Sender<Result<SessionRecord, SessionError>>,
    },
    /// The running turn finished.
    EndTurn {
        response_id: String,
        outcome: TurnOutcome,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    /// The server restarted while this session was running: record that the turn was lost.
    Recover {
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
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
    turns: TurnEnv,
}

impl Sessions {
    pub fn new(store: Store, shutdown: CancellationToken, turns: TurnEnv) -> Self {
        let idle_timeout = Duration::from_secs(60);
        Sessions { inner: Arc::new(Inner { store, live: Mutex::default(), shutdown, idle_timeout, turns }) }
    }

    pub fn turn_env(&self) -> &TurnEnv {
        &self.inner.turns
    }

    /// Appends events for a running turn (through the actor, the session's only writer).
    pub async fn emit(
        &self,
        id: &SessionId,
        events: Vec<(String, Value)>,
        waiters: Vec<Waiter>,
    ) -> Result<(), SessionError> {
        self.call(id, |reply| Command::Emit { events, waiters, journal: Vec::new(), reply }).await
    }

    /// Appends events together with the journal entries of the host calls that produced them (one transaction).
    pub async fn record(
        &self,
        id: &SessionId,
        events: Vec<(String, Value)>,
        waiters: Vec<Waiter>,
        journal: Vec<JournalEntry>,
    ) -> Result<(), SessionError> {
        self.call(id, |reply| Command::Emit { events, waiters, journal, reply }).await
    }

    /// Applies a change computed from the session's current state, atomically with respect to other writes.
    pub async fn control(&self, id: &SessionId, change: Change) -> Result<SessionRecord, SessionError> {
        self.call(id, |reply| Command::Control { change, reply }).await
    }

    /// Records how a turn ended.
    pub async fn end_turn(&self, id: &SessionId, response_id: &str, outcome: TurnOutcome) -> Result<(), SessionError> {
        let response_id = response_id.to_string();
        self.call(id, |reply| Command::EndTurn { response_id, outcome, reply }).await
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
                    self.call(&record.id, |reply| Command::Recover { reply }).await?;
                    recovered += 1;
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

    /// Number of sessions with a live actor.
    pub fn live_count(&self) -> usize {
        self.inner.live.lock().unwrap().len()
    }

    pub async fn create(&self, new: NewSession) -> Result<SessionRecord, SessionError> {
        let mut record = SessionRecord::new(new.config, new.title, new.labels, now_us());
        record.agent_id = new.agent_id;
        if let Some(parent) = new.parent {
            record.kind = "sub_agent".into();
            record.parent_session_id = Some(parent);
        }
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
            let page = self.inner.store.events_after(source, after, Some(src.last_seq), 1000).await?;
            if page.is_empty() {
                break;
            }
            events.extend(page);
        }
        if let Some(wanted) = up_to_response_id {
            let end = events.iter().rposition(|e| response_id_of(e) == Some(wanted)).ok_or_else(|| {
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
        self.inner.store.create_session(&record).await?;
        let mut draft = Draft::new(&record);
        for event in events {
            // The copy speaks of the fork, not the source.
            let text = event.data.to_string().replace(source.as_str(), record.id.as_str());
            draft.emit_at(&event.event_type, serde_json::from_str(&text).unwrap_or(Value::Null), event.created_at_us);
        }
        if draft.record.title.as_deref() != Some(title.as_str()) {
            draft.emit("session.title", json!({"conversation_id": record.id.as_str(), "title": title}));
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
            journal: &[],
            clear_journal: false,
        };
        if let Err(e) = self.inner.store.commit(&commit).await {
            // Leave no half-made fork behind.
            let _ = self.inner.store.delete_session(&record.id).await;
            return Err(e.into());
        }
        tracing::info!(session = %record.id, source = %source, "session forked");
        Ok(draft.record)
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
        let actor = Actor { sessions: self.clone(), record, mailbox, events, turn: None };
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
    turn: Option<ActiveTurn>,
}

/// The turn this session is running.
struct ActiveTurn {
    response_id: String,
    model: String,
    created_at_us: i64,
    shared: TurnShared,
    /// Client tool calls waiting for their output.
    waiters: HashMap<String, oneshot::Sender<String>>,
    /// Elicitations the turn waits on.
    approvals: HashMap<String, oneshot::Sender<ApprovalAction>>,
}

/// What a committed batch of inputs sets in motion.
enum Effect {
    /// `resume`: the turn was cut by a restart; replay it from its journal.
    StartTurn {
        response_id: String,
        model: String,
        config: Box<SessionConfig>,
        resume: bool,
    },
    Steer(String),
    Deliver {
        call_id: String,
        output: String,
    },
    Resolve {
        elicitation_id: String,
        action: ApprovalAction,
    },
    Cancel,
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
                Command::Emit { events, waiters, journal, reply } => {
                    let mut draft = Draft::new(&self.record);
                    for (event_type, payload) in events {
                        draft.emit(&event_type, payload);
                    }
                    draft.journal.extend(journal);
                    let result = self.commit(draft).await;
                    if result.is_ok() {
                        self.wait_for(waiters);
                    }
                    let _ = reply.send(result);
                }
                Command::Control { change, reply } => {
                    let mut draft = Draft::new(&self.record);
                    let result = match change(&self.record) {
                        Ok(events) => {
                            for (event_type, payload) in events {
                                draft.emit(&event_type, payload);
                            }
                            self.commit(draft).await.map(|()| self.record.clone())
                        }
                        Err(e) => Err(e),
                    };
                    let _ = reply.send(result);
                }
                Command::EndTurn { response_id, outcome, reply } => {
                    let result = self.end_turn(&response_id, outcome).await;
                    let _ = reply.send(result);
                }
                Command::Recover { reply } => {
                    let mut draft = Draft::new(&self.record);
                    let mut effects = Vec::new();
                    if self.turn.is_none()
                        && matches!(self.record.status, SessionStatus::Running | SessionStatus::Paused)
                    {
                        draft.resume_turn(&mut effects);
                    }
                    let result = self.commit(draft).await;
                    if result.is_ok() {
                        for effect in effects {
                            self.apply(effect);
                        }
                    }
                    let _ = reply.send(result);
                }
                Command::Delete { reply } => {
                    if let Some(turn) = &self.turn {
                        turn.shared.cancel.cancel();
                    }
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
        let mut effects = Vec::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        for (input, reply) in batch {
            outcomes.push((self.input(&mut draft, &mut effects, input), reply));
        }
        match self.commit(draft).await {
            Ok(()) => {
                for effect in effects {
                    self.apply(effect);
                }
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

    /// Writes one input into the draft; what it sets in motion waits in `effects` until the commit succeeds.
    fn input(&self, draft: &mut Draft, effects: &mut Vec<Effect>, input: Input) -> Result<Ack, SessionError> {
        let running = self.turn.is_some() || effects.iter().any(|e| matches!(e, Effect::StartTurn { .. }));
        match input {
            Input::Message { content, created_by } => {
                let item_id = prefixed("msg");
                let text =
                    content.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n");
                draft.consume(&item_id, "message", json!({"role": "user", "content": content}), created_by);
                if running {
                    effects.push(Effect::Steer(text));
                } else {
                    draft.start_turn(effects);
                }
                Ok(Ack { queued: true, item_id: Some(item_id) })
            }
            Input::FunctionCallOutput { call_id, output, created_by } => {
                let item_id = prefixed("fco");
                draft.consume(
                    &item_id,
                    "function_call_output",
                    json!({"call_id": call_id, "output": output}),
                    created_by,
                );
                effects.push(Effect::Deliver { call_id, output });
                Ok(Ack { queued: true, item_id: Some(item_id) })
            }
            Input::Interrupt => {
                if running {
                    effects.push(Effect::Cancel);
                }
                Ok(Ack { queued: false, item_id: None })
            }
            Input::Approval { elicitation_id, action, content } => {
                if draft.record.policy.pending(&elicitation_id).is_none() {
                    return Err(SessionError::NoSuchElicitation(elicitation_id));
                }
                let mut resolved = json!({"elicitation_id": elicitation_id, "action": action});
                if let Some(content) = content {
                    resolved["content"] = content;
                }
                draft.emit("response.elicitation_resolved", resolved);
                if draft.record.policy.pending.is_empty() && draft.record.status == SessionStatus::Paused {
                    draft.set_status(SessionStatus::Running, None);
                }
                effects.push(Effect::Resolve { elicitation_id, action });
                Ok(Ack { queued: false, item_id: None })
            }
        }
    }

    /// Registers what the running turn waits for; an answer that is already in the log is delivered at once.
    fn wait_for(&mut self, waiters: Vec<Waiter>) {
        let Some(turn) = &mut self.turn else { return };
        for waiter in waiters {
            match waiter {
                Waiter::Output(call_id, tx) => {
                    turn.waiters.insert(call_id, tx);
                }
                Waiter::Approval(eid, tx) => {
                    let answered =
                        self.record.policy.resolved.get(&eid).and_then(|a| serde_json::from_value(a.clone()).ok());
                    match answered {
                        Some(action) => {
                            let _ = tx.send(action);
                        }
                        None if self.record.policy.pending(&eid).is_some() => {
                            turn.approvals.insert(eid, tx);
                        }
                        // Neither asked nor answered in this turn: nobody can answer it, so it counts as cancelled.
                        None => {
                            tracing::warn!(session = %self.record.id, elicitation = %eid, "a turn waits on a question that is not pending; denying");
                            let _ = tx.send(ApprovalAction::Cancel);
                        }
                    }
                }
            }
        }
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::StartTurn { response_id, model, config, resume } => {
                let shared = TurnShared::default();
                self.turn = Some(ActiveTurn {
                    response_id: response_id.clone(),
                    model,
                    created_at_us: now_us(),
                    shared: shared.clone(),
                    waiters: HashMap::new(),
                    approvals: HashMap::new(),
                });
                if resume {
                    tracing::info!(session = %self.record.id, response = %response_id, "resuming a turn cut by a restart");
                }
                let task =
                    crate::turn::run(self.sessions.clone(), self.record.clone(), response_id, *config, shared, resume);
                tokio::spawn(tracing::Instrument::instrument(
                    task,
                    tracing::info_span!("turn", session = %self.record.id),
                ));
            }
            Effect::Steer(text) => {
                if let Some(turn) = &self.turn {
                    turn.shared.steering.lock().unwrap().push_back(text);
                }
            }
            Effect::Deliver { call_id, output } => {
                if let Some(waiter) = self.turn.as_mut().and_then(|t| t.waiters.remove(&call_id)) {
                    let _ = waiter.send(output);
                }
            }
            Effect::Resolve { elicitation_id, action } => {
                if let Some(waiter) = self.turn.as_mut().and_then(|t| t.approvals.remove(&elicitation_id)) {
                    let _ = waiter.send(action);
                }
            }
            Effect::Cancel => {
                if let Some(turn) = &self.turn {
                    turn.shared.cancel.cancel();
                }
            }
        }
    }

    /// Records the end of the running turn; starts the next one if messages came in that the harness did not take.
    async fn end_turn(&mut self, response_id: &str, outcome: TurnOutcome) -> Result<(), SessionError> {
        let Some(turn) = self.turn.take_if(|t| t.response_id == response_id) else {
            return Ok(()); // a stale report (the turn was already ended)
        };
        let mut draft = Draft::new(&self.record);
        let response = |status: &str| {
            json!({"id": turn.response_id, "object": "response", "status": status, "model": turn.model,
                   "created_at": secs(turn.created_at_us), "output": [], "background": false, "store": true,
                   "conversation": {"id": self.record.id.as_str()}})
        };
        let conversation = self.record.id.as_str();
        draft.clear_journal = true;
        match outcome {
            TurnOutcome::Completed { usage, model, cost_usd } => {
                let total = usage.input_tokens + usage.output_tokens;
                let usage_json = json!({"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                    "total_tokens": total, "output_tokens_details": {"reasoning_tokens": 0},
                    "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "model": model});
                let mut r = response("completed");
                r["completed_at"] = secs(now_us()).into();
                r["usage"] = usage_json.clone();
                draft.emit("response.completed", json!({"response": r}));
                // The running total per model (the session's fold keeps the latest).
                let mut by_model = self.record.usage_by_model.clone();
                let entry = by_model.entry(model.clone()).or_insert_with(|| json!({}));
                if !entry.is_object() {
                    *entry = json!({});
                }
                for (key, add) in [
                    ("input_tokens", usage.input_tokens),
                    ("output_tokens", usage.output_tokens),
                    ("total_tokens", total),
                ] {
                    entry[key] = (entry[key].as_u64().unwrap_or(0) + add).into();
                }
                entry["cost_usd"] = (entry["cost_usd"].as_f64().unwrap_or(0.0) + cost_usd).into();
                let total_cost: f64 = by_model.values().filter_map(|m| m["cost_usd"].as_f64()).sum();
                draft.emit(
                    "session.usage",
                    json!({"conversation_id": conversation, "context_tokens": total,
                    "total_cost_usd": total_cost, "usage_by_model": by_model}),
                );
                draft.set_status(SessionStatus::Idle, None);
            }
            TurnOutcome::Interrupted => {
                let mut r = response("incomplete");
                r["incomplete_details"] = json!({"reason": "user_interrupt"});
                draft.emit("response.incomplete", json!({"response": r}));
                draft.emit(
                    "session.interrupted",
                    json!({"data": {"requested_at": secs(now_us()), "response_id": turn.response_id}}),
                );
                draft.set_status(SessionStatus::Idle, None);
            }
            TurnOutcome::Failed { code, message } => {
                let mut r = response("failed");
                r["error"] = json!({"code": code, "message": message});
                draft.emit("response.failed", json!({"response": r}));
                draft.set_status(SessionStatus::Failed, Some(TaskError { code, message }));
            }
        }
        let leftover = !turn.shared.steering.lock().unwrap().is_empty();
        let mut effects = Vec::new();
        if leftover && !turn.shared.cancel.is_cancelled() {
            draft.start_turn(&mut effects);
        }
        self.commit(draft).await?;
        for effect in effects {
            self.apply(effect);
        }
        Ok(())
    }

    /// Persists a draft, then publishes its events. On a conflict the actor reloads; a vanished session closes.
    async fn commit(&mut self, draft: Draft) -> Result<(), SessionError> {
        if draft.events.is_empty() && draft.journal.is_empty() && !draft.clear_journal {
            return Ok(());
        }
        let commit = Commit {
            expected_last_seq: self.record.last_seq,
            session: &draft.record,
            events: &draft.events,
            items: &draft.items,
            comments: &draft.comments,
            journal: &draft.journal,
            clear_journal: draft.clear_journal,
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
        if self.events.receiver_count() == 0 && self.mailbox.is_empty() && self.turn.is_none() {
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
    comments: Vec<CommentChange>,
    journal: Vec<JournalEntry>,
    clear_journal: bool,
}

impl Draft {
    fn new(record: &SessionRecord) -> Self {
        Draft {
            record: record.clone(),
            events: Vec::new(),
            items: Vec::new(),
            comments: Vec::new(),
            journal: Vec::new(),
            clear_journal: false,
        }
    }

    /// Appends an event: numbers it, folds it into the session and its items.
    fn emit(&mut self, event_type: &str, payload: Value) {
        self.emit_at(event_type, payload, now_us());
    }

    /// Appends an event that happened at `at` (a fork copies history with its times).
    fn emit_at(&mut self, event_type: &str, payload: Value, now: i64) {
        let seq = self.record.last_seq + 1;
        let mut data = match payload {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        data.insert("type".into(), event_type.into());
        data.insert("sequence_number".into(), seq.into());
        let event =
            StoredEvent { seq, event_type: event_type.to_string(), data: Value::Object(data), created_at_us: now };
        fold(&mut self.record, &event);
        if let Some(item) = item_of(&event) {
            self.items.retain(|i| i.id != item.id);
            self.items.push(item);
        }
        if let Some(change) = comment_change_of(&event) {
            self.comments.push(change);
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

    fn consume(&mut self, item_id: &str, item_type: &str, data: Value, created_by: Option<String>) {
        let mut inner = json!({"item_id": item_id, "type": item_type, "data": data});
        if let Some(by) = created_by {
            inner["created_by"] = by.into();
        }
        self.emit("session.input.consumed", json!({"data": inner}));
    }

    /// A message starts a turn with the session's harness. A session whose config cannot run a turn fails it
    /// before any model is called, as Omnigent does.
    fn start_turn(&mut self, effects: &mut Vec<Effect>) {
        let Some(config) = self.turn_config() else { return };
        let response_id = response_id_for(&self.record.id);
        let model = config.executor.model.clone().unwrap_or_else(|| "scripted".into());
        self.set_status(SessionStatus::Running, None);
        let response = json!({"id": response_id, "object": "response", "status": "in_progress", "model": model,
            "created_at": secs(now_us()), "output": [], "background": false, "store": true,
            "conversation": {"id": self.record.id.as_str()}});
        self.emit("response.created", json!({"response": response}));
        self.emit("response.in_progress", json!({"response": response}));
        // A new turn's journal starts empty (a leftover of a turn whose end was never recorded is dropped).
        self.clear_journal = true;
        effects.push(Effect::StartTurn { response_id, model, config: Box::new(config), resume: false });
    }

    /// After a restart: picks the turn in progress up again (the turn replays its journal), or, when there is no
    /// turn to pick up, records that it was lost.
    fn resume_turn(&mut self, effects: &mut Vec<Effect>) {
        let Some(response_id) = self.record.active_response_id.clone() else {
            let error = TaskError {
                code: "server_restarted".into(),
                message: "the server stopped while this session was running and no turn was recorded as in \
                          progress; what happened until then is in the transcript. Send a message to continue."
                    .into(),
            };
            self.set_status(SessionStatus::Failed, Some(error));
            return;
        };
        let Some(config) = self.turn_config() else { return };
        let model = config.executor.model.clone().unwrap_or_else(|| "scripted".into());
        effects.push(Effect::StartTurn { response_id, model, config: Box::new(config), resume: true });
    }

    /// The config a turn runs with, or the session marked failed with why there is none.
    fn turn_config(&mut self) -> Option<SessionConfig> {
        if harness_name(&self.record.config).is_none() {
            let error = TaskError {
                code: "no_harness".into(),
                message: "this session's config names no executor.harness, so no turn can run; create the session \
                          with a config that sets executor.harness"
                    .into(),
            };
            self.set_status(SessionStatus::Failed, Some(error));
            return None;
        }
        match serde_json::from_value(self.record.config.clone()) {
            Ok(c) => Some(c),
            Err(e) => {
                let error =
                    TaskError { code: "invalid_config".into(), message: format!("the session config is invalid: {e}") };
                self.set_status(SessionStatus::Failed, Some(error));
                None
            }
        }
    }

    fn patch(&mut self, patch: Patch) {
        if let Some(title) = patch.title
            && title != self.record.title
        {
            self.emit("session.title", json!({"conversation_id": self.record.id.as_str(), "title": title}));
        }
        if let Some(changes) = patch.labels {
            let mut labels = self.record.labels.clone();
            crate::model::merge_labels(&mut labels, &changes);
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
                if matches!(status, SessionStatus::Idle | SessionStatus::Failed) {
                    record.active_response_id = None;
                }
                record.last_task_error = match status {
                    SessionStatus::Failed => data.get("error").and_then(|e| serde_json::from_value(e.clone()).ok()),
                    _ => None,
                };
            }
        }
        "session.title" => record.title = data.get("title").and_then(Value::as_str).map(str::to_string),
        "response.created" => {
            record.active_response_id = data.pointer("/response/id").and_then(Value::as_str).map(str::to_string);
        }
        "response.completed" | "response.failed" | "response.incomplete" | "response.cancelled"
            if record.active_response_id.as_deref() == data.pointer("/response/id").and_then(Value::as_str) =>
        {
            record.active_response_id = None;
            // The turn is over: nothing it asked is pending any more, and its answers are no longer needed.
            record.policy.pending.clear();
            record.policy.resolved.clear();
        }
        "response.elicitation_request" => {
            let own = data
                .pointer("/params/target_session_id")
                .and_then(Value::as_str)
                .is_none_or(|t| t == record.id.as_str());
            if let Some(eid) = data.get("elicitation_id").and_then(Value::as_str)
                && own
                && !record.policy.resolved.contains_key(eid)
            {
                record.policy.pending.retain(|p| p["elicitation_id"] != eid);
                record.policy.pending.push(data.clone());
            }
        }
        "response.elicitation_resolved" => {
            if let Some(eid) = data.get("elicitation_id").and_then(Value::as_str)
                && record.policy.pending(eid).is_some()
            {
                record.policy.pending.retain(|p| p["elicitation_id"] != eid);
                record.policy.resolved.insert(eid.to_string(), data.get("action").cloned().unwrap_or(Value::Null));
            }
        }
        "session.policy_state" => {
            if let Some(changes) = data
                .get("updates")
                .and_then(|u| serde_json::from_value::<Vec<crate::policy::StateChange>>(u.clone()).ok())
            {
                crate::policy::apply_state(&mut record.policy.state, &changes);
            }
        }
        "session.policy.created" | "session.policy.updated" => {
            if let Some(policy) = data.get("policy")
                && let Some(id) = policy.get("id").and_then(Value::as_str)
            {
                match record.policy.policies.iter_mut().find(|p| p["id"] == id) {
                    Some(existing) => *existing = policy.clone(),
                    None => record.policy.policies.push(policy.clone()),
                }
            }
        }
        "session.policy.deleted" => {
            if let Some(id) = data.get("policy_id").and_then(Value::as_str) {
                record.policy.policies.retain(|p| p["id"] != id);
            }
        }
        "session.usage" => {
            // The event carries the running total, so the fold is the latest one.
            if let Some(Value::Object(usage)) = data.get("usage_by_model") {
                record.usage_by_model = usage.clone();
            }
        }
        "session.labels" => {
            if let Some(Value::Object(labels)) = data.get("labels") {
                record.labels = labels.clone();
            }
        }
        // Labels a policy sets: merged, a null value removes the label.
        "session.labels_set" => {
            if let Some(Value::Object(changes)) = data.get("set_labels") {
                crate::model::merge_labels(&mut record.labels, changes);
            }
        }
        _ => {}
    }
}

/// The change to the comments fold an event makes, if any.
pub fn comment_change_of(event: &StoredEvent) -> Option<CommentChange> {
    let comment = event.data.get("comment")?;
    let id = comment.get("id")?.as_str()?.to_string();
    match event.event_type.as_str() {
        "session.comment.created" | "session.comment.updated" => Some(CommentChange::Upsert {
            path: comment.get("path").and_then(Value::as_str).unwrap_or_default().to_string(),
            created_at_us: event.created_at_us,
            data: comment.clone(),
            id,
        }),
        "session.comment.deleted" => Some(CommentChange::Delete { id }),
        _ => None,
    }
}

/// A new response id that names its session: `resp_<session hex><8 hex>`, so a `previous_response_id` leads back
/// to the session without a lookup table.
fn response_id_for(session: &SessionId) -> String {
    format!("resp_{}{}", &session.as_str()["conv_".len()..], &crate::ids::random_hex()[..8])
}

/// The session a response id (made by `response_id_for`) belongs to.
pub fn session_of_response(response_id: &str) -> Option<SessionId> {
    let hex = response_id.strip_prefix("resp_")?;
    SessionId::parse(hex.get(..32)?).ok()
}

/// The response an event belongs to, if any.
fn response_id_of(event: &StoredEvent) -> Option<&str> {
    let d = &event.data;
    d.pointer("/response/id").or_else(|| d.pointer("/item/response_id")).and_then(Value::as_str)
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
            let status =
                data.remove("status").and_then(|v| v.as_str().map(str::to_string)).unwrap_or("completed".into());
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
