//! A turn of a Claude Code session: the CLI is started (or adopted), the user's message passes the `request`
//! policies, is pasted into the composer and confirmed delivered (Claude's UserPromptSubmit hook reports the
//! same text), then the transcript is followed until the turn ends there. Messages sent meanwhile steer the
//! turn (Claude queues them); an interrupt is Escape. Every transcript record read is committed with the cursor
//! that passed it, so a restart neither repeats nor loses an item.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use super::deliver::{self, Timing, Undelivered};
use super::screen::last_lines;
use super::transcript::{Seen, Tail, in_conversation_order, map};
use crate::ids::SessionId;
use crate::native::Natives;
use crate::native::bridge::{Bridge, HookCall, LiveTurn};
use crate::native::message::{normalize, pending_text, same};
use crate::policy::{Phase, PolicyMap};
use crate::protocol;
use crate::record::{now_us, secs};
use crate::session::{FailureCode, Sessions, TokenUsage, TurnOutcome, TurnStart};
use crate::turn::gate::Gate;
use crate::turn::journal::{Entry, Journal};

/// How often the transcript is read while a turn runs.
const POLL: Duration = Duration::from_millis(40);
/// After Claude's Stop hook, how long the transcript may take to show the turn's end before the bridge ends it.
const SETTLE: Duration = Duration::from_secs(3);
/// After Escape, how long Claude may take to record the interruption.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How often the pane is checked for a CLI that exited.
const LIVENESS: Duration = Duration::from_secs(1);

fn failed(code: &str, message: String) -> TurnOutcome {
    TurnOutcome::Failed { code: FailureCode::of(code), message }
}

/// Runs a turn to its end and reports the outcome to the session's actor.
pub async fn run(natives: Arc<Natives>, sessions: Sessions, turn: TurnStart) {
    let id = turn.record.id.clone();
    let response_id = turn.response_id.clone();
    let bridge = natives.bridge(&id);
    let outcome = drive(&natives, &bridge, &sessions, turn).await;
    bridge.set_live(None);
    if let Err(e) = sessions.end_turn(&id, &response_id, outcome).await {
        tracing::error!(session = %id, error = %e, "could not record the end of a native turn; a restart resumes it");
    }
}

async fn drive(natives: &Natives, bridge: &Arc<Bridge>, sessions: &Sessions, turn: TurnStart) -> TurnOutcome {
    let TurnStart { record, response_id, config, shared, resume } = turn;
    let cwd = config.work_dir();
    let session_policies = PolicyMap::of_session(&record.policy.policies);
    let agent_policies = config.policies.clone().unwrap_or_default();
    let chain = match natives.policies.chain(&session_policies, &agent_policies).await {
        Ok(c) => c,
        Err(e) => return failed(FailureCode::PolicyInvalid.as_str(), e),
    };
    let journal = match Journal::open(sessions, &record.id, &response_id, resume).await {
        Ok(j) => j,
        Err(e) => return failed(FailureCode::JournalUnavailable.as_str(), e),
    };
    // A resumed turn goes on from its cursor (the CLI kept working while the server was away).
    let cursor = journal.take_all().into_iter().rev().find_map(|e| match e {
        Entry::NativeCursor { offset, delivered } => Some((offset, delivered)),
        _ => None,
    });
    let running = match super::ensure(bridge, natives, &config, &cwd).await {
        Ok(r) => r,
        Err(e) => return failed("native_launch_failed", e.to_string()),
    };
    if running.fresh
        && let Some(resource) = bridge.resource().await
    {
        let _ = sessions.emit(&record.id, vec![protocol::resource_created(resource)], Vec::new()).await;
    }
    let gate = Gate::new(chain, sessions, &record, &response_id, config.executor.clone(), shared.cancel.clone());
    let (hooks, mut reports) = mpsc::unbounded_channel();
    let live = Arc::new(LiveTurn {
        response_id: response_id.clone(),
        gate,
        journal,
        hooks,
        config: config.clone(),
        consents: Default::default(),
    });
    bridge.set_live(Some(live.clone()));
    let start = std::fs::metadata(&running.transcript).map(|m| m.len()).unwrap_or(0);
    let (offset, delivered) = cursor.unwrap_or((start, false));
    let mut follow = Follow {
        bridge: bridge.clone(),
        sessions: sessions.clone(),
        live: live.clone(),
        tail: Tail { path: running.transcript.clone(), offset },
        usage: HashMap::new(),
        model: config.executor.model.clone().unwrap_or_default(),
        steered: Vec::new(),
        stop_seen: None,
    };
    if !delivered {
        let text = match pending_text(sessions, &record.id).await {
            Ok(t) if !t.trim().is_empty() => t,
            Ok(_) => return failed("native_delivery_failed", "the turn has no message to deliver".into()),
            Err(e) => return failed(FailureCode::StorageError.as_str(), e),
        };
        if let Some(typed) = bridge.take_typed(&text) {
            // Typed in the terminal: Claude has it already.
            follow.tail.offset = typed.offset;
            let entry = Entry::NativeCursor { offset: typed.offset, delivered: true };
            live.journal.record(Vec::new(), Vec::new(), entry).await;
            let outcome = follow.until_end(&mut reports, &shared).await;
            return finish(&live, sessions, &record.id, outcome).await;
        }
        if live.gate.judges(Phase::Request) {
            let request = json!({"user_content": text, "attachments": []});
            if let Err(reason) = live.gate.check(&live.journal, Phase::Request, None, request, None, None).await {
                live.journal.flush(Vec::new()).await;
                return failed(FailureCode::PolicyDenied.as_str(), reason);
            }
        }
        if let Err(outcome) = follow.deliver(&text, &mut reports, &shared.cancel).await {
            return outcome;
        }
    }
    let outcome = follow.until_end(&mut reports, &shared).await;
    finish(&live, sessions, &record.id, outcome).await
}

/// Commits what the turn left deferred; a storage failure is the turn's outcome. A consent question still open
/// was answered in the terminal (the turn could not have ended otherwise).
async fn finish(live: &LiveTurn, sessions: &Sessions, session: &SessionId, outcome: TurnOutcome) -> TurnOutcome {
    live.answered_in_terminal(sessions, session).await;
    live.journal.flush(Vec::new()).await;
    match live.journal.storage_failure() {
        Some(why) if !matches!(outcome, TurnOutcome::Failed { .. }) => failed(FailureCode::StorageError.as_str(), why),
        _ => outcome,
    }
}

/// A turn in progress, from delivery to its end.
struct Follow {
    bridge: Arc<Bridge>,
    sessions: Sessions,
    live: Arc<LiveTurn>,
    tail: Tail,
    /// Tokens per model response (Claude repeats a response's usage on each of its lines).
    usage: HashMap<String, TokenUsage>,
    model: String,
    /// Steering messages pasted while Claude was busy, not yet seen queued.
    steered: Vec<String>,
    stop_seen: Option<Instant>,
}

impl Follow {
    /// Delivers the message ([`deliver`]) and records that Claude has it; a delivery that fails ends the turn.
    async fn deliver(
        &mut self,
        text: &str,
        reports: &mut mpsc::UnboundedReceiver<HookCall>,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(), TurnOutcome> {
        let mut held = Vec::new();
        let delivered = deliver::deliver(&self.bridge.tmux, text, reports, cancel, &Timing::default(), &mut held).await;
        // Reports that came meanwhile are the turn's (a fast Stop, a delta).
        for report in held {
            self.on_report(report).await;
        }
        let why = match delivered {
            Ok(()) => {
                let entry = Entry::NativeCursor { offset: self.tail.offset, delivered: true };
                self.live.journal.record(Vec::new(), Vec::new(), entry).await;
                return Ok(());
            }
            Err(Undelivered::Interrupted) => return Err(TurnOutcome::Interrupted),
            Err(Undelivered::Exited) => return Err(self.exited().await),
            Err(Undelivered::NotReady(screen)) => format!(
                "Claude's composer did not appear within {} s (a dialog may wait for a human: attach to the \
                 session's terminal); the terminal shows:\n{}",
                Timing::default().ready.as_secs(),
                last_lines(&screen, 12)
            ),
            Err(Undelivered::NotConfirmed(screen)) => format!(
                "Claude did not confirm the message within {} s; the terminal shows:\n{}",
                Timing::default().retries.iter().map(Duration::as_secs).sum::<u64>(),
                last_lines(&screen, 12)
            ),
            Err(Undelivered::Failed(why)) => why,
        };
        Err(failed("native_delivery_failed", why))
    }

    async fn pane_dead(&self) -> bool {
        deliver::pane_dead(&self.bridge.tmux).await
    }

    /// The failure of a CLI that exited, with what its terminal showed last.
    async fn exited(&self) -> TurnOutcome {
        let status = self.bridge.tmux.pane().await.ok().and_then(|p| p.exit_status);
        let screen = self.bridge.tmux.capture(false).await.unwrap_or_default();
        let status = status.map(|s| format!(" with status {s}")).unwrap_or_default();
        failed(
            "native_process_exited",
            format!(
                "Claude Code exited{status}; the next message starts it again. Its terminal showed:\n{}",
                last_lines(&screen, 12)
            ),
        )
    }

    /// A hook report for the turn.
    async fn on_report(&mut self, report: HookCall) -> Option<TurnOutcome> {
        match report.event.as_str() {
            "Stop" => self.stop_seen = Some(Instant::now()),
            "StopFailure" => {
                let why = report.body["error"]
                    .as_str()
                    .or(report.body["message"].as_str())
                    .unwrap_or("the model call failed");
                return Some(failed("native_api_error", why.to_string()));
            }
            "MessageDisplay" => {
                if let Some(delta) = report.body["delta"].as_str().filter(|d| !d.is_empty()) {
                    let id = report.body["message_id"].as_str().unwrap_or("message");
                    let _ = self
                        .sessions
                        .emit(&self.bridge.session, vec![protocol::text_delta(delta, id)], Vec::new())
                        .await;
                }
            }
            _ => {}
        }
        None
    }

    /// Mirrors the transcript until the turn ends there (or is interrupted, or the CLI exits).
    async fn until_end(
        &mut self,
        reports: &mut mpsc::UnboundedReceiver<HookCall>,
        shared: &crate::session::TurnShared,
    ) -> TurnOutcome {
        let mut tick = tokio::time::interval(POLL);
        let mut interrupted_at: Option<Instant> = None;
        let mut checked = Instant::now();
        loop {
            tokio::select! {
                Some(report) = reports.recv() => {
                    if let Some(end) = self.on_report(report).await {
                        return end;
                    }
                }
                _ = tick.tick() => {}
                _ = shared.cancel.cancelled(), if interrupted_at.is_none() => {
                    tracing::info!(session = %self.bridge.session, "interrupting Claude (Escape)");
                    let _ = self.bridge.tmux.keys(&["Escape"]).await;
                    interrupted_at = Some(Instant::now());
                }
            }
            if let Some(end) = self.read_transcript().await {
                return end;
            }
            if interrupted_at.is_some_and(|t| t.elapsed() > INTERRUPT_GRACE) {
                return TurnOutcome::Interrupted;
            }
            if self.stop_seen.is_some_and(|t| t.elapsed() > SETTLE) {
                tracing::debug!(session = %self.bridge.session, "Claude stopped without recording the turn's end; ending it");
                return self.completed();
            }
            if self.stop_seen.is_none() && interrupted_at.is_none() {
                self.steer(shared).await;
            }
            if checked.elapsed() > LIVENESS {
                checked = Instant::now();
                if self.pane_dead().await {
                    // Records written just before the exit still count.
                    let _ = self.read_transcript().await;
                    return self.exited().await;
                }
            }
        }
    }

    /// Pastes messages that arrived during the turn; Claude queues them into the running turn.
    async fn steer(&mut self, shared: &crate::session::TurnShared) {
        let messages: Vec<String> = shared.steering.lock().unwrap().drain(..).collect();
        for message in messages {
            let text = normalize(&message);
            let tmux = &self.bridge.tmux;
            if let Err(e) = async {
                tmux.paste(&text).await?;
                tmux.keys(&["Enter"]).await
            }
            .await
            {
                tracing::warn!(session = %self.bridge.session, error = %e, "steering Claude failed");
                continue;
            }
            self.steered.push(text);
        }
    }

    /// Reads new transcript records, commits their events with the cursor, and says whether the turn ended.
    async fn read_transcript(&mut self) -> Option<TurnOutcome> {
        let batch = match self.tail.read() {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(session = %self.bridge.session, error = %e, "reading Claude's transcript failed");
                return None;
            }
        };
        if batch.is_empty() {
            return None;
        }
        let mut events = Vec::new();
        let mut end = None;
        let mut answered = false;
        for (_, record) in in_conversation_order(batch) {
            for seen in map(&record) {
                match seen {
                    Seen::Item { id, item_type, fields } => {
                        if item_type == "function_call_output" {
                            answered = true;
                        }
                        let item =
                            protocol::item(&id, item_type, "completed", &self.live.response_id, secs(now_us()), fields);
                        events.push(protocol::output_item_done(item));
                    }
                    Seen::Usage { message_id, input_tokens, output_tokens, model } => {
                        if !model.is_empty() {
                            self.model = model;
                        }
                        let usage = TokenUsage { input_tokens, output_tokens };
                        if self.usage.insert(message_id, usage).is_none() {
                            self.live.gate.add_usage(usage);
                        }
                    }
                    Seen::Queued(text) => {
                        if let Some(i) = self.steered.iter().position(|s| same(s, &text)) {
                            self.steered.remove(i);
                        }
                    }
                    Seen::TurnEnd => end = end.or(Some(self.completed())),
                    Seen::Interrupted => end = end.or(Some(TurnOutcome::Interrupted)),
                    Seen::Blocked(why) => end = end.or(Some(failed(FailureCode::PolicyDenied.as_str(), why))),
                    Seen::ApiError(why) => end = end.or(Some(failed("native_api_error", why))),
                    Seen::Prompt(_) => {}
                }
            }
        }
        let entry = Entry::NativeCursor { offset: self.tail.offset, delivered: true };
        self.live.journal.record(events, Vec::new(), entry).await;
        if answered {
            self.live.answered_in_terminal(&self.sessions, &self.bridge.session).await;
        }
        end
    }

    fn completed(&self) -> TurnOutcome {
        let usage = self.live.gate.turn_usage();
        let cost_usd = self.live.config.executor.cost_usd(usage.input_tokens, usage.output_tokens);
        TurnOutcome::Completed { usage, model: self.model.clone(), cost_usd }
    }
}
