//! The actor of one live session: the only writer of its log. It takes commands from its mailbox one at a time,
//! builds each transaction in a [`Draft`], commits it, and only then publishes the events and sets in motion what
//! they imply (a turn starts, a waiting turn gets its answer).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::draft::{Draft, EndingTurn, PlannedTurn};
use super::runner::{TurnOutcome, TurnShared, TurnStart, Waiter, ended_even_if_it_panics};
use super::transcript::Transcript;
use super::{Ack, Answer, Change, Input, Patch, Published, SessionError, Sessions};
use crate::protocol::{self, NewEvent};
use crate::record::{Item, SessionRecord, SessionStatus, now_us};
use crate::stages::Stage;
use crate::store::{Commit, FileChange, JournalEntry, StoreError};

pub(super) type Reply<T> = oneshot::Sender<Result<T, SessionError>>;

pub(super) enum Command {
    Post {
        input: Input,
        reply: Reply<Ack>,
        /// The input's time in the mailbox (a stage span, closed when the actor takes it).
        queued: tracing::Span,
    },
    Patch {
        patch: Patch,
        reply: Reply<SessionRecord>,
    },
    Delete {
        reply: Reply<()>,
    },
    /// Events (from the running turn, a sub-agent, a comment, a file), the journal entries and file rows they
    /// commit with, and what the turn waits for next.
    Record {
        events: Vec<NewEvent>,
        waiters: Vec<Waiter>,
        journal: Vec<JournalEntry>,
        files: Vec<FileChange>,
        reply: Reply<()>,
    },
    /// Removes a file and announces it; answers false when there is no such file.
    DeleteFile {
        file_id: String,
        reply: Reply<bool>,
    },
    /// A change checked against the current state (policy CRUD).
    Control {
        change: Change,
        reply: Reply<SessionRecord>,
    },
    /// The running turn finished.
    EndTurn {
        response_id: String,
        outcome: TurnOutcome,
        reply: Reply<()>,
    },
    /// The server restarted while this session was running: resume its turn or record that it was lost.
    Recover {
        reply: Reply<()>,
    },
    /// This replica lost the session's lock to another: stop writing it.
    StepBack,
}

pub(super) struct Actor {
    pub sessions: Sessions,
    pub record: SessionRecord,
    pub mailbox: mpsc::Receiver<Command>,
    pub events: broadcast::Sender<Published>,
    pub turn: Option<ActiveTurn>,
    /// The transcript in memory, once a turn has needed it (see transcript.rs).
    pub transcript: Transcript,
    /// Another replica wrote this session: this actor stops after the command at hand (its streams are followed).
    pub stepped_back: bool,
}

/// The turn this session is running.
pub(super) struct ActiveTurn {
    response_id: String,
    model: crate::protocol::ResponseModel,
    created_at_us: i64,
    shared: TurnShared,
    /// Client tool calls waiting for their output.
    waiters: HashMap<String, oneshot::Sender<String>>,
    /// Elicitations the turn waits on.
    approvals: HashMap<String, oneshot::Sender<Answer>>,
    /// The items this turn's response produced, in order (flat form): its `output` when it ends.
    output: Vec<Value>,
    /// Resumed after a restart: the items made before it are read from the store when it ends.
    resumed: bool,
    /// The whole turn as a stage span: closed when its end is committed.
    _stage: tracing::Span,
}

impl ActiveTurn {
    /// Keeps this turn's items as committed (an item written again replaces its earlier form).
    fn collect_output(&mut self, items: &[Item]) {
        for item in items.iter().filter(|i| i.response_id.as_deref() == Some(self.response_id.as_str())) {
            let flat = item.flat();
            match self.output.iter_mut().find(|o| o["id"] == item.id.as_str()) {
                Some(existing) => *existing = flat,
                None => self.output.push(flat),
            }
        }
    }
}

/// What a committed batch of inputs sets in motion.
pub(super) enum Effect {
    StartTurn(PlannedTurn),
    Steer(String),
    Deliver { call_id: String, output: String },
    Resolve { elicitation_id: String, answer: Answer },
    Cancel,
}

/// Whether the actor goes on after a command.
#[derive(PartialEq, Eq)]
pub(super) enum Next {
    Continue,
    /// The session is gone (deleted here or elsewhere).
    Stop,
}

impl Actor {
    pub async fn run(mut self) {
        let id = self.record.id.clone();
        self.serve().await;
        if let Some(cluster) = self.sessions.cluster() {
            cluster.release(&id).await;
        }
    }

    async fn serve(&mut self) {
        // With other replicas, a session found running or paused by its new writer lost its turn with the replica
        // that ran it: it resumes here, from its journal.
        if self.sessions.cluster().is_some()
            && matches!(self.record.status, SessionStatus::Running | SessionStatus::Paused)
        {
            tracing::info!(session = %self.record.id, "adopting a session whose replica stopped: resuming its turn");
            let (reply, _) = oneshot::channel();
            self.on_recover(reply).await;
        }
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
            let next = match command {
                Command::Post { input, reply, queued } => {
                    drop(queued);
                    let (batch, rest) = self.gather(input, reply);
                    carried = rest;
                    self.post_batch(batch).await
                }
                Command::Patch { patch, reply } => self.on_patch(patch, reply).await,
                Command::Record { events, waiters, journal, files, reply } => {
                    self.on_record(events, waiters, journal, files, reply).await
                }
                Command::DeleteFile { file_id, reply } => self.on_delete_file(file_id, reply).await,
                Command::Control { change, reply } => self.on_control(change, reply).await,
                Command::EndTurn { response_id, outcome, reply } => {
                    let _ = reply.send(self.end_turn(&response_id, outcome).await);
                    Next::Continue
                }
                Command::Recover { reply } => self.on_recover(reply).await,
                Command::StepBack => {
                    self.step_back();
                    Next::Stop
                }
                Command::Delete { reply } => self.on_delete(reply).await,
            };
            if next == Next::Stop || self.stepped_back {
                return;
            }
        }
    }

    async fn on_patch(&mut self, patch: Patch, reply: Reply<SessionRecord>) -> Next {
        // The external session id is written once (Omnigent's rule): another value would re-point the session.
        if let (Some(new), Some(old)) = (&patch.external_session_id, &self.record.settings.external_session_id)
            && new != old
        {
            let message = format!("external_session_id is already {old:?}; it is set once");
            return reply_with(reply, Err(SessionError::Invalid(message)));
        }
        let mut draft = Draft::new(&self.record);
        draft.patch(patch);
        let result = self.commit(draft).await.map(|()| self.record.clone());
        reply_with(reply, result)
    }

    async fn on_record(
        &mut self,
        events: Vec<NewEvent>,
        waiters: Vec<Waiter>,
        journal: Vec<JournalEntry>,
        files: Vec<FileChange>,
        reply: Reply<()>,
    ) -> Next {
        let mut draft = Draft::new(&self.record);
        for event in events {
            draft.emit(event);
        }
        draft.journal.extend(journal);
        draft.files.extend(files);
        let result = self.commit(draft).await;
        if result.is_ok() {
            self.wait_for(waiters);
        }
        reply_with(reply, result)
    }

    async fn on_delete_file(&mut self, file_id: String, reply: Reply<bool>) -> Next {
        // Every file change of this session goes through this actor, so the check cannot go stale before the commit.
        let found = match self.sessions.store().get_file(&self.record.id, &file_id).await {
            Ok(found) => found.is_some(),
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                return Next::Continue;
            }
        };
        if !found {
            let _ = reply.send(Ok(false));
            return Next::Continue;
        }
        let mut draft = Draft::new(&self.record);
        draft.emit(protocol::resource_deleted(&self.record.id, &file_id, "file"));
        draft.files.push(FileChange::Delete { id: file_id });
        let result = self.commit(draft).await.map(|()| true);
        reply_with(reply, result)
    }

    async fn on_control(&mut self, change: Change, reply: Reply<SessionRecord>) -> Next {
        let result = match change(&self.record) {
            Ok(events) => {
                let mut draft = Draft::new(&self.record);
                for event in events {
                    draft.emit(event);
                }
                self.commit(draft).await.map(|()| self.record.clone())
            }
            Err(e) => Err(e),
        };
        reply_with(reply, result)
    }

    async fn on_recover(&mut self, reply: Reply<()>) -> Next {
        let mut draft = Draft::new(&self.record);
        let mut planned = None;
        if self.turn.is_none() && matches!(self.record.status, SessionStatus::Running | SessionStatus::Paused) {
            planned = draft.resume_turn();
        }
        let result = self.commit(draft).await;
        if result.is_ok()
            && let Some(turn) = planned
        {
            self.apply(Effect::StartTurn(turn)).await;
        }
        reply_with(reply, result)
    }

    async fn on_delete(&mut self, reply: Reply<()>) -> Next {
        if let Some(turn) = &self.turn {
            turn.shared.cancel.cancel();
        }
        match self.sessions.store().delete_session(&self.record.id).await {
            Ok(_) => {
                tracing::info!(session = %self.record.id, "session deleted");
                self.close();
                let _ = reply.send(Ok(()));
                Next::Stop
            }
            Err(e) => {
                let _ = reply.send(Err(e.into()));
                Next::Continue
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
                    // (A resumed turn's policy question; what the human filled in is not kept: policies ask yes/no.)
                    let answered =
                        self.record.policy.resolved.get(&eid).and_then(|a| serde_json::from_value(a.clone()).ok());
                    match answered {
                        Some(action) => {
                            let _ = tx.send(Answer { action, content: None });
                        }
                        None if self.record.policy.pending(&eid).is_some() => {
                            turn.approvals.insert(eid, tx);
                        }
                        // Neither asked nor answered in this turn: nobody can answer it, so it counts as cancelled.
                        None => {
                            tracing::warn!(session = %self.record.id, elicitation = %eid, "a turn waits on a question that is not pending; denying");
                            let _ = tx.send(Answer::cancelled());
                        }
                    }
                }
            }
        }
    }

    pub(super) async fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::StartTurn(planned) => self.start(planned).await,
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
            Effect::Resolve { elicitation_id, answer } => {
                if let Some(waiter) = self.turn.as_mut().and_then(|t| t.approvals.remove(&elicitation_id)) {
                    let _ = waiter.send(answer);
                }
            }
            Effect::Cancel => {
                if let Some(turn) = &self.turn {
                    turn.shared.cancel.cancel();
                }
            }
        }
    }

    /// Starts a planned turn through the server's turn runner, with the transcript in memory (read from the store
    /// the first time; if that read fails, the turn reads the store itself).
    async fn start(&mut self, planned: PlannedTurn) {
        if !self.transcript.is_loaded()
            && let Err(e) = self.transcript.load(self.sessions.store(), &self.record.id).await
        {
            tracing::warn!(session = %self.record.id, error = %e, "could not read the transcript into memory; the turn reads it from the store");
        }
        self.launch(planned);
    }

    /// Spawns the turn's task (a plain function: the task's future must not be part of the actor's own).
    fn launch(&mut self, planned: PlannedTurn) {
        let PlannedTurn { response_id, model, config, resume } = planned;
        let shared = TurnShared::default();
        self.turn = Some(ActiveTurn {
            response_id: response_id.clone(),
            model,
            created_at_us: now_us(),
            shared: shared.clone(),
            waiters: HashMap::new(),
            approvals: HashMap::new(),
            output: Vec::new(),
            resumed: resume,
            _stage: Stage::Turn.span(),
        });
        if resume {
            tracing::info!(session = %self.record.id, response = %response_id, "resuming a turn cut by a restart");
        }
        let shared_for_end = shared.clone();
        let start = TurnStart {
            record: self.record.clone(),
            response_id: response_id.clone(),
            config: *config,
            shared,
            resume,
            transcript: self.transcript.clone(),
        };
        let spawning = Stage::TurnSpawn.span();
        let task = self.sessions.inner.runner.run(self.sessions.clone(), start);
        let task = async move {
            drop(spawning);
            task.await
        };
        let task =
            ended_even_if_it_panics(task, self.sessions.clone(), shared_for_end, self.record.id.clone(), response_id);
        tokio::spawn(tracing::Instrument::instrument(task, tracing::info_span!("turn", session = %self.record.id)));
    }

    /// Records the end of the running turn; starts the next one if messages came in that the harness did not take.
    async fn end_turn(&mut self, response_id: &str, outcome: TurnOutcome) -> Result<(), SessionError> {
        let Some(turn) = self.turn.as_ref().filter(|t| t.response_id == response_id) else {
            return Ok(()); // a stale report (the turn was already ended)
        };
        // Only a completed response carries its output. A resumed turn made some of its items before the restart:
        // the store has them all. A failed read costs the response its `output`, never the turn its end.
        let output = match &outcome {
            TurnOutcome::Completed { .. } if turn.resumed => {
                match self.sessions.store().items_of_response(&self.record.id, &turn.response_id).await {
                    Ok(items) => items.iter().map(Item::flat).collect(),
                    Err(e) => {
                        tracing::warn!(session = %self.record.id, error = %e, "could not read a resumed turn's items for its response's output");
                        turn.output.clone()
                    }
                }
            }
            TurnOutcome::Completed { .. } => turn.output.clone(),
            _ => Vec::new(),
        };
        let mut draft = Draft::new(&self.record);
        let ending = EndingTurn {
            response_id: &turn.response_id,
            model: &turn.model,
            created_at_us: turn.created_at_us,
            output: &output,
        };
        draft.end_turn(&ending, outcome);
        let leftover = !turn.shared.steering.lock().unwrap().is_empty();
        let next = if leftover && !turn.shared.cancel.is_cancelled() { draft.start_turn() } else { None };
        // The turn stays this session's until its end is stored, so a failed commit can be reported again.
        self.commit(draft).await?;
        self.turn = None;
        if let Some(planned) = next {
            self.apply(Effect::StartTurn(planned)).await;
        }
        Ok(())
    }

    /// Persists a draft, then publishes its events. On a conflict the actor reloads; a vanished session closes.
    pub(super) async fn commit(&mut self, draft: Draft) -> Result<(), SessionError> {
        if draft.is_empty() {
            return Ok(());
        }
        let commit = Commit {
            expected_last_seq: self.record.last_seq,
            session: &draft.record,
            events: &draft.events,
            items: &draft.items,
            comments: &draft.comments,
            files: &draft.files,
            journal: &draft.journal,
            clear_journal: draft.clear_journal,
            spend: draft.spend.clone(),
        };
        let committing = self.sessions.store().commit(&commit);
        match tracing::Instrument::instrument(committing, Stage::Commit.span()).await {
            Ok(()) => {
                let _publishing = Stage::Publish.span().entered();
                self.sessions.inner.changes.compare(&self.record, &draft.record);
                self.transcript.apply(&draft.items);
                self.record = draft.record;
                if let Some(turn) = self.turn.as_mut() {
                    turn.collect_output(&draft.items);
                }
                for event in draft.events {
                    let _ = self.events.send(Published::Event(Arc::new(event)));
                }
                Ok(())
            }
            Err(StoreError::Conflict(id)) => match self.sessions.store().get_session(&id).await {
                Ok(Some(_)) if self.sessions.cluster().is_some() => {
                    tracing::warn!(session = %id, "another replica wrote this session; stepping back");
                    self.step_back();
                    Err(SessionError::Elsewhere { id, owner: None })
                }
                Ok(Some(fresh)) => {
                    tracing::warn!(session = %id, "log moved under this writer; reloaded");
                    self.record = fresh;
                    // What another writer committed is not in the memory transcript: read it again when needed.
                    self.transcript = Transcript::default();
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

    /// Gives the session up to the replica that wrote it: the turn stops here without an end (its new writer
    /// resumes it from the journal) and the streams are fed from the log.
    fn step_back(&mut self) {
        if let Some(turn) = self.turn.take() {
            turn.shared.abandon();
        }
        self.sessions.step_back(&self.record.id, &self.events, self.record.last_seq);
        self.stepped_back = true;
    }

    /// Tells subscribers the session is gone and leaves the registry.
    fn close(&self) {
        let _ = self.events.send(Published::Closed);
        self.sessions.inner.changes.deleted(&self.record.id);
        self.sessions.inner.live.lock().unwrap().remove(&self.record.id);
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

/// Sends a command's result; the actor stops when it says the session is gone.
fn reply_with<T>(reply: Reply<T>, result: Result<T, SessionError>) -> Next {
    let next = stop_if_gone(&result);
    let _ = reply.send(result);
    next
}

pub(super) fn stop_if_gone<T>(result: &Result<T, SessionError>) -> Next {
    if matches!(result, Err(SessionError::NotFound(_))) { Next::Stop } else { Next::Continue }
}
