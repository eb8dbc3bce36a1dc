//! A turn of a Codex session: the app-server is started (or adopted), the user's message passes the `request`
//! policies and goes in as `turn/start` (confirmed by its answer), then the thread's notifications are mirrored
//! until `turn/completed`. Messages sent meanwhile are `turn/steer`; an interrupt is `turn/interrupt`; codex's
//! approval requests become elicitations answered from anywhere (or in the TUI, whichever comes first).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::map::{Seen, map};
use super::rpc::{Incoming, Rpc, RpcError};
use crate::config::NativeConfigDir;
use crate::native::Natives;
use crate::native::bridge::{Bridge, LiveTurn};
use crate::native::message::pending_text;
use crate::native::turn::{Started, failed, finish, judge_request, start};
use crate::protocol;
use crate::session::{ApprovalAction, FailureCode, Input, Sessions, TokenUsage, TurnOutcome, TurnStart};
use crate::turn::journal::Entry;

/// The journal's note that codex has the turn's message (codex keeps its own place: no offset).
const DELIVERED: Entry = Entry::NativeCursor { offset: 0, delivered: true };
/// How often a turn that began before the bridge listened is read back from the thread.
const REREAD: Duration = Duration::from_millis(500);
/// After `turn/interrupt`, how long codex may take to end the turn.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// The name a codex approval question carries where a policy's name would be.
pub const CONSENT_ASKER: &str = "codex_native_permission";
/// How long codex's own approval question may wait for an answer here.
const CONSENT_TIMEOUT_S: u64 = 86_400;

/// A Codex turn: the app-server started or adopted, the message handed over as `turn/start` (or a prompt typed
/// into the TUI followed), the thread's notifications mirrored until the turn ends.
pub(in crate::native) async fn drive(
    natives: &Natives,
    bridge: &Arc<Bridge>,
    sessions: &Sessions,
    turn: TurnStart,
) -> TurnOutcome {
    let Started { live, cursor, .. } = match start(natives, bridge, sessions, &turn).await {
        Ok(s) => s,
        Err(outcome) => return outcome,
    };
    let delivered = cursor.is_some_and(|(_, delivered)| delivered);
    let outcome = go(natives, bridge, sessions, &live, delivered, &turn).await;
    finish(&live, sessions, &turn.record.id, outcome).await
}

/// The turn proper; `delivered`: codex took its message before a restart cut the turn.
async fn go(
    natives: &Natives,
    bridge: &Arc<Bridge>,
    sessions: &Sessions,
    live: &Arc<LiveTurn>,
    delivered: bool,
    turn: &TurnStart,
) -> TurnOutcome {
    let TurnStart { record, response_id, config, shared, .. } = turn;
    let session = &record.id;
    let cwd = config.work_dir();
    let running = match natives.ensure(bridge, config).await {
        Ok(r) => r,
        Err(e) => return failed("native_launch_failed", e.to_string()),
    };
    let (rpc, mut incoming) = match Rpc::connect(&super::socket(bridge)).await {
        Ok(c) => c,
        Err(e) => return failed("native_process_exited", e.to_string()),
    };
    // Our hooks live only in the session's own CODEX_HOME (never trust the user's); trusting them once per
    // app-server start is enough (codex keeps the trust in its config).
    if running.fresh
        && config.executor.config_dir.unwrap_or_default() == NativeConfigDir::Isolated
        && let Err(e) = super::trust_hooks(&rpc, &cwd).await
    {
        tracing::warn!(session = %session, error = %e, "cannot trust codex's hooks: policies will not see its tool calls");
    }
    // A prompt typed into the TUI runs as the TUI's turn already: its thread is not rejoined (rejoining a
    // running thread from a second client can cut its turn short); its record is read instead.
    let text = if delivered {
        None
    } else {
        match pending_text(sessions, session).await {
            Ok(t) if !t.trim().is_empty() => Some(t),
            Ok(_) => return failed("native_delivery_failed", "the turn has no message to deliver".into()),
            Err(e) => return failed(FailureCode::StorageError.as_str(), e),
        }
    };
    let typed = text.as_deref().and_then(|t| bridge.take_typed(t));
    let known = typed.as_ref().and_then(|_| super::thread_id(bridge));
    let (thread, resumed) = match known {
        Some(id) => (id, None),
        None => match thread(bridge, &rpc, &cwd).await {
            Ok(t) => t,
            Err(e) => return failed("native_process_exited", format!("the codex thread is not available: {e}")),
        },
    };
    {
        let (b, s, t) = (bridge.clone(), sessions.clone(), thread.clone());
        bridge.watch_with(move || tokio::spawn(super::watch::watch(b, s, t)));
    }
    let mut follow = Follow {
        bridge: bridge.clone(),
        sessions: sessions.clone(),
        live: live.clone(),
        rpc: rpc.clone(),
        thread: thread.clone(),
        turn: None,
        usage_before: None,
        usage: TokenUsage::default(),
        asked: HashMap::new(),
        reread: false,
    };
    if delivered {
        // A restart cut the turn after codex took the message: codex went on meanwhile. What it finished while
        // nobody listened is in the thread; the turn may even be over.
        tracing::info!(session = %session, "resuming a codex turn after a restart");
        if let Some(end) = follow.catch_up(resumed.as_ref()).await {
            return end;
        }
    } else if let Some(typed) = typed {
        // Typed into the TUI: codex runs that turn already; its record is read until it ends.
        let entry = DELIVERED;
        live.journal.record(Vec::new(), Vec::new(), entry).await;
        follow.turn = typed.external_id;
        follow.reread = true;
        if let Some(end) = follow.reread().await {
            return end;
        }
    } else {
        let text = text.unwrap_or_default();
        if let Err(denied) = judge_request(live, &text).await {
            return denied;
        }
        let client_id = format!("{}{}", super::watch::CLIENT_PREFIX, response_id);
        let params =
            json!({"threadId": thread, "input": [{"type": "text", "text": text}], "clientUserMessageId": client_id});
        match rpc.request("turn/start", params).await {
            Ok(answer) => follow.turn = answer["turn"]["id"].as_str().map(str::to_string),
            Err(e) => return failed("native_delivery_failed", format!("codex did not take the message: {e}")),
        }
        let entry = DELIVERED;
        live.journal.record(Vec::new(), Vec::new(), entry).await;
        // The thread has a turn now: its TUI can join (and show codex's own approval dialogs).
        show_tui(bridge, sessions, session, config, &thread).await;
    }
    let outcome = follow.until_end(&mut incoming, shared).await;
    // If the TUI could not join while the first turn started, it can now.
    show_tui(bridge, sessions, session, config, &thread).await;
    outcome
}

/// The humans' view of the thread: its TUI in window `main`, announced as the session's terminal.
async fn show_tui(
    bridge: &Bridge,
    sessions: &Sessions,
    id: &crate::ids::SessionId,
    config: &crate::config::SessionConfig,
    thread: &str,
) {
    match super::ensure_tui(bridge, config, thread).await {
        Ok(true) => {
            if let Some(resource) = bridge.resource().await {
                let _ = sessions.emit(id, vec![protocol::resource_created(resource)], Vec::new()).await;
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(session = %id, error = %e, "could not start the codex TUI"),
    }
}

/// The session's thread: resumed (which also subscribes this connection to it; the answer holds its turns), or
/// started.
async fn thread(bridge: &Bridge, rpc: &Rpc, cwd: &std::path::Path) -> Result<(String, Option<Value>), RpcError> {
    if let Some(id) = super::thread_id(bridge) {
        match rpc.request("thread/resume", json!({"threadId": id})).await {
            Ok(resumed) => return Ok((id, Some(resumed))),
            // A thread that never had a turn has nothing to resume: it is usable as it is only if the
            // app-server that made it still runs; otherwise start a new one.
            Err(RpcError::Server { message, .. }) if message.contains("no rollout") => return Ok((id, None)),
            Err(e) => {
                tracing::warn!(session = %bridge.session, error = %e, "cannot resume the codex thread; starting a new one")
            }
        }
    }
    let answer = rpc.request("thread/start", json!({"cwd": cwd})).await?;
    let id = answer["thread"]["id"].as_str().unwrap_or_default().to_string();
    super::set_thread_id(bridge, &id).map_err(|e| RpcError::Connect(e.to_string()))?;
    Ok((id, None))
}

struct Follow {
    bridge: Arc<Bridge>,
    sessions: Sessions,
    live: Arc<LiveTurn>,
    rpc: Rpc,
    thread: String,
    /// Codex's id of the running turn.
    turn: Option<String>,
    /// The thread's token totals before this turn (codex reports running totals).
    usage_before: Option<TokenUsage>,
    usage: TokenUsage,
    /// Approval requests open here: JSON-RPC id → elicitation id.
    asked: HashMap<String, String>,
    /// The turn began before this connection listened: read the thread's record of it now and then (and at its
    /// end) for what the notifications missed.
    reread: bool,
}

impl Follow {
    /// Records the items of the followed turn (or, after a restart, the thread's last) that the session does not
    /// have yet — codex finished them while nobody listened — and returns the turn's end if it is over.
    async fn catch_up(&mut self, resumed: Option<&Value>) -> Option<TurnOutcome> {
        let turns = resumed?["thread"]["turns"].as_array()?;
        // The turn this one follows, if known; else the thread's last.
        let turn = match &self.turn {
            Some(id) => turns.iter().find(|t| t["id"] == id.as_str())?.clone(),
            None => turns.last()?.clone(),
        };
        self.turn = turn["id"].as_str().map(str::to_string);
        let page = crate::store::Page { limit: 500, after: None, before: None, descending: true };
        let stored: std::collections::HashSet<String> =
            match self.sessions.store().list_items(&self.bridge.session, &page).await {
                Ok((items, _)) => items.into_iter().map(|i| i.id).collect(),
                Err(e) => return Some(failed(FailureCode::StorageError.as_str(), e.to_string())),
            };
        let events: Vec<_> = turn["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(super::map::items)
            .filter(|(id, _, _)| !stored.contains(id))
            .map(|(id, item_type, fields)| self.live.item_done(&id, item_type, fields))
            .collect();
        if !events.is_empty() {
            tracing::info!(session = %self.bridge.session, items = events.len(), "recording what codex finished while the server was away");
            self.live.journal.record(events, Vec::new(), DELIVERED).await;
        }
        match turn["status"].as_str().unwrap_or_default() {
            "completed" => Some(self.completed()),
            "interrupted" => Some(TurnOutcome::Interrupted),
            "failed" => Some(failed(
                "native_api_error",
                turn["error"]["message"].as_str().unwrap_or("the codex turn failed").to_string(),
            )),
            _ => None,
        }
    }

    /// The thread's record of the followed turn, reconciled with the session's (a read: the thread is not
    /// rejoined).
    async fn reread(&mut self) -> Option<TurnOutcome> {
        let read = self.rpc.request("thread/read", json!({"threadId": self.thread, "includeTurns": true})).await.ok();
        self.catch_up(read.as_ref()).await
    }

    fn completed(&self) -> TurnOutcome {
        self.live.completed(self.live.config.executor.model.clone().unwrap_or_else(|| "codex".into()))
    }

    async fn until_end(
        &mut self,
        incoming: &mut mpsc::UnboundedReceiver<Incoming>,
        shared: &crate::session::TurnShared,
    ) -> TurnOutcome {
        let mut interrupted_at: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut reread_at = Instant::now();
        loop {
            tokio::select! {
                message = incoming.recv() => match message {
                    Some(Incoming::Notification { method, params }) => {
                        if params["threadId"].as_str().is_some_and(|t| t != self.thread) {
                            continue;
                        }
                        if let Some(end) = self.on_notification(&method, &params).await {
                            return end;
                        }
                    }
                    Some(Incoming::Request { id, method, params }) => self.on_request(id, method, params),
                    Some(Incoming::Closed) | None => {
                        return failed("native_process_exited", "the codex app-server closed the connection (it exited?)".into());
                    }
                },
                _ = tick.tick() => {}
                _ = shared.cancel.cancelled(), if interrupted_at.is_none() => {
                    interrupted_at = Some(Instant::now());
                    if let Some(turn) = &self.turn {
                        let _ = self.rpc.request("turn/interrupt", json!({"threadId": self.thread, "turnId": turn})).await;
                    }
                }
            }
            if interrupted_at.is_some_and(|t| t.elapsed() > INTERRUPT_GRACE) {
                return TurnOutcome::Interrupted;
            }
            if self.reread && reread_at.elapsed() > REREAD {
                reread_at = Instant::now();
                if let Some(end) = self.reread().await {
                    return end;
                }
            }
            if interrupted_at.is_none() {
                self.steer(shared).await;
            }
        }
    }

    async fn on_notification(&mut self, method: &str, params: &Value) -> Option<TurnOutcome> {
        match map(method, params) {
            Seen::Items(items) => {
                let answered = items.iter().any(|(_, t, _)| *t == "function_call_output");
                let events = items
                    .into_iter()
                    .map(|(id, item_type, fields)| self.live.item_done(&id, item_type, fields))
                    .collect();
                self.live.journal.record(events, Vec::new(), DELIVERED).await;
                if answered {
                    self.live.answered_in_terminal(&self.sessions, &self.bridge.session).await;
                }
            }
            Seen::Delta { id, delta } if !delta.is_empty() => {
                let _ =
                    self.sessions.emit(&self.bridge.session, vec![protocol::text_delta(&delta, &id)], Vec::new()).await;
            }
            Seen::Usage { input_tokens, output_tokens } => {
                let total = TokenUsage { input_tokens, output_tokens };
                let before = *self.usage_before.get_or_insert(TokenUsage {
                    input_tokens: total.input_tokens.saturating_sub(self.usage.input_tokens),
                    output_tokens: total.output_tokens.saturating_sub(self.usage.output_tokens),
                });
                let now = TokenUsage {
                    input_tokens: total.input_tokens.saturating_sub(before.input_tokens),
                    output_tokens: total.output_tokens.saturating_sub(before.output_tokens),
                };
                let added = TokenUsage {
                    input_tokens: now.input_tokens.saturating_sub(self.usage.input_tokens),
                    output_tokens: now.output_tokens.saturating_sub(self.usage.output_tokens),
                };
                self.live.gate.add_usage(added);
                self.usage = now;
            }
            Seen::Started(turn) => {
                self.turn.get_or_insert(turn);
            }
            Seen::Ended { turn, status, error } if self.turn.as_ref().is_none_or(|t| *t == turn) => {
                if self.reread {
                    // Items of the turn from before this connection listened.
                    let _ = self.reread().await;
                }
                return Some(match status.as_str() {
                    "completed" => self.completed(),
                    "interrupted" => TurnOutcome::Interrupted,
                    _ => failed("native_api_error", error.unwrap_or_else(|| format!("the codex turn ended {status}"))),
                });
            }
            Seen::Resolved(request) => {
                // Answered in the TUI while the question was open here too.
                if let Some(eid) = self.asked.remove(&request.to_string()) {
                    let content = Some(json!({"reason": "answered_in_terminal"}));
                    let input = Input::Approval { elicitation_id: eid, action: ApprovalAction::Cancel, content };
                    let _ = self.sessions.post(&self.bridge.session, input).await;
                }
            }
            _ => {}
        }
        None
    }

    /// One of codex's approval requests: a question anyone can answer; the answer goes back to codex.
    fn on_request(&mut self, id: Value, method: String, params: Value) {
        let tool = match method.as_str() {
            "item/commandExecution/requestApproval" | "execCommandApproval" => "shell",
            "item/fileChange/requestApproval" | "applyPatchApproval" => "apply_patch",
            "item/permissions/requestApproval" => "permissions",
            _ => {
                // Not something a human here can answer (yet): codex gets a refusal, never silence.
                tracing::info!(session = %self.bridge.session, method, "declining a codex request omnigent does not handle");
                self.rpc.respond(&id, decline(&method));
                return;
            }
        };
        // Stable across a reconnect: the request's JSON-RPC id changes, the item does not.
        let key = format!("{}:{}:{}", self.thread, params["itemId"].as_str().unwrap_or_default(), params["approvalId"]);
        let eid = format!("elicit_codex_{}", &crate::ids::stable_hex(&key)[..24]);
        self.asked.insert(id.to_string(), eid.clone());
        let what = params["command"].as_str().or(params["reason"].as_str()).unwrap_or(tool).to_string();
        let message = format!("Codex wants to run **{}**", crate::ids::truncate(&what, 200));
        let live = self.live.clone();
        let rpc = self.rpc.clone();
        let call_id = params["itemId"].as_str().map(str::to_string);
        tokio::spawn(async move {
            live.consents.lock().unwrap().push(eid.clone());
            let action = live
                .gate
                .consent(
                    &live.journal,
                    &eid,
                    CONSENT_ASKER,
                    message,
                    tool,
                    call_id.as_deref(),
                    &params,
                    CONSENT_TIMEOUT_S,
                )
                .await;
            live.consents.lock().unwrap().retain(|e| *e != eid);
            let answer = match action {
                ApprovalAction::Accept => accept(&method),
                _ => decline(&method),
            };
            rpc.respond(&id, answer);
        });
    }

    /// Messages that arrived during the turn: `turn/steer`; if the turn is over meanwhile, they wait for the next.
    async fn steer(&mut self, shared: &crate::session::TurnShared) {
        let Some(turn) = self.turn.clone() else { return };
        let messages: Vec<String> = shared.steering.lock().unwrap().drain(..).collect();
        for (i, text) in messages.iter().enumerate() {
            let params =
                json!({"threadId": self.thread, "expectedTurnId": turn, "input": [{"type": "text", "text": text}]});
            if let Err(e) = self.rpc.request("turn/steer", params).await {
                tracing::info!(session = %self.bridge.session, error = %e, "codex did not take a steering message; it starts the next turn");
                shared.steering.lock().unwrap().extend(messages[i..].iter().cloned());
                return;
            }
        }
    }
}

/// The approval answer for "yes" in the shape each request method wants.
fn accept(method: &str) -> Value {
    match method {
        "execCommandApproval" | "applyPatchApproval" => json!({"decision": "approved"}),
        "item/permissions/requestApproval" => json!({"permissions": {}, "scope": "turn"}),
        _ => json!({"decision": "accept"}),
    }
}

fn decline(method: &str) -> Value {
    match method {
        "execCommandApproval" | "applyPatchApproval" => json!({"decision": "denied"}),
        "item/permissions/requestApproval" => json!({"permissions": {}, "scope": "turn"}),
        "mcpServer/elicitation/request" => json!({"action": "decline"}),
        _ => json!({"decision": "decline"}),
    }
}
