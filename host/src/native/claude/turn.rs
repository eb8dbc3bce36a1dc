//! A turn of a Claude Code session: the CLI is started (or adopted), the user's message passes the `request`
//! policies, is pasted into the composer and confirmed delivered (Claude's UserPromptSubmit hook reports the
//! same text), then the transcript is followed until the turn ends there. Messages sent meanwhile steer the
//! turn (Claude queues them); an interrupt is Escape. Every transcript record read is committed with the cursor
//! that passed it, so a restart neither repeats nor loses an item.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::deliver::{self, Timing, Undelivered};
use super::screen::last_lines;
use super::transcript::{Seen, Tail, in_conversation_order, map};
use crate::native::Natives;
use crate::native::bridge::{Bridge, HookCall, LiveTurn};
use crate::native::message::{normalize, pending_text, same};
use crate::native::turn::{Started, failed, finish, judge_request, start};
use crate::protocol;
use crate::session::{FailureCode, Sessions, TokenUsage, TurnOutcome, TurnStart};
use crate::turn::journal::Entry;

/// How often the transcript is read while a turn runs.
const POLL: Duration = Duration::from_millis(40);
/// After Claude's Stop hook, how long the transcript may take to show the turn's end before the bridge ends it.
const SETTLE: Duration = Duration::from_secs(3);
/// After Escape, how long Claude may take to record the interruption.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How often the pane is checked for a CLI that exited.
const LIVENESS: Duration = Duration::from_secs(1);

/// A Claude turn: the CLI started or adopted, the message delivered, the transcript followed to the turn's end.
pub(in crate::native) async fn drive(
    natives: &Natives,
    bridge: &Arc<Bridge>,
    sessions: &Sessions,
    turn: TurnStart,
) -> TurnOutcome {
    let Started { live, mut reports, cursor } = match start(natives, bridge, sessions, &turn).await {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    let TurnStart { record, config, shared, .. } = turn;
    let running = match natives.ensure(bridge, &config).await {
        Ok(r) => r,
        Err(e) => return failed("native_launch_failed", e.to_string()),
    };
    if running.fresh
        && let Some(resource) = bridge.resource().await
    {
        let _ = sessions.emit(&record.id, vec![protocol::resource_created(resource)], Vec::new()).await;
    }
    let start_at = std::fs::metadata(&running.transcript).map(|m| m.len()).unwrap_or(0);
    let (offset, delivered) = cursor.unwrap_or((start_at, false));
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
            // Typed in the terminal: Claude has it already (and the hook judged it).
            follow.tail.offset = typed.offset;
            let entry = Entry::NativeCursor { offset: typed.offset, delivered: true };
            live.journal.record(Vec::new(), Vec::new(), entry).await;
        } else {
            if let Err(denied) = judge_request(&live, &text).await {
                return finish(&live, sessions, &record.id, denied).await;
            }
            if let Err(outcome) = follow.deliver(&text, &mut reports, &shared.cancel).await {
                return finish(&live, sessions, &record.id, outcome).await;
            }
        }
    }
    let outcome = follow.until_end(&mut reports, &shared).await;
    finish(&live, sessions, &record.id, outcome).await
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
                        events.push(self.live.item_done(&id, item_type, fields));
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
        self.live.completed(self.model.clone())
    }
}
