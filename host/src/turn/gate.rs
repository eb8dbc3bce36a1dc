//! The policy gate of a turn: every phase a policy may judge passes through [`Gate::check`], whatever kind of
//! turn it is (a WASM harness's today, a native bridge's next). The chain decides allow, deny or ask; an ask
//! pauses the session until a human answers (or the ask times out), and every verdict is journaled, so a turn
//! replayed after a restart gets the same answer without asking again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::journal::{Ask, Entry, Journal, Kind, Verdict};
use crate::config::Executor;
use crate::ids::SessionId;
use crate::policy::{Asked, Loaded, Outcome, Phase, Situation, StateChange};
use crate::protocol::{self, ElicitationRequest, NewEvent};
use crate::record::{SessionRecord, now_us, secs};
use crate::session::{Answer, ApprovalAction, Input, Sessions, TokenUsage, Waiter};

/// What a gate's verdict is: Ok carries a rewritten payload (if a policy rewrote it), Err a denial reason the
/// model (or user) can read.
pub type GateResult = Result<Option<Value>, String>;

/// How long an MCP server's question to a human waits for an answer (the server's tool call waits with it).
pub const SERVER_QUESTION_TIMEOUT_S: i64 = 600;

/// The policies of one turn and what they see of the session.
pub struct Gate {
    chain: Vec<Loaded>,
    sessions: Sessions,
    session: SessionId,
    response_id: String,
    /// The turn's model and harness, and the price of its tokens.
    executor: Executor,
    cancel: CancellationToken,
    /// What the policies see of the session: read once at the start, plus this turn's own writes.
    view: Mutex<View>,
    /// Time spent waiting for humans (finished waits, and when the current one began).
    waited: Mutex<(Duration, Option<Instant>)>,
}

/// The session as its policies see it during a turn.
struct View {
    labels: Map<String, Value>,
    state: Map<String, Value>,
    /// Spent before this turn.
    before: TokenUsage,
    cost_before_usd: f64,
    /// This turn's model calls so far.
    turn: TokenUsage,
}

impl Gate {
    /// `record`: the session as the turn started with it.
    pub fn new(
        chain: Vec<Loaded>,
        sessions: &Sessions,
        record: &SessionRecord,
        response_id: &str,
        executor: Executor,
        cancel: CancellationToken,
    ) -> Gate {
        let usage = record.usage_by_model.values();
        let view = View {
            labels: record.labels.clone(),
            state: record.policy.state.clone(),
            before: TokenUsage {
                input_tokens: usage.clone().map(|u| u["input_tokens"].as_u64().unwrap_or(0)).sum(),
                output_tokens: usage.clone().map(|u| u["output_tokens"].as_u64().unwrap_or(0)).sum(),
            },
            cost_before_usd: usage.map(crate::record::model_cost_usd).sum(),
            turn: TokenUsage::default(),
        };
        Gate {
            chain,
            sessions: sessions.clone(),
            session: record.id.clone(),
            response_id: response_id.to_string(),
            executor,
            cancel,
            view: Mutex::new(view),
            waited: Mutex::default(),
        }
    }

    /// Whether any policy judges this phase (for any tool).
    pub fn judges(&self, phase: Phase) -> bool {
        self.chain.iter().any(|p| p.decl.selects_phase(phase))
    }

    /// Counts a model call's tokens (the policies see the turn's spend as it grows).
    pub fn add_usage(&self, usage: TokenUsage) {
        let mut view = self.view.lock().unwrap();
        view.turn.input_tokens += usage.input_tokens;
        view.turn.output_tokens += usage.output_tokens;
    }

    /// The tokens of this turn's model calls so far.
    pub fn turn_usage(&self) -> TokenUsage {
        self.view.lock().unwrap().turn
    }

    /// Time this turn spent waiting for humans, a wait in progress included.
    pub fn waited(&self) -> Duration {
        let (done, since) = *self.waited.lock().unwrap();
        done + since.map(|t| t.elapsed()).unwrap_or_default()
    }

    /// Runs the chain on one phase of the turn. `target`: the tool, for tool phases; `call_id`: the tool call an
    /// approval request names.
    pub async fn check(
        &self,
        journal: &Journal,
        phase: Phase,
        target: Option<&str>,
        data: Value,
        request_data: Option<&Value>,
        call_id: Option<&str>,
    ) -> GateResult {
        self.check_as(journal, phase, target, data, request_data, call_id, None).await
    }

    /// [`Gate::check`], with the id a question to a human gets if a policy asks (a native CLI's hook that is
    /// sent again after a restart must find the same question, not ask a second one).
    #[allow(clippy::too_many_arguments)]
    pub async fn check_as(
        &self,
        journal: &Journal,
        phase: Phase,
        target: Option<&str>,
        data: Value,
        request_data: Option<&Value>,
        call_id: Option<&str>,
        ask_id: Option<String>,
    ) -> GateResult {
        if !self.chain.iter().any(|p| p.decl.selects(phase, target)) {
            return Ok(None);
        }
        if let Some(Entry::Gate(verdict)) = journal.take(Kind::Gate) {
            return verdict.into_result();
        }
        let (ask, waiting) = match journal.take(Kind::Ask) {
            Some(Entry::Ask(ask)) => {
                // Answered before the restart: the verdict follows it. Otherwise the session was paused on it.
                if let Some(Entry::Gate(verdict)) = journal.take(Kind::Gate) {
                    return verdict.into_result();
                }
                (*ask, None)
            }
            _ => {
                journal.check_live("a policy verdict")?;
                let situation = self.situation();
                let outcome =
                    crate::policy::evaluate(&self.chain, phase, target, data.clone(), request_data, &situation).await;
                match outcome {
                    Outcome::Allow { data, changes, labels } => {
                        let verdict = Ok(data);
                        journal.defer(self.policy_writes(changes, labels), Entry::Gate(Verdict::of(&verdict)));
                        return verdict;
                    }
                    Outcome::Deny { policy, reason, changes, labels } => {
                        let reason = format!("denied by policy '{policy}': {reason}");
                        let mut events = self.policy_writes(changes, labels);
                        events.push(self.denied(phase, &policy, &reason, target));
                        let verdict = Err(reason);
                        journal.defer(events, Entry::Gate(Verdict::of(&verdict)));
                        return verdict;
                    }
                    Outcome::Ask(mut asked) => {
                        let (changes, labels) = (std::mem::take(&mut asked.changes), std::mem::take(&mut asked.labels));
                        let id = ask_id.unwrap_or_else(|| format!("elicit_{}", crate::ids::random_hex()));
                        let ask = self.ask(id, phase, target, call_id, &data, asked);
                        let mut events = self.policy_writes(changes, labels);
                        events.push(protocol::elicitation_request(ask.request.clone()));
                        events.push(protocol::status(&self.session, crate::record::SessionStatus::Paused, None));
                        let (tx, rx) = oneshot::channel();
                        tracing::info!(session = %self.session, elicitation = %ask.elicitation_id, phase = phase.as_str(), "a policy asks a human; the session is paused");
                        let waiter = Waiter::Approval(ask.elicitation_id.clone(), tx);
                        journal.record(events, vec![waiter], Entry::Ask(Box::new(ask.clone()))).await;
                        (ask, Some(rx))
                    }
                }
            }
        };
        let action = self.answer(&ask.elicitation_id, ask.expires_at, waiting).await.action;
        let policies = ask.policies.join(", ");
        if action == ApprovalAction::Accept {
            let verdict = Ok(ask.data.clone().filter(|d| !d.is_null()));
            let events = self.policy_writes(ask.held_changes, ask.held_labels);
            journal.record(events, Vec::new(), Entry::Gate(Verdict::of(&verdict))).await;
            return verdict;
        }
        let reason = match action {
            ApprovalAction::Decline => format!("a human declined this {phase} (asked by policy {policies})"),
            _ => format!("this {phase} was not approved: the question of policy {policies} was cancelled or timed out"),
        };
        let events = vec![self.denied(phase, &policies, &reason, target)];
        let verdict = Err(reason);
        journal.record(events, Vec::new(), Entry::Gate(Verdict::of(&verdict))).await;
        verdict
    }

    /// The chain's verdict on something no human can be asked about (a prompt typed into a native CLI while no
    /// turn runs): an allow passes, a deny is reported and returned, and an ask is returned as a refusal that
    /// says how to be asked. Nothing is journaled (there is no turn).
    pub async fn judge_without_asking(&self, phase: Phase, target: Option<&str>, data: Value) -> Result<(), String> {
        if !self.chain.iter().any(|p| p.decl.selects(phase, target)) {
            return Ok(());
        }
        let situation = self.situation();
        let outcome = crate::policy::evaluate(&self.chain, phase, target, data, None, &situation).await;
        let (events, verdict) = match outcome {
            Outcome::Allow { changes, labels, .. } => (self.policy_writes(changes, labels), Ok(())),
            Outcome::Deny { policy, reason, changes, labels } => {
                let reason = format!("denied by policy '{policy}': {reason}");
                let mut events = self.policy_writes(changes, labels);
                events.push(self.denied(phase, &policy, &reason, target));
                (events, Err(reason))
            }
            Outcome::Ask(asked) => {
                let reason = format!(
                    "policy {} wants a human to approve this {phase}: send it through omnigent (the API, `omnigent \
                     attach --chat`) to be asked",
                    asked.policies.join(", ")
                );
                (self.policy_writes(asked.changes, asked.labels), Err(reason))
            }
        };
        if !events.is_empty()
            && let Err(e) = self.sessions.emit(&self.session, events, Vec::new()).await
        {
            tracing::warn!(session = %self.session, error = %e, "could not record a policy verdict");
        }
        verdict
    }

    /// Asks a human on behalf of a native CLI's own consent prompt (not a policy): `asker` is the name the
    /// question carries, `elicitation_id` is minted by the caller (so it can resolve the question if the CLI
    /// stops waiting, say because the human answered in the terminal). Pauses the session until an answer, a
    /// timeout (`timeout_s`) or the turn's end.
    #[allow(clippy::too_many_arguments)]
    pub async fn consent(
        &self,
        journal: &Journal,
        elicitation_id: &str,
        asker: &str,
        message: String,
        tool: &str,
        call_id: Option<&str>,
        data: &Value,
        timeout_s: u64,
    ) -> ApprovalAction {
        let asked = Asked {
            policies: vec![asker.to_string()],
            message,
            data: None,
            changes: Vec::new(),
            labels: Map::new(),
            held_changes: Vec::new(),
            held_labels: Map::new(),
            timeout_s,
        };
        let ask = self.ask(elicitation_id.to_string(), Phase::ToolCall, Some(tool), call_id, data, asked);
        let events = vec![
            protocol::elicitation_request(ask.request.clone()),
            protocol::status(&self.session, crate::record::SessionStatus::Paused, None),
        ];
        let (tx, rx) = oneshot::channel();
        tracing::info!(session = %self.session, elicitation = %elicitation_id, tool, "the CLI asks for consent; the session is paused");
        let waiter = Waiter::Approval(elicitation_id.to_string(), tx);
        journal.record(events, vec![waiter], Entry::Ask(Box::new(ask.clone()))).await;
        self.answer(&ask.elicitation_id, ask.expires_at, Some(rx)).await.action
    }

    /// Asks a human the question an MCP server put during one of its tool calls (MCP's `elicitation/create`): not
    /// a policy's, so nothing judges it and it is not journaled — a restart cuts the tool call it belongs to, and
    /// the turn says so. Pauses the session until an answer, [`SERVER_QUESTION_TIMEOUT_S`] or the turn's end.
    pub async fn relay(&self, server: &str, question: &crate::mcp::Question, tool: &str, call_id: &str) -> Answer {
        let elicitation_id = format!("elicit_{}", crate::ids::random_hex());
        let expires_at = secs(now_us()) + SERVER_QUESTION_TIMEOUT_S;
        let request = protocol::ServerQuestion {
            elicitation_id: &elicitation_id,
            server,
            message: &question.message,
            requested_schema: &question.requested_schema,
            tool_name: tool,
            call_id,
            session: &self.session,
            response_id: &self.response_id,
            expires_at,
        }
        .payload();
        let events = vec![
            protocol::elicitation_request(request),
            protocol::status(&self.session, crate::record::SessionStatus::Paused, None),
        ];
        let (tx, rx) = oneshot::channel();
        tracing::info!(session = %self.session, elicitation = %elicitation_id, mcp_server = server, tool, "an MCP server asks a human; the session is paused");
        let waiter = Waiter::Approval(elicitation_id.clone(), tx);
        if let Err(e) = self.sessions.emit(&self.session, events, vec![waiter]).await {
            tracing::warn!(session = %self.session, error = %e, "could not ask an MCP server's question");
            return Answer::cancelled();
        }
        self.answer(&elicitation_id, expires_at, Some(rx)).await
    }

    /// A new question to a human, as journaled (the request event's payload included). `data`: the payload as
    /// the policies saw it, previewed in the request.
    fn ask(
        &self,
        elicitation_id: String,
        phase: Phase,
        target: Option<&str>,
        call_id: Option<&str>,
        data: &Value,
        asked: Asked,
    ) -> Ask {
        let Asked { policies, message, data: rewritten, held_changes, held_labels, timeout_s, .. } = asked;
        let expires_at = secs(now_us()) + timeout_s as i64;
        let request = ElicitationRequest {
            elicitation_id: &elicitation_id,
            message: &message,
            phase: phase.as_str(),
            policies: &policies,
            content_preview: &crate::ids::truncate(&data.to_string(), 2000),
            tool_name: target,
            call_id,
            session: &self.session,
            response_id: &self.response_id,
            expires_at,
        }
        .payload();
        Ask {
            elicitation_id,
            request,
            data: rewritten,
            held_changes,
            held_labels,
            policies,
            expires_at,
            phase: phase.as_str().into(),
        }
    }

    /// Waits for a human's answer to a question (or its timeout at `expires_at`). `waiting` is None when the
    /// question comes from the journal of a resumed turn: then the answer may be in the log already, or the request
    /// is still pending.
    async fn answer(&self, eid: &str, expires_at: i64, waiting: Option<oneshot::Receiver<Answer>>) -> Answer {
        let eid = eid.to_string();
        let rx = match waiting {
            Some(rx) => rx,
            None => {
                // The request is still pending in the snapshot and shown to every new subscriber (`stream`); the
                // actor delivers an answer already in the log at once (and a cancel for a question it does not know).
                let (tx, rx) = oneshot::channel();
                tracing::info!(session = %self.session, elicitation = %eid, "the resumed turn waits for the pending approval");
                if let Err(e) =
                    self.sessions.emit(&self.session, Vec::new(), vec![Waiter::Approval(eid.clone(), tx)]).await
                {
                    tracing::warn!(session = %self.session, error = %e, "could not wait for an approval");
                    return Answer::cancelled();
                }
                rx
            }
        };
        let left = Duration::from_secs((expires_at - secs(now_us())).max(0) as u64);
        self.waited.lock().unwrap().1 = Some(Instant::now());
        let _waiting = WaitEnds(&self.waited);
        tokio::select! {
            answer = rx => answer.unwrap_or_else(|_| Answer::cancelled()),
            _ = tokio::time::sleep(left) => {
                tracing::info!(session = %self.session, elicitation = %eid, "no answer before the ask timed out; denying");
                // Recorded like a human's cancel, so the log says what happened.
                let timeout = Input::Approval { elicitation_id: eid, action: ApprovalAction::Cancel, content: Some(json!({"reason": "timeout"})) };
                let _ = self.sessions.post(&self.session, timeout).await;
                Answer::cancelled()
            }
            _ = self.cancel.cancelled() => Answer::cancelled(),
        }
    }

    /// How the session looks to its policies right now.
    fn situation(&self) -> Situation {
        let view = self.view.lock().unwrap();
        let (input, output) =
            (view.before.input_tokens + view.turn.input_tokens, view.before.output_tokens + view.turn.output_tokens);
        Situation {
            session_id: self.session.to_string(),
            model: self.executor.model_name().to_string(),
            harness: self.executor.harness.clone(),
            usage: omnigent_runtime::policy::Usage {
                input_tokens: input,
                output_tokens: output,
                total_tokens: input + output,
                total_cost_usd: view.cost_before_usd
                    + self.executor.cost_usd(view.turn.input_tokens, view.turn.output_tokens),
            },
            labels: view.labels.clone(),
            state: view.state.clone(),
        }
    }

    /// Events applying state changes and labels written by policies.
    fn policy_writes(&self, changes: Vec<StateChange>, labels: Map<String, Value>) -> Vec<NewEvent> {
        {
            // Later verdicts of this turn see the writes at once, committed or not.
            let mut view = self.view.lock().unwrap();
            crate::policy::apply_state(&mut view.state, &changes);
            crate::record::merge_labels(&mut view.labels, &labels);
        }
        let mut events = Vec::new();
        if !changes.is_empty() {
            events.push(protocol::policy_state(&self.session, &changes));
        }
        if !labels.is_empty() {
            events.push(protocol::labels_set(&self.session, &labels));
        }
        events
    }

    fn denied(&self, phase: Phase, policy: &str, reason: &str, tool: Option<&str>) -> NewEvent {
        protocol::policy_denied(&self.session, &self.response_id, phase.as_str(), policy, reason, tool)
    }
}

/// Adds a finished wait for a human to the turn's total when dropped (however the wait ended).
struct WaitEnds<'a>(&'a Mutex<(Duration, Option<Instant>)>);

impl Drop for WaitEnds<'_> {
    fn drop(&mut self) {
        let mut w = self.0.lock().unwrap();
        if let Some(since) = w.1.take() {
            w.0 += since.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    //! The gate driven by a turn that is not a WASM harness (as a native bridge will drive it): a turn runner that
    //! asks about one tool call and reports the verdict, against a real session on SQLite.

    use std::sync::Arc;

    use futures::FutureExt;
    use futures::future::BoxFuture;
    use omnigent_runtime::policy as wit;
    use tokio::sync::mpsc;

    use super::*;
    use crate::policy::testing::{Fixed, loaded};
    use crate::protocol::EventType;
    use crate::record::{SessionStatus, StoredEvent};
    use crate::session::{NewSession, Published, TurnOutcome, TurnRunner, TurnStart};
    use crate::store::Store;

    struct OneToolCall {
        verdict: wit::Verdict,
        results: mpsc::UnboundedSender<GateResult>,
    }

    impl TurnRunner for OneToolCall {
        fn run(&self, sessions: Sessions, turn: TurnStart) -> BoxFuture<'static, ()> {
            let (verdict, results) = (self.verdict.clone(), self.results.clone());
            async move {
                let (policy, _) = loaded("guard", Fixed::new(verdict), &["tool_call"]);
                let (id, response_id) = (turn.record.id.clone(), turn.response_id.clone());
                let journal = Journal::open(&sessions, &id, &response_id, turn.resume).await.unwrap();
                let executor = turn.config.executor.clone();
                let gate = Gate::new(vec![policy], &sessions, &turn.record, &response_id, executor, turn.shared.cancel);
                assert!(!gate.judges(Phase::LlmRequest), "the policy judges tool calls only");
                let call = json!({"name": "shell", "arguments": {"command": "ls"}});
                let result = gate.check(&journal, Phase::ToolCall, Some("shell"), call, None, Some("call_1")).await;
                journal.flush(Vec::new()).await;
                results.send(result).unwrap();
                let usage = TokenUsage::default();
                let outcome = TurnOutcome::Completed { usage, model: "m".into(), cost_usd: 0.0 };
                sessions.end_turn(&id, &response_id, outcome).await.unwrap();
            }
            .boxed()
        }
    }

    struct Session {
        sessions: Sessions,
        id: SessionId,
        events: tokio::sync::broadcast::Receiver<Published>,
        results: mpsc::UnboundedReceiver<GateResult>,
        _dir: tempfile::TempDir,
    }

    /// A session whose turn asks its policy (answering `verdict`) about one tool call; the turn has started.
    async fn turn_with(verdict: wit::Verdict) -> Session {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("gate.db").display())).await.unwrap();
        let (tx, results) = mpsc::unbounded_channel();
        let runner = Arc::new(OneToolCall { verdict, results: tx });
        let sessions = Sessions::new(store, CancellationToken::new(), runner);
        let config = json!({"name": "gate-test", "executor": {"harness": "not-wasm"}});
        let record = sessions.create(NewSession { config, ..NewSession::default() }).await.unwrap();
        let (events, _) = sessions.subscribe(&record.id).await.unwrap();
        let message = Input::Message { content: vec![json!({"type": "input_text", "text": "ls"})], created_by: None };
        sessions.post(&record.id, message).await.unwrap();
        Session { sessions, id: record.id, events, results, _dir: dir }
    }

    impl Session {
        async fn next_event(&mut self, wanted: EventType) -> Arc<StoredEvent> {
            let wait = async {
                loop {
                    if let Ok(Published::Event(e)) = self.events.recv().await
                        && e.event_type == wanted.as_str()
                    {
                        return e;
                    }
                }
            };
            tokio::time::timeout(Duration::from_secs(10), wait).await.expect("the event came")
        }

        async fn verdict(&mut self) -> GateResult {
            tokio::time::timeout(Duration::from_secs(10), self.results.recv()).await.unwrap().unwrap()
        }

        async fn answer(&mut self, action: ApprovalAction) {
            let request = self.next_event(EventType::ElicitationRequest).await;
            let paused = self.sessions.get(&self.id).await.unwrap();
            assert_eq!(paused.status, SessionStatus::Paused);
            assert_eq!(request.data["params"]["tool_name"], "shell");
            assert_eq!(request.data["params"]["call_id"], "call_1");
            let elicitation_id = request.data["elicitation_id"].as_str().unwrap().to_string();
            let answer = Input::Approval { elicitation_id, action, content: None };
            self.sessions.post(&self.id, answer).await.unwrap();
        }
    }

    #[tokio::test]
    async fn an_allow_lets_the_call_through() {
        let mut s = turn_with(wit::Verdict::Allow).await;
        assert_eq!(s.verdict().await, Ok(None));
    }

    #[tokio::test]
    async fn a_deny_is_a_reason_and_an_event() {
        let mut s = turn_with(wit::Verdict::Deny("not here".into())).await;
        let reason = s.verdict().await.unwrap_err();
        assert_eq!(reason, "denied by policy 'guard': not here");
        let denied = s.next_event(EventType::PolicyDenied).await;
        assert_eq!(denied.data["phase"], "tool_call");
        assert_eq!(denied.data["tool_name"], "shell");
    }

    #[tokio::test]
    async fn an_ask_pauses_until_a_human_accepts() {
        let mut s = turn_with(wit::Verdict::Ask(wit::Elicitation { message: "run ls?".into() })).await;
        s.answer(ApprovalAction::Accept).await;
        assert_eq!(s.verdict().await, Ok(None));
        s.next_event(EventType::ResponseCompleted).await;
        let after = s.sessions.get(&s.id).await.unwrap();
        assert_eq!(after.status, SessionStatus::Idle);
        assert!(after.policy.pending.is_empty());
    }

    #[tokio::test]
    async fn a_declined_ask_denies() {
        let mut s = turn_with(wit::Verdict::Ask(wit::Elicitation { message: "run ls?".into() })).await;
        s.answer(ApprovalAction::Decline).await;
        let reason = s.verdict().await.unwrap_err();
        assert!(reason.starts_with("a human declined this tool_call"), "{reason}");
    }
}
