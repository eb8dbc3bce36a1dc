//! Running a turn: the host side of the harness world. The harness (a WASM component) drives the loop; every
//! model call, tool call and result it makes through its imports becomes events in the session's log, written
//! through the session's actor (the only writer).
//!
//! Policies gate the turn at each phase (`gate`): the user's request before the harness starts, each model call
//! and its response, each tool call and its result. An `ask` pauses the session until a human answers.
//!
//! Durable turns: each host call's result (history, model completion, tool result, policy verdict, approval) is
//! journaled in the same transaction as the events it produced. A turn cut by a restart is run again from the
//! start with the same harness and replays from the journal — the harness gets the recorded results, nothing is
//! re-executed or re-emitted — until it catches up, then continues live. A harness is deterministic given its
//! import results (it has no clock, randomness or I/O of its own), so the replay retraces the original steps; if
//! it ever asks for something else, the turn fails with `replay_diverged` rather than guessing.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnigent_runtime::harness::{
    Error as HarnessError, LogLevel, Message, Role, ToolCall, ToolSpec, TurnInput, Usage, llm, tools as wit_tools,
};
use omnigent_runtime::{Runtime, TurnFailure, TurnHost, TurnLimits};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::config::{SessionConfig, ToolConfig};
use crate::ids::{SessionId, prefixed};
use crate::llm::{ChatRequest, LlmError, Provider};
use crate::model::{Item, SessionRecord, now_us, secs};
use crate::policy::{Loaded, Outcome, PolicyEnv, PolicyMap, StateChange};
use crate::session::{ApprovalAction, Input, Sessions, Waiter};
use crate::store::{JournalEntry, Page};

/// Largest `.wasm` harness file accepted.
const MAX_COMPONENT_BYTES: u64 = 64 << 20;
/// Text deltas are coalesced into one event per this period.
const DELTA_FLUSH: Duration = Duration::from_millis(25);
const DEFAULT_MAX_STEPS: u32 = 25;
/// Event types a harness may emit itself (besides `harness.<name>`).
const HARNESS_EVENTS: [&str; 3] =
    ["response.reasoning.started", "response.reasoning_text.delta", "response.reasoning_summary_text.delta"];
const MAX_EMIT_BYTES: usize = 64 * 1024;

/// What every turn needs from the server.
#[derive(Clone)]
pub struct TurnEnv {
    pub runtime: Arc<Runtime>,
    pub http: reqwest::Client,
    /// Bounds concurrently running harness instances below the instance pool's size.
    pub slots: Arc<tokio::sync::Semaphore>,
    pub policies: Arc<PolicyEnv>,
}

impl TurnEnv {
    /// `server_policies`: the server-wide default policies, judged after each session's own and its config's.
    pub fn new(cache_dir: Option<PathBuf>, server_policies: PolicyMap) -> anyhow::Result<TurnEnv> {
        let runtime = Runtime::new(cache_dir)?;
        Ok(TurnEnv {
            policies: Arc::new(PolicyEnv::new(runtime.clone(), server_policies)),
            runtime,
            http: crate::http_client().connect_timeout(Duration::from_secs(30)).build()?,
            slots: Arc::new(tokio::sync::Semaphore::new(omnigent_runtime::POOL_INSTANCES as usize / 2)),
        })
    }
}

/// How a turn ended, as the actor records it.
pub enum TurnOutcome {
    Completed { usage: Usage, model: String, cost_usd: f64 },
    Interrupted,
    Failed { code: String, message: String },
}

/// State the actor shares with a running turn.
#[derive(Clone, Default)]
pub struct TurnShared {
    pub cancel: CancellationToken,
    /// Messages that arrived while the turn ran and the harness has not taken yet.
    pub steering: Arc<Mutex<VecDeque<String>>>,
}

/// Runs a turn to its end and reports the outcome to the session's actor. `record` is the session as the actor
/// knew it when the turn started; `resume`: the turn was cut by a restart and replays its journal first.
pub async fn run(
    sessions: Sessions,
    record: SessionRecord,
    response_id: String,
    config: SessionConfig,
    shared: TurnShared,
    resume: bool,
) {
    let id = record.id.clone();
    let outcome = run_inner(&sessions, &record, &response_id, config, &shared, resume).await;
    let outcome = if shared.cancel.is_cancelled() && !matches!(outcome, TurnOutcome::Completed { .. }) {
        TurnOutcome::Interrupted
    } else {
        outcome
    };
    if let Err(e) = sessions.end_turn(&id, &response_id, outcome).await {
        tracing::warn!(session = %id, error = %e, "could not record the end of a turn");
    }
}

async fn run_inner(
    sessions: &Sessions,
    record: &SessionRecord,
    response_id: &str,
    config: SessionConfig,
    shared: &TurnShared,
    resume: bool,
) -> TurnOutcome {
    let id = &record.id;
    let env = sessions.turn_env().clone();
    let failed = |code: &str, message: String| TurnOutcome::Failed { code: code.into(), message };
    let component = match load_harness(&env, &config).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let provider = match Provider::from_config(&config, env.http.clone()) {
        Ok(p) => p,
        Err(e) => return failed(e.code(), e.to_string()),
    };
    let Ok(_slot) = env.slots.clone().acquire_owned().await else {
        return failed("shutting_down", "the server is shutting down".into());
    };
    let limits = TurnLimits {
        memory_bytes: config
            .executor
            .memory_mb
            .map(|mb| (mb as usize) << 20)
            .unwrap_or(TurnLimits::default().memory_bytes),
        deadline: config.executor.turn_timeout_s.map(Duration::from_secs).unwrap_or(TurnLimits::default().deadline),
    };
    let model = config.executor.model.clone().unwrap_or_else(|| "scripted".into());
    // Without os_env.cwd, tools run where the server runs (a background server inherits its starter's directory).
    let cwd = config
        .os_env
        .as_ref()
        .and_then(|o| o.cwd.clone())
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(std::env::temp_dir);
    let max_steps = config.executor.max_steps.unwrap_or(DEFAULT_MAX_STEPS);
    let session_policies = PolicyMap::of_session(&record.policy.policies);
    let chain =
        match env.policies.chain(&session_policies, config.policies.as_ref().unwrap_or(&PolicyMap::default())).await {
            Ok(c) => c,
            Err(e) => return failed("policy_invalid", e),
        };
    // A new turn starts with an empty journal (the commit that started it cleared any leftover); a resumed one
    // replays what it recorded.
    let (replay, next) = if resume {
        let entries = match sessions.store().journal(id).await {
            Ok(e) => e,
            Err(e) => return failed("journal_unavailable", e.to_string()),
        };
        let next = entries.last().map(|e| e.idx + 1).unwrap_or(0);
        let replay: VecDeque<Value> =
            entries.into_iter().filter(|e| e.response_id == response_id).map(|e| e.entry).collect();
        tracing::info!(session = %id, entries = replay.len(), "replaying the turn's journal");
        (replay, next)
    } else {
        (VecDeque::new(), 0)
    };
    let host = Arc::new(Host {
        sessions: sessions.clone(),
        id: id.clone(),
        response_id: response_id.to_string(),
        config,
        provider,
        model: model.clone(),
        cwd,
        shared: shared.clone(),
        client_calls: Mutex::default(),
        children: Mutex::default(),
        chain,
        journal: Mutex::new(Journal { replay, next, deferred: Vec::new(), deferred_events: Vec::new() }),
        diverged: Mutex::default(),
        turn_usage: Mutex::new((0, 0)),
        waited: Mutex::default(),
        view: Mutex::new(PolicyView::of(record)),
        history: Mutex::default(),
    });
    let outcome = drive(&host, component, TurnInput { max_steps }, limits, model).await;
    // Verdicts that waited for a commit (a denied request, the response's verdict) are written before the end.
    host.flush_deferred(Vec::new()).await;
    outcome
}

/// The turn proper: the request's verdict, the harness run, the response's verdict.
async fn drive(
    host: &Arc<Host>,
    component: Arc<omnigent_runtime::HarnessComponent>,
    input: TurnInput,
    limits: TurnLimits,
    model: String,
) -> TurnOutcome {
    let failed = |code: &str, message: String| TurnOutcome::Failed { code: code.into(), message };
    let shared = &host.shared;
    // The user's request is judged before the harness sees it.
    if host.chain.iter().any(|p| p.decl.selects_phase("request")) {
        // A replay has the verdict in its journal; a live turn reads the history the harness is about to get.
        let text = if host.replaying() { String::new() } else { last_user_text(&host.read_history().await) };
        if let Err(reason) =
            host.gate("request", None, json!({"user_content": text, "attachments": []}), None, None).await
        {
            return failed("policy_denied", reason);
        }
    }
    let run = component.run_turn(host.clone(), input, limits);
    let result = tokio::select! {
        r = run => r,
        _ = shared.cancel.cancelled() => return TurnOutcome::Interrupted,
    };
    if let Some(why) = host.diverged.lock().unwrap().clone() {
        return failed("replay_diverged", why);
    }
    match result {
        // The answer's text is already in the log (the harness's model calls recorded it).
        Ok(out) => {
            if host.chain.iter().any(|p| p.decl.selects_phase("response")) {
                // The answer was streamed already: a deny here is reported, not undone.
                let _ = host.gate("response", None, json!({"text": out.text}), None, None).await;
            }
            // What the host counted, not what the harness reports: a harness cannot talk its spend down.
            let (input_tokens, output_tokens) = *host.turn_usage.lock().unwrap();
            if (input_tokens, output_tokens) != (out.usage.input_tokens, out.usage.output_tokens) {
                tracing::debug!(session = %host.id, reported = ?out.usage, input_tokens, output_tokens, "the harness reported other usage than its model calls");
            }
            let cost_usd = host.config.executor.cost_usd(input_tokens, output_tokens);
            TurnOutcome::Completed { usage: Usage { input_tokens, output_tokens }, model, cost_usd }
        }
        Err(TurnFailure::Harness(e)) if e.code == "cancelled" => TurnOutcome::Interrupted,
        Err(e) => failed(e.code(), e.to_string()),
    }
}

fn last_user_text(messages: &[Message]) -> String {
    messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.clone()).unwrap_or_default()
}

/// Adds a finished wait for a human to the turn's total when dropped (however the wait ended).
struct WaitEnds<'a>(&'a Mutex<(Duration, Option<std::time::Instant>)>);

impl Drop for WaitEnds<'_> {
    fn drop(&mut self) {
        let mut w = self.0.lock().unwrap();
        if let Some(since) = w.1.take() {
            w.0 += since.elapsed();
        }
    }
}

/// The turn's journal: entries still to replay, and the index of the next new one.
struct Journal {
    replay: VecDeque<Value>,
    next: i64,
    /// Entries (and their events) waiting for the next commit.
    deferred: Vec<JournalEntry>,
    deferred_events: Vec<(String, Value)>,
}

async fn load_harness(
    env: &TurnEnv,
    config: &SessionConfig,
) -> Result<Arc<omnigent_runtime::HarnessComponent>, TurnOutcome> {
    let failed = |code: &str, message: String| TurnOutcome::Failed { code: code.into(), message };
    let harness = config.executor.harness.clone();
    let bytes: Vec<u8> = match harness.as_str() {
        "agent" => {
            if let Some(loaded) = env.runtime.agent() {
                return Ok(loaded);
            }
            let runtime = env.runtime.clone();
            return tokio::task::spawn_blocking(move || runtime.load_agent())
                .await
                .map_err(|e| failed("harness_invalid", format!("loading the harness panicked: {e}")))?
                .map_err(|e| failed("harness_invalid", format!("the builtin agent harness: {e}")));
        }
        path if path.ends_with(".wasm") => {
            let meta = tokio::fs::metadata(path)
                .await
                .map_err(|e| failed("harness_not_found", format!("cannot read harness {path}: {e}")))?;
            if meta.len() > MAX_COMPONENT_BYTES {
                return Err(failed(
                    "harness_invalid",
                    format!("harness {path} is larger than {MAX_COMPONENT_BYTES} bytes"),
                ));
            }
            tokio::fs::read(path)
                .await
                .map_err(|e| failed("harness_not_found", format!("cannot read harness {path}: {e}")))?
        }
        other => {
            return Err(failed(
                "harness_not_found",
                format!("harness '{other}' is not available (builtin: agent, or a .wasm path)"),
            ));
        }
    };
    let runtime = env.runtime.clone();
    // Compiling is CPU work (100+ ms the first time): keep it off the async workers.
    tokio::task::spawn_blocking(move || runtime.load_harness(&bytes))
        .await
        .map_err(|e| failed("harness_invalid", format!("loading the harness panicked: {e}")))?
        .map_err(|e| failed("harness_invalid", format!("harness {harness}: {e}")))
}

/// A retry announced by the provider, with the text its failed attempt had streamed.
struct Retry {
    stale_text: String,
    event: Value,
}

/// The host side of one turn.
struct Host {
    sessions: Sessions,
    id: SessionId,
    response_id: String,
    config: SessionConfig,
    provider: Provider,
    model: String,
    cwd: PathBuf,
    shared: TurnShared,
    /// Client-side tool calls waiting for the client's `function_call_output`.
    client_calls: Mutex<HashMap<String, (String, oneshot::Receiver<String>)>>,
    /// Sub-agent calls: their child sessions start as soon as the model asks (so several run in parallel) and
    /// `call_tool` collects each result once.
    children: Mutex<HashMap<String, oneshot::Receiver<Result<String, String>>>>,
    /// The session's policies: its own, its config's, the server's.
    chain: Vec<Loaded>,
    journal: Mutex<Journal>,
    /// Set when a replay met a host call its journal does not have in that place.
    diverged: Mutex<Option<String>>,
    /// Tokens of this turn's model calls so far (input, output), for the policies' view of spend.
    turn_usage: Mutex<(u64, u64)>,
    /// Time spent waiting for humans (finished waits, and when the current one began).
    waited: Mutex<(Duration, Option<std::time::Instant>)>,
    /// What the policies see of the session: read once at the start, plus this turn's own writes.
    view: Mutex<PolicyView>,
    /// The history read for the request's verdict, kept for the harness's `history` call (read once, not twice).
    history: Mutex<Option<Vec<Message>>>,
}

/// The session as its policies see it during a turn.
struct PolicyView {
    labels: serde_json::Map<String, Value>,
    state: serde_json::Map<String, Value>,
    /// Spent before this turn.
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
}

impl PolicyView {
    fn of(record: &crate::model::SessionRecord) -> PolicyView {
        let usage = record.usage_by_model.values();
        PolicyView {
            labels: record.labels.clone(),
            state: record.policy.state.clone(),
            input_tokens: usage.clone().map(|u| u["input_tokens"].as_u64().unwrap_or(0)).sum(),
            output_tokens: usage.clone().map(|u| u["output_tokens"].as_u64().unwrap_or(0)).sum(),
            cost_usd: usage.map(|u| u["cost_usd"].as_f64().unwrap_or(0.0)).sum(),
        }
    }
}

impl Host {
    async fn emit(&self, events: Vec<(&'static str, Value)>) {
        let events = events.into_iter().map(|(t, v)| (t.to_string(), v)).collect();
        if let Err(e) = self.sessions.emit(&self.id, events, Vec::new()).await {
            tracing::warn!(session = %self.id, error = %e, "could not record turn events");
        }
    }

    /// Commits events with the journal entry of the host call that produced them (and everything deferred).
    async fn record(&self, events: Vec<(String, Value)>, waiters: Vec<Waiter>, entry: Value) {
        self.defer(events, entry);
        self.flush_deferred(waiters).await;
    }

    /// Queues a journal entry (and its events) to ride along with the next commit. Safe for results whose only
    /// consequences are later host calls: until something with an effect is committed, a replay may as well redo
    /// them. Saves a commit per policy verdict and per history read.
    fn defer(&self, events: Vec<(String, Value)>, entry: Value) {
        let mut j = self.journal.lock().unwrap();
        let idx = j.next;
        j.next += 1;
        j.deferred.push(JournalEntry { idx, response_id: self.response_id.clone(), entry });
        j.deferred_events.extend(events);
    }

    /// Commits whatever is deferred.
    async fn flush_deferred(&self, waiters: Vec<Waiter>) {
        let (entries, events) = {
            let mut j = self.journal.lock().unwrap();
            (std::mem::take(&mut j.deferred), std::mem::take(&mut j.deferred_events))
        };
        if entries.is_empty() && events.is_empty() && waiters.is_empty() {
            return;
        }
        if let Err(e) = self.sessions.record(&self.id, events, waiters, entries).await {
            tracing::warn!(session = %self.id, error = %e, "could not record a host call of the turn");
        }
    }

    /// The next journal entry, if the replay is at one of this kind.
    fn replay_take(&self, kind: &str) -> Option<Value> {
        let mut j = self.journal.lock().unwrap();
        if j.replay.front().is_some_and(|e| e["kind"] == kind) { j.replay.pop_front() } else { None }
    }

    fn replaying(&self) -> bool {
        !self.journal.lock().unwrap().replay.is_empty()
    }

    /// Before a live call: a replay that has entries left but not for this call has diverged.
    fn check_live(&self, what: &str) -> Result<(), String> {
        let front = self.journal.lock().unwrap().replay.front().map(|e| e["kind"].to_string());
        match front {
            None => Ok(()),
            Some(kind) => {
                let why = format!(
                    "replaying the turn after a restart, the harness asked for {what} where the journal has {kind}"
                );
                tracing::error!(session = %self.id, "{why}");
                *self.diverged.lock().unwrap() = Some(why.clone());
                Err(why)
            }
        }
    }

    fn tool_config(&self, name: &str) -> Option<&ToolConfig> {
        self.config.tools.get(name)
    }

    fn item(&self, id: &str, item_type: &str, status: &str, data: Value) -> Value {
        let mut item = json!({"id": id, "type": item_type, "status": status, "response_id": self.response_id,
            "created_at": secs(now_us()), "object": "conversation.item"});
        if let Value::Object(fields) = data {
            for (k, v) in fields {
                item[k] = v;
            }
        }
        item
    }

    /// How the session looks to its policies right now.
    fn situation(&self) -> crate::policy::Situation {
        let view = self.view.lock().unwrap();
        let (turn_in, turn_out) = *self.turn_usage.lock().unwrap();
        let (input, output) = (view.input_tokens + turn_in, view.output_tokens + turn_out);
        crate::policy::Situation {
            session_id: self.id.to_string(),
            model: self.model.clone(),
            harness: self.config.executor.harness.clone(),
            usage: omnigent_runtime::policy::Usage {
                input_tokens: input,
                output_tokens: output,
                total_tokens: input + output,
                total_cost_usd: view.cost_usd + self.config.executor.cost_usd(turn_in, turn_out),
            },
            labels: view.labels.clone(),
            state: view.state.clone(),
        }
    }

    /// Events applying state changes and labels written by policies.
    fn policy_writes(&self, changes: Vec<StateChange>, labels: serde_json::Map<String, Value>) -> Vec<(String, Value)> {
        {
            // Later verdicts of this turn see the writes at once, committed or not.
            let mut view = self.view.lock().unwrap();
            crate::policy::apply_state(&mut view.state, &changes);
            crate::model::merge_labels(&mut view.labels, &labels);
        }
        let mut events = Vec::new();
        if !changes.is_empty() {
            events.push((
                "session.policy_state".to_string(),
                json!({"conversation_id": self.id.as_str(), "updates": changes}),
            ));
        }
        if !labels.is_empty() {
            events.push((
                "session.labels_set".to_string(),
                json!({"conversation_id": self.id.as_str(), "set_labels": labels}),
            ));
        }
        events
    }

    fn denied_event(&self, phase: &str, policy: &str, reason: &str, tool: Option<&str>) -> (String, Value) {
        (
            "response.policy_denied".to_string(),
            json!({"conversation_id": self.id.as_str(), "reason": reason, "phase": phase,
            "policy_name": policy, "tool_name": tool, "response_id": self.response_id}),
        )
    }

    /// Runs the policy chain on one phase of the turn. Ok carries a rewritten payload (if a policy rewrote it);
    /// Err a denial reason the model (or user) can read. An ask pauses the session until a human answers or the
    /// ask times out. Every verdict is journaled, so a replayed turn gets the same answer without asking again.
    async fn gate(
        &self,
        phase: &str,
        target: Option<&str>,
        data: Value,
        request_data: Option<&Value>,
        call_id: Option<&str>,
    ) -> Result<Option<Value>, String> {
        if !self.chain.iter().any(|p| p.decl.selects(phase, target)) {
            return Ok(None);
        }
        if let Some(entry) = self.replay_take("gate") {
            return verdict_from_json(&entry);
        }
        let (ask, waiting) = match self.replay_take("ask") {
            Some(ask) => {
                // Answered before the restart: the verdict follows it. Otherwise the session was paused on it.
                if let Some(entry) = self.replay_take("gate") {
                    return verdict_from_json(&entry);
                }
                (ask, None)
            }
            None => {
                self.check_live("a policy verdict")?;
                let situation = self.situation();
                match crate::policy::evaluate(&self.chain, phase, target, data.clone(), request_data, &situation).await
                {
                    Outcome::Allow { data, changes, labels } => {
                        let verdict = Ok(data);
                        self.defer(self.policy_writes(changes, labels), verdict_json(&verdict));
                        return verdict;
                    }
                    Outcome::Deny { policy, reason, changes, labels } => {
                        let reason = format!("denied by policy '{policy}': {reason}");
                        let mut events = self.policy_writes(changes, labels);
                        events.push(self.denied_event(phase, &policy, &reason, target));
                        let verdict = Err(reason);
                        self.defer(events, verdict_json(&verdict));
                        return verdict;
                    }
                    Outcome::Ask {
                        policies,
                        message,
                        data: rewritten,
                        changes,
                        labels,
                        held_changes,
                        held_labels,
                        timeout_s,
                    } => {
                        let elicitation_id = format!("elicit_{}", crate::ids::random_hex());
                        let expires_at = secs(now_us()) + timeout_s as i64;
                        let request = json!({"elicitation_id": elicitation_id, "method": "elicitation/create", "params": {
                            "mode": "form", "message": message, "requestedSchema": {"type": "object", "properties": {}},
                            "phase": phase, "policy_name": policies[0], "policy_names": policies,
                            "content_preview": crate::ids::truncate(&data.to_string(), 2000), "tool_name": target, "call_id": call_id,
                            "target_session_id": self.id.as_str(), "response_id": self.response_id, "expires_at": expires_at}});
                        let mut events = self.policy_writes(changes, labels);
                        events.push(("response.elicitation_request".to_string(), request.clone()));
                        events.push((
                            "session.status".to_string(),
                            json!({"conversation_id": self.id.as_str(), "status": "paused"}),
                        ));
                        let ask = json!({"kind": "ask", "elicitation_id": elicitation_id, "request": request, "data": rewritten,
                            "held_changes": held_changes, "held_labels": held_labels, "policies": policies, "expires_at": expires_at, "phase": phase});
                        let (tx, rx) = oneshot::channel();
                        tracing::info!(session = %self.id, elicitation = %elicitation_id, phase, "a policy asks a human; the session is paused");
                        self.record(events, vec![Waiter::Approval(elicitation_id, tx)], ask.clone()).await;
                        (ask, Some(rx))
                    }
                }
            }
        };
        let action = self.answer(&ask, waiting).await;
        let policies = ask["policies"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        if action == ApprovalAction::Accept {
            let changes: Vec<StateChange> = serde_json::from_value(ask["held_changes"].clone()).unwrap_or_default();
            let labels = ask["held_labels"].as_object().cloned().unwrap_or_default();
            let verdict = Ok(ask.get("data").cloned().filter(|d| !d.is_null()));
            self.record(self.policy_writes(changes, labels), Vec::new(), verdict_json(&verdict)).await;
            return verdict;
        }
        let reason = match action {
            ApprovalAction::Decline => format!("a human declined this {phase} (asked by policy {policies})"),
            _ => format!("this {phase} was not approved: the question of policy {policies} was cancelled or timed out"),
        };
        let events = vec![self.denied_event(phase, &policies, &reason, target)];
        let verdict = Err(reason);
        self.record(events, Vec::new(), verdict_json(&verdict)).await;
        verdict
    }

    /// Waits for a human's answer to an ask (or its timeout). `waiting` is None when the ask comes from the
    /// journal of a resumed turn: then the answer may be in the log already, or the request is sent again.
    async fn answer(&self, ask: &Value, waiting: Option<oneshot::Receiver<ApprovalAction>>) -> ApprovalAction {
        let eid = ask["elicitation_id"].as_str().unwrap_or_default().to_string();
        let rx = match waiting {
            Some(rx) => rx,
            None => {
                // The request is still pending in the snapshot and shown to every new subscriber (`stream`); the
                // actor delivers an answer already in the log at once (and a cancel for a question it does not know).
                let (tx, rx) = oneshot::channel();
                tracing::info!(session = %self.id, elicitation = %eid, "the resumed turn waits for the pending approval");
                if let Err(e) = self.sessions.emit(&self.id, Vec::new(), vec![Waiter::Approval(eid.clone(), tx)]).await
                {
                    tracing::warn!(session = %self.id, error = %e, "could not wait for an approval");
                    return ApprovalAction::Cancel;
                }
                rx
            }
        };
        let expires_at = ask["expires_at"].as_i64().unwrap_or(0);
        let left = Duration::from_secs((expires_at - secs(now_us())).max(0) as u64);
        self.waited.lock().unwrap().1 = Some(std::time::Instant::now());
        let _waiting = WaitEnds(&self.waited);
        tokio::select! {
            answer = rx => answer.unwrap_or(ApprovalAction::Cancel),
            _ = tokio::time::sleep(left) => {
                tracing::info!(session = %self.id, elicitation = %eid, "no answer before the ask timed out; denying");
                // Recorded like a human's cancel, so the log says what happened.
                let timeout = Input::Approval { elicitation_id: eid, action: ApprovalAction::Cancel, content: Some(json!({"reason": "timeout"})) };
                let _ = self.sessions.post(&self.id, timeout).await;
                ApprovalAction::Cancel
            }
            _ = self.shared.cancel.cancelled() => ApprovalAction::Cancel,
        }
    }

    /// Records a tool's result: the transcript item, and the journal entry a replay returns.
    async fn finish_tool(
        &self,
        call_id: &str,
        result: wit_tools::ToolResult,
        mut events: Vec<(String, Value)>,
    ) -> wit_tools::ToolResult {
        let item = self.item(
            &prefixed("fco"),
            "function_call_output",
            "completed",
            json!({"call_id": call_id, "output": result.output}),
        );
        events.push(("response.output_item.done".to_string(), json!({"item": item})));
        self.record(events, Vec::new(), json!({"kind": "tool", "output": result.output, "is_error": result.is_error}))
            .await;
        result
    }

    /// The newest transcript item of `item_type` for a tool call: for a resumed turn, the call's `function_call`
    /// item, or the client's `function_call_output` if it came while the server was down or before the replay got
    /// here.
    async fn item_for_call(&self, call_id: &str, item_type: &str) -> Option<Item> {
        let page = Page { limit: 200, after: None, before: None, descending: true };
        let (items, _) = self.sessions.store().list_items(&self.id, &page).await.ok()?;
        items.into_iter().find(|i| i.item_type == item_type && i.data["call_id"] == call_id)
    }

    /// The conversation so far, read from the transcript once per turn.
    async fn read_history(&self) -> Vec<Message> {
        if let Some(read) = self.history.lock().unwrap().clone() {
            return read;
        }
        let messages = history(&self.sessions, &self.id).await;
        *self.history.lock().unwrap() = Some(messages.clone());
        messages
    }

    fn add_usage(&self, usage: &Usage) {
        let mut u = self.turn_usage.lock().unwrap();
        u.0 += usage.input_tokens;
        u.1 += usage.output_tokens;
    }
}

#[async_trait::async_trait]
impl TurnHost for Host {
    async fn complete(&self, request: llm::Request) -> Result<llm::Completion, HarnessError> {
        let denied = |message: String| HarnessError { code: "policy_denied".into(), message };
        let last_user = last_user_text(&request.messages);
        let gate_data = json!({"model": self.model, "messages_count": request.messages.len(), "tools_count": request.tools.len(),
            "system_prompt_preview": crate::ids::truncate(self.config.system_prompt().unwrap_or_default(), 200),
            "last_user_message": crate::ids::truncate(&last_user, 2000)});
        self.gate("llm_request", None, gate_data, None, None).await.map_err(denied)?;
        let completion = match self.replay_take("complete") {
            Some(entry) => {
                let completion = completion_from_json(&entry["completion"]);
                // Children of a replayed call are followed again (their own turns resume on their own).
                for call in &completion.tool_calls {
                    if let (Some(child), Some(child_id)) = (self.child(call), entry["children"][&call.id].as_str())
                        && let Ok(child_id) = SessionId::parse(child_id)
                    {
                        let (tx, rx) = oneshot::channel();
                        self.children.lock().unwrap().insert(call.id.clone(), rx);
                        tokio::spawn(async move {
                            let _ = tx.send(child.run(child_id).await);
                        });
                    }
                }
                completion
            }
            None => {
                self.check_live("a model call")
                    .map_err(|m| HarnessError { code: "replay_diverged".into(), message: m })?;
                self.complete_live(request).await?
            }
        };
        self.add_usage(&completion.usage);
        let response_data = json!({"model": self.model, "text_preview": crate::ids::truncate(&completion.text, 2000),
            "tool_calls_count": completion.tool_calls.len(),
            "usage": {"input_tokens": completion.usage.input_tokens, "output_tokens": completion.usage.output_tokens}});
        self.gate("llm_response", None, response_data, None, None).await.map_err(denied)?;
        Ok(completion)
    }

    async fn tools(&self) -> Vec<ToolSpec> {
        self.config
            .tools
            .iter()
            .map(|(name, t)| {
                let (description, parameters) = if t.kind == "builtin" {
                    let (d, p) = crate::tools::spec(name);
                    (t.description.clone().unwrap_or_else(|| d.to_string()), p)
                } else if t.kind == "agent" {
                    (t.description.clone().unwrap_or_default(), crate::subagent::parameters())
                } else {
                    (
                        t.description.clone().unwrap_or_default(),
                        t.parameters.clone().unwrap_or(json!({"type": "object"})),
                    )
                };
                ToolSpec { name: name.clone(), description, parameters: parameters.to_string() }
            })
            .collect()
    }

    async fn call_tool(&self, call_id: String, name: String, arguments: String) -> wit_tools::ToolResult {
        let fail = |output: String| wit_tools::ToolResult { output, is_error: true };
        if self.shared.cancel.is_cancelled() {
            return fail("the turn was interrupted".into());
        }
        let args_json: Value = serde_json::from_str(&arguments).unwrap_or_else(|_| Value::String(arguments.clone()));
        let call = json!({"name": name, "arguments": args_json});
        let verdict = self.gate("tool_call", Some(&name), call.clone(), None, Some(&call_id)).await;
        if let Some(entry) = self.replay_take("tool") {
            return tool_result_from_json(&entry);
        }
        let arguments = match verdict {
            Err(reason) => return self.finish_tool(&call_id, fail(reason), Vec::new()).await,
            Ok(Some(rewritten)) => match rewritten.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => arguments,
            },
            Ok(None) => arguments,
        };
        if self.replay_take("started").is_some() {
            // A tool-result verdict may follow it, then (if the tool finished before the restart) its result.
            self.replay_take("ask");
            self.replay_take("gate");
            if let Some(entry) = self.replay_take("tool") {
                return tool_result_from_json(&entry);
            }
            let message = format!(
                "the server restarted while the tool '{name}' was running; it may or may not have finished. Check its \
                 effects before running it again."
            );
            return self.finish_tool(&call_id, fail(message), Vec::new()).await;
        }
        if let Err(why) = self.check_live("a tool call") {
            return fail(why);
        }
        let Some(tool) = self.tool_config(&name).cloned() else {
            let known: Vec<&str> = self.config.tools.keys().map(String::as_str).collect();
            let result = fail(format!(
                "no tool named '{name}'; available tools: {}",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            ));
            return self.finish_tool(&call_id, result, Vec::new()).await;
        };
        if tool.kind == "agent" {
            let waiting = self.children.lock().unwrap().remove(&call_id);
            let result = match waiting {
                Some(rx) => match rx.await {
                    Ok(Ok(output)) => wit_tools::ToolResult { output, is_error: false },
                    Ok(Err(message)) => fail(message),
                    Err(_) => fail("the sub-agent's task was abandoned".into()),
                },
                None => fail(format!(
                    "the sub-agent call {call_id} has no child session (it was not announced by the model)"
                )),
            };
            return self.finish_tool(&call_id, result, Vec::new()).await;
        }
        if tool.runtime.as_deref() == Some("client") {
            let waiting = self.client_calls.lock().unwrap().remove(&call_id);
            let item_id = match &waiting {
                Some((item_id, _)) => item_id.clone(),
                // A resumed turn: the call's item is in the transcript.
                None => {
                    self.item_for_call(&call_id, "function_call").await.map(|i| i.id).unwrap_or_else(|| prefixed("fc"))
                }
            };
            let output = match waiting {
                Some((_, rx)) => tokio::select! {
                    o = rx => o.map_err(|_| "the client tool call was abandoned".to_string()),
                    _ = self.shared.cancel.cancelled() => Err("the turn was interrupted".to_string()),
                },
                // A resumed turn: wait for the output — registered first, then looked for in the transcript, so
                // an output posted in between is found one way or the other.
                None => {
                    let (tx, rx) = oneshot::channel();
                    let _ = self.sessions.emit(&self.id, Vec::new(), vec![Waiter::Output(call_id.clone(), tx)]).await;
                    match self.item_for_call(&call_id, "function_call_output").await {
                        Some(item) => Ok(item.data["output"]
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| item.data["output"].to_string())),
                        None => tokio::select! {
                            o = rx => o.map_err(|_| "the client tool call was abandoned".to_string()),
                            _ = self.shared.cancel.cancelled() => Err("the turn was interrupted".to_string()),
                        },
                    }
                }
            };
            return match output {
                Ok(output) => {
                    // The client's function_call_output is already in the log; mark the call done.
                    let item = self.item(
                        &item_id,
                        "function_call",
                        "completed",
                        json!({"name": name, "arguments": arguments, "call_id": call_id, "model": self.model}),
                    );
                    let events = vec![("response.output_item.done".to_string(), json!({"item": item}))];
                    let result = wit_tools::ToolResult { output: output.clone(), is_error: false };
                    self.record(events, Vec::new(), json!({"kind": "tool", "output": output, "is_error": false})).await;
                    result
                }
                Err(message) => fail(message),
            };
        }
        // A builtin has effects outside the log: mark it started, so a restart mid-run does not run it twice.
        self.record(Vec::new(), Vec::new(), json!({"kind": "started", "call_id": call_id})).await;
        let mut events = Vec::new();
        let mut result = match crate::tools::run(&name, &tool, &arguments, &self.cwd).await {
            Ok(output) => wit_tools::ToolResult { output, is_error: false },
            Err(message) => {
                events.push((
                    "response.error".to_string(),
                    json!({"source": "tool", "tool_name": name, "error": {"code": "tool_error", "message": message}}),
                ));
                fail(message)
            }
        };
        let seen = json!({"result": result.output, "is_error": result.is_error});
        match self.gate("tool_result", Some(&name), seen, Some(&call), None).await {
            Err(reason) => result = fail(format!("the tool's result was withheld: {reason}")),
            Ok(Some(rewritten)) => {
                result.output = match rewritten.get("result") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => result.output,
                }
            }
            Ok(None) => {}
        }
        self.finish_tool(&call_id, result, events).await
    }

    async fn history(&self) -> Vec<Message> {
        if let Some(entry) = self.replay_take("history") {
            return entry["messages"].as_array().map(|m| m.iter().map(message_from_json).collect()).unwrap_or_default();
        }
        if self.check_live("the history").is_err() {
            return Vec::new();
        }
        let messages = self.read_history().await;
        let entry = json!({"kind": "history", "messages": messages.iter().map(message_json).collect::<Vec<_>>()});
        self.defer(Vec::new(), entry);
        messages
    }

    async fn steering(&self) -> Vec<String> {
        if self.replaying() {
            // Only what the original run took; new messages wait until the replay has caught up.
            return self
                .replay_take("steering")
                .and_then(|e| serde_json::from_value(e["messages"].clone()).ok())
                .unwrap_or_default();
        }
        let taken: Vec<String> = self.shared.steering.lock().unwrap().drain(..).collect();
        if !taken.is_empty() {
            self.record(Vec::new(), Vec::new(), json!({"kind": "steering", "messages": taken})).await;
        }
        taken
    }

    fn cancelled(&self) -> bool {
        self.shared.cancel.is_cancelled()
    }

    async fn emit(&self, event_type: String, data: String) -> Result<(), HarnessError> {
        let invalid = |message: String| HarnessError { code: "invalid_request".into(), message };
        let allowed = HARNESS_EVENTS.contains(&event_type.as_str())
            || event_type.strip_prefix("harness.").is_some_and(|n| {
                !n.is_empty() && n.len() <= 64 && n.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            });
        if !allowed {
            return Err(invalid(format!(
                "a harness may not emit '{}'; allowed: {} or harness.<name>",
                crate::ids::truncate(&event_type, 80),
                HARNESS_EVENTS.join(", ")
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
        if self.replay_take("emit").is_some() {
            return Ok(()); // published before the restart
        }
        self.check_live("an emit").map_err(|m| HarnessError { code: "replay_diverged".into(), message: m })?;
        self.record(vec![(event_type, payload)], Vec::new(), json!({"kind": "emit"})).await;
        Ok(())
    }

    async fn write_file(&self, name: String, content: Vec<u8>) -> Result<String, HarnessError> {
        if let Some(entry) = self.replay_take("file") {
            return Ok(entry["id"].as_str().unwrap_or_default().to_string());
        }
        self.check_live("a file write").map_err(|m| HarnessError { code: "replay_diverged".into(), message: m })?;
        // Storing the file is an effect: what led to it must be durable first.
        self.flush_deferred(Vec::new()).await;
        let id = crate::files::add(&self.sessions, &self.id, &name, None, &content, crate::files::Source::Harness)
            .await
            .map(|meta| meta.id)
            .map_err(|e| HarnessError { code: "file_error".into(), message: e.to_string() })?;
        self.record(Vec::new(), Vec::new(), json!({"kind": "file", "id": id})).await;
        Ok(id)
    }

    fn waited(&self) -> Duration {
        let (done, since) = *self.waited.lock().unwrap();
        done + since.map(|t| t.elapsed()).unwrap_or_default()
    }

    fn log(&self, level: LogLevel, message: String) {
        let id = &self.id;
        match level {
            LogLevel::Debug => tracing::debug!(session = %id, "harness: {message}"),
            LogLevel::Info => tracing::info!(session = %id, "harness: {message}"),
            LogLevel::Warn => tracing::warn!(session = %id, "harness: {message}"),
            LogLevel::Error => tracing::error!(session = %id, "harness: {message}"),
        }
    }
}

impl Host {
    /// A model call made now: streams deltas, records the answer and its tool calls with the journal entry.
    async fn complete_live(&self, request: llm::Request) -> Result<llm::Completion, HarnessError> {
        let req = ChatRequest {
            model: self.model.clone(),
            system: self.config.system_prompt().map(str::to_string),
            messages: request.messages,
            tools: request.tools,
            max_tokens: request.max_tokens,
        };
        let mut message_id = prefixed("msg");
        let pending = Arc::new(Mutex::new(String::new()));
        let retries: Arc<Mutex<Vec<Retry>>> = Arc::default();
        let (p, r) = (pending.clone(), retries.clone());
        let mut on_delta = move |d: &str| p.lock().unwrap().push_str(d);
        let p = pending.clone();
        let mut on_retry = move |attempt: u32, delay: Duration, e: &LlmError| {
            // Text the failed attempt streamed stays with its own message id; the retry streams under a new one.
            let stale_text = std::mem::take(&mut *p.lock().unwrap());
            let event = json!({"source": "llm", "attempt": attempt, "max_attempts": crate::llm::MAX_ATTEMPTS,
                "delay_seconds": delay.as_secs_f64(), "error": {"code": e.code(), "message": e.to_string()}});
            r.lock().unwrap().push(Retry { stale_text, event });
        };
        let call = self.provider.complete(&req, &mut on_delta, &mut on_retry);
        tokio::pin!(call);
        let mut tick = tokio::time::interval(DELTA_FLUSH);
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tick.tick() => self.flush(&pending, &retries, &mut message_id).await,
            }
        };
        self.flush(&pending, &retries, &mut message_id).await;
        let completion = match result {
            Ok(c) => c,
            Err(e) => {
                self.emit(vec![(
                    "response.error",
                    json!({"source": "llm", "error": {"code": e.code(), "message": e.to_string()}}),
                )])
                .await;
                return Err(HarnessError { code: e.code().into(), message: e.to_string() });
            }
        };
        let mut events = Vec::new();
        if !completion.text.is_empty() {
            let content = json!([{"type": "output_text", "text": completion.text, "annotations": []}]);
            let item = self.item(
                &message_id,
                "message",
                "completed",
                json!({"role": "assistant", "content": content, "model": self.model}),
            );
            events.push(("response.output_item.done".to_string(), json!({"item": item})));
        }
        let mut waiters = Vec::new();
        for call in &completion.tool_calls {
            let client = self.tool_config(&call.name).is_some_and(|t| t.runtime.as_deref() == Some("client"));
            let item_id = prefixed("fc");
            let status = if client { "action_required" } else { "completed" };
            let item = self.item(
                &item_id,
                "function_call",
                status,
                json!({"name": call.name, "arguments": call.arguments, "call_id": call.id, "model": self.model}),
            );
            events.push(("response.output_item.done".to_string(), json!({"item": item})));
            if client {
                let (tx, rx) = oneshot::channel();
                waiters.push(Waiter::Output(call.id.clone(), tx));
                self.client_calls.lock().unwrap().insert(call.id.clone(), (item_id, rx));
            }
        }
        // Sub-agent calls get their child sessions now, so the journal can name them (a replayed parent then
        // waits for the same children rather than losing them); they start after the calls are in the log.
        let mut started = Vec::new();
        let mut child_ids = serde_json::Map::new();
        for call in &completion.tool_calls {
            let Some(child) = self.child(call) else { continue };
            let (tx, rx) = oneshot::channel();
            self.children.lock().unwrap().insert(call.id.clone(), rx);
            match child.create().await {
                Ok(child_id) => {
                    child_ids.insert(call.id.clone(), child_id.as_str().into());
                    started.push((child, child_id, tx));
                }
                Err(message) => {
                    let _ = tx.send(Err(message));
                }
            }
        }
        let entry = json!({"kind": "complete", "completion": completion_json(&completion), "children": child_ids});
        self.record(events, waiters, entry).await;
        // Several run in parallel.
        for (child, child_id, tx) in started {
            tokio::spawn(async move {
                let _ = tx.send(child.run(child_id).await);
            });
        }
        Ok(completion)
    }

    /// The sub-agent a tool call delegates to, if it is one.
    fn child(&self, call: &ToolCall) -> Option<crate::subagent::Child> {
        let tool = self.tool_config(&call.name).filter(|t| t.kind == "agent")?;
        Some(crate::subagent::Child {
            sessions: self.sessions.clone(),
            parent: self.id.clone(),
            config: self.config.sub_agent(&call.name, tool),
            title: format!("{}:{}", self.config.name, call.name),
            arguments: call.arguments.clone(),
            cancel: self.shared.cancel.clone(),
        })
    }

    /// Publishes buffered text deltas and retries. Each retry closes the message id its attempt streamed under.
    async fn flush(&self, pending: &Mutex<String>, retries: &Mutex<Vec<Retry>>, message_id: &mut String) {
        let mut events = Vec::new();
        for retry in retries.lock().unwrap().drain(..) {
            if !retry.stale_text.is_empty() {
                events
                    .push(("response.output_text.delta", json!({"delta": retry.stale_text, "message_id": message_id})));
            }
            events.push(("response.retry", retry.event));
            *message_id = prefixed("msg");
        }
        let text = std::mem::take(&mut *pending.lock().unwrap());
        if !text.is_empty() {
            events.push(("response.output_text.delta", json!({"delta": text, "message_id": message_id})));
        }
        if !events.is_empty() {
            self.emit(events).await;
        }
    }
}

// Journal encodings of the harness world's values.

fn role_name(role: Role) -> &'static str {
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn calls_json(calls: &[ToolCall]) -> Value {
    calls.iter().map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments})).collect()
}

fn calls_from_json(v: &Value) -> Vec<ToolCall> {
    v.as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| ToolCall {
                    id: c["id"].as_str().unwrap_or_default().into(),
                    name: c["name"].as_str().unwrap_or_default().into(),
                    arguments: c["arguments"].as_str().unwrap_or("{}").into(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn message_json(m: &Message) -> Value {
    json!({"role": role_name(m.role), "content": m.content, "tool_calls": calls_json(&m.tool_calls), "tool_call_id": m.tool_call_id})
}

fn message_from_json(v: &Value) -> Message {
    let role = match v["role"].as_str() {
        Some("system") => Role::System,
        Some("assistant") => Role::Assistant,
        Some("tool") => Role::Tool,
        _ => Role::User,
    };
    Message {
        role,
        content: v["content"].as_str().unwrap_or_default().into(),
        tool_calls: calls_from_json(&v["tool_calls"]),
        tool_call_id: v["tool_call_id"].as_str().map(str::to_string),
    }
}

/// The journal entry of a policy verdict: Ok(rewritten payload) or Err(denial reason).
fn verdict_json(verdict: &Result<Option<Value>, String>) -> Value {
    match verdict {
        Ok(data) => json!({"kind": "gate", "verdict": "allow", "data": data}),
        Err(reason) => json!({"kind": "gate", "verdict": "deny", "reason": reason}),
    }
}

/// A journaled policy verdict (see `verdict_json`).
fn verdict_from_json(entry: &Value) -> Result<Option<Value>, String> {
    match entry["verdict"].as_str() {
        Some("allow") => Ok(entry.get("data").cloned().filter(|d| !d.is_null())),
        _ => Err(entry["reason"].as_str().unwrap_or("denied by a policy").to_string()),
    }
}

fn tool_result_from_json(entry: &Value) -> wit_tools::ToolResult {
    wit_tools::ToolResult {
        output: entry["output"].as_str().unwrap_or_default().to_string(),
        is_error: entry["is_error"].as_bool().unwrap_or(true),
    }
}

fn completion_json(c: &llm::Completion) -> Value {
    json!({"text": c.text, "tool_calls": calls_json(&c.tool_calls), "stop_reason": c.stop_reason,
           "usage": {"input_tokens": c.usage.input_tokens, "output_tokens": c.usage.output_tokens}})
}

fn completion_from_json(v: &Value) -> llm::Completion {
    llm::Completion {
        text: v["text"].as_str().unwrap_or_default().into(),
        tool_calls: calls_from_json(&v["tool_calls"]),
        usage: Usage {
            input_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
        },
        stop_reason: v["stop_reason"].as_str().unwrap_or("stop").into(),
    }
}

/// The conversation so far as harness messages, from the session's items.
pub async fn history(sessions: &Sessions, id: &SessionId) -> Vec<Message> {
    let mut items: Vec<Item> = Vec::new();
    let mut page = Page { limit: 1000, after: None, before: None, descending: false };
    loop {
        match sessions.store().list_items(id, &page).await {
            Ok((batch, more)) => {
                page.after = batch.last().map(|i| i.id.clone());
                items.extend(batch);
                if !more {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(session = %id, error = %e, "reading history failed");
                break;
            }
        }
    }
    let mut messages: Vec<Message> = Vec::new();
    let text_of = |content: &Value| -> String {
        match content {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
            _ => String::new(),
        }
    };
    for item in items {
        let d = &item.data;
        match item.item_type.as_str() {
            "message" => {
                let role = if d["role"] == "assistant" { Role::Assistant } else { Role::User };
                messages.push(Message {
                    role,
                    content: text_of(&d["content"]),
                    tool_calls: vec![],
                    tool_call_id: None,
                });
            }
            "function_call" => {
                let call = ToolCall {
                    id: d["call_id"].as_str().unwrap_or_default().into(),
                    name: d["name"].as_str().unwrap_or_default().into(),
                    arguments: d["arguments"].as_str().unwrap_or("{}").into(),
                };
                // Calls belong to the assistant message of the same model response.
                match messages.last_mut() {
                    Some(last) if last.role == Role::Assistant => last.tool_calls.push(call),
                    _ => messages.push(Message {
                        role: Role::Assistant,
                        content: String::new(),
                        tool_calls: vec![call],
                        tool_call_id: None,
                    }),
                }
            }
            "function_call_output" => messages.push(Message {
                role: Role::Tool,
                content: d["output"].as_str().map(str::to_string).unwrap_or_else(|| d["output"].to_string()),
                tool_calls: vec![],
                tool_call_id: d["call_id"].as_str().map(str::to_string),
            }),
            _ => {}
        }
    }
    messages
}
