//! The harness's `llm` import: a model call through the session's provider. The host streams the answer's text to
//! the session as it arrives (coalesced), records the answer and its tool calls as transcript items, and starts
//! the child sessions of sub-agent calls at once, so several run in parallel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnigent_runtime::harness::{Error as HarnessError, ToolCall, llm};
use serde_json::json;
use tokio::sync::oneshot;

use super::host::{Host, harness_error};
use super::journal::{Entry, Kind};
use crate::config::ToolKind;
use crate::conversation::last_user_text;
use crate::ids::{SessionId, prefixed, truncate};
use crate::llm::{ChatRequest, LlmError, Streamed};
use crate::policy::Phase;
use crate::protocol::{self, ErrorSource, NewEvent};
use crate::record::{now_us, secs};
use crate::session::{TokenUsage, Waiter};
use crate::stages::Stage;
use crate::subagent::Child;

/// Text deltas are coalesced into one event per this period.
const DELTA_FLUSH: Duration = Duration::from_millis(25);

/// A retry announced by the provider, with the text its failed attempt had streamed.
struct Retry {
    stale_text: String,
    event: NewEvent,
}

impl Host {
    /// A model call, judged by the policies before (`llm_request`) and after (`llm_response`).
    pub(super) async fn llm_complete(&self, request: llm::Request) -> Result<llm::Completion, HarnessError> {
        let denied = |message: String| harness_error("policy_denied", message);
        let last_user = last_user_text(&request.messages);
        let gate_data = json!({"model": self.model, "messages_count": request.messages.len(),
            "tools_count": request.tools.len(),
            "system_prompt_preview": truncate(&self.system_prompt().unwrap_or_default(), 200),
            "last_user_message": truncate(&last_user, 2000)});
        self.gate.check(&self.journal, Phase::LlmRequest, None, gate_data, None, None).await.map_err(denied)?;
        let completion = match self.journal.take(Kind::Complete) {
            Some(Entry::Complete { completion, children }) => {
                self.follow_children(&completion.tool_calls, &children);
                completion
            }
            _ => {
                self.journal.check_live("a model call").map_err(|m| harness_error("replay_diverged", m))?;
                tracing::Instrument::instrument(self.complete_live(request), Stage::ModelCall.span()).await?
            }
        };
        let usage = &completion.usage;
        self.gate.add_usage(TokenUsage { input_tokens: usage.input_tokens, output_tokens: usage.output_tokens });
        let response_data = json!({"model": self.model, "text_preview": truncate(&completion.text, 2000),
            "tool_calls_count": completion.tool_calls.len(),
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}});
        self.gate.check(&self.journal, Phase::LlmResponse, None, response_data, None, None).await.map_err(denied)?;
        Ok(completion)
    }

    /// Children of a replayed call are followed again (their own turns resume on their own).
    fn follow_children(&self, calls: &[ToolCall], children: &BTreeMap<String, String>) {
        for call in calls {
            if let (Some(child), Some(child_id)) = (self.child(call), children.get(&call.id))
                && let Ok(child_id) = SessionId::parse(child_id)
            {
                let (tx, rx) = oneshot::channel();
                self.children.lock().unwrap().insert(call.id.clone(), rx);
                tokio::spawn(async move {
                    let _ = tx.send(child.run(child_id).await);
                });
            }
        }
    }

    /// A model call made now: streams deltas, records the answer and its tool calls with the journal entry.
    async fn complete_live(&self, request: llm::Request) -> Result<llm::Completion, HarnessError> {
        let req = ChatRequest {
            model: self.model.clone(),
            system: self.system_prompt(),
            messages: request.messages,
            tools: request.tools,
            max_tokens: request.max_tokens,
            reasoning_effort: self.reasoning_effort.clone(),
        };
        let mut message_id = prefixed("msg");
        let pending = Arc::new(Mutex::new(String::new()));
        let reasoning = Arc::new(Mutex::new(Reasoning::default()));
        let retries: Arc<Mutex<Vec<Retry>>> = Arc::default();
        let (p, r, th) = (pending.clone(), retries.clone(), reasoning.clone());
        let mut on_delta = move |d: Streamed<'_>| match d {
            Streamed::Text(t) => p.lock().unwrap().push_str(t),
            Streamed::ReasoningSummary(t) => th.lock().unwrap().push(t),
        };
        let (p, th) = (pending.clone(), reasoning.clone());
        let mut on_retry = move |attempt: u32, delay: Duration, e: &LlmError| {
            // The retry summarizes its reasoning again, under a new item.
            th.lock().unwrap().restart();
            // Text the failed attempt streamed stays with its own message id; the retry streams under a new one.
            let stale_text = std::mem::take(&mut *p.lock().unwrap());
            let event =
                protocol::retry(attempt, crate::llm::MAX_ATTEMPTS, delay.as_secs_f64(), e.code(), &e.to_string());
            r.lock().unwrap().push(Retry { stale_text, event });
        };
        let call = self.models.complete(&req, &mut on_delta, &mut on_retry);
        tokio::pin!(call);
        let mut tick = tokio::time::interval(DELTA_FLUSH);
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = tick.tick() => self.flush_deltas(&pending, &reasoning, &retries, &mut message_id).await,
            }
        };
        // What streamed since the last flush is committed with what the call ends in (one commit, deltas first).
        let mut events = take_deltas(&pending, &reasoning, &retries, &mut message_id);
        let completion = match result {
            Ok(c) => c,
            Err(e) => {
                events.push(protocol::error(ErrorSource::Llm, e.code(), &e.to_string()));
                self.journal.emit(events).await;
                return Err(harness_error(e.code(), e.to_string()));
            }
        };
        let (reasoning_id, summary) = reasoning.lock().unwrap().finish();
        if !summary.is_empty() {
            let fields = json!({"summary": [{"type": "summary_text", "text": summary}], "model": self.config.name,
                "llm_model": self.model});
            events.push(self.output_item(&reasoning_id, "reasoning", "completed", fields));
        }
        if !completion.text.is_empty() {
            let content = json!([{"type": "output_text", "text": completion.text, "annotations": []}]);
            let fields = json!({"role": "assistant", "content": content, "model": self.config.name,
                "llm_model": self.model});
            events.push(self.output_item(&message_id, "message", "completed", fields));
        }
        let mut waiters = Vec::new();
        for call in &completion.tool_calls {
            let client = self.tool_config(&call.name).is_some_and(|t| t.runs_on_client());
            let item_id = prefixed("fc");
            let status = if client { "action_required" } else { "completed" };
            let fields = json!({"name": call.name, "arguments": call.arguments, "call_id": call.id,
                "model": self.config.name, "llm_model": self.model});
            events.push(self.output_item(&item_id, "function_call", status, fields));
            if client {
                let (tx, rx) = oneshot::channel();
                waiters.push(Waiter::Output(call.id.clone(), tx));
                self.client_calls.lock().unwrap().insert(call.id.clone(), (item_id, rx));
            }
        }
        // Sub-agent calls get their child sessions now, so the journal can name them (a replayed parent then
        // waits for the same children rather than losing them); they start after the calls are in the log.
        let mut started = Vec::new();
        let mut children = BTreeMap::new();
        for call in &completion.tool_calls {
            let Some(child) = self.child(call) else { continue };
            let (tx, rx) = oneshot::channel();
            self.children.lock().unwrap().insert(call.id.clone(), rx);
            match child.create().await {
                Ok(child_id) => {
                    children.insert(call.id.clone(), child_id.as_str().to_string());
                    started.push((child, child_id, tx));
                }
                Err(message) => {
                    let _ = tx.send(Err(message));
                }
            }
        }
        let entry = Entry::Complete { completion: completion.clone(), children };
        self.journal.record(events, waiters, entry).await;
        // Several run in parallel.
        for (child, child_id, tx) in started {
            tokio::spawn(async move {
                let _ = tx.send(child.run(child_id).await);
            });
        }
        Ok(completion)
    }

    /// The sub-agent a tool call delegates to, if it is one.
    pub(super) fn child(&self, call: &ToolCall) -> Option<Child> {
        let tool = self.tool_config(&call.name).filter(|t| t.kind == ToolKind::Agent)?;
        Some(Child {
            sessions: self.sessions.clone(),
            parent: self.id.clone(),
            config: self.config.sub_agent(&call.name, tool),
            title: format!("{}:{}", self.config.name, call.name),
            arguments: call.arguments.clone(),
            cancel: self.shared.cancel.clone(),
        })
    }

    /// A transcript item of this turn, as `response.output_item.done`.
    pub(super) fn output_item(&self, id: &str, item_type: &str, status: &str, fields: serde_json::Value) -> NewEvent {
        protocol::output_item_done(protocol::item(id, item_type, status, &self.response_id, secs(now_us()), fields))
    }

    /// Publishes buffered text deltas and retries.
    async fn flush_deltas(
        &self,
        pending: &Mutex<String>,
        reasoning: &Mutex<Reasoning>,
        retries: &Mutex<Vec<Retry>>,
        message_id: &mut String,
    ) {
        let events = take_deltas(pending, reasoning, retries, message_id);
        if !events.is_empty() {
            self.journal.emit(events).await;
        }
    }
}

/// The buffered text deltas and retries as events. Each retry closes the message id its attempt streamed under.
fn take_deltas(
    pending: &Mutex<String>,
    reasoning: &Mutex<Reasoning>,
    retries: &Mutex<Vec<Retry>>,
    message_id: &mut String,
) -> Vec<NewEvent> {
    let mut events = reasoning.lock().unwrap().flush();
    for retry in retries.lock().unwrap().drain(..) {
        if !retry.stale_text.is_empty() {
            events.push(protocol::text_delta(&retry.stale_text, message_id));
        }
        events.push(retry.event);
        *message_id = prefixed("msg");
    }
    let text = std::mem::take(&mut *pending.lock().unwrap());
    if !text.is_empty() {
        events.push(protocol::text_delta(&text, message_id));
    }
    events
}

/// A model call's reasoning summary: streamed as `response.reasoning_summary_text.delta` (after one
/// `response.reasoning.started`), kept as a `reasoning` item.
struct Reasoning {
    item_id: String,
    pending: String,
    all: String,
    started: bool,
}

impl Default for Reasoning {
    fn default() -> Self {
        Reasoning { item_id: prefixed("rs"), pending: String::new(), all: String::new(), started: false }
    }
}

impl Reasoning {
    fn push(&mut self, delta: &str) {
        self.pending.push_str(delta);
        self.all.push_str(delta);
    }

    /// What the stream has not seen yet.
    fn flush(&mut self) -> Vec<NewEvent> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let mut events = Vec::new();
        if !std::mem::replace(&mut self.started, true) {
            events.push(protocol::reasoning_started(&self.item_id));
        }
        events.push(protocol::reasoning_summary_delta(&std::mem::take(&mut self.pending), &self.item_id));
        events
    }

    /// A retried call reasons again: what was streamed stays, the item starts over.
    fn restart(&mut self) {
        *self = Reasoning::default();
    }

    /// The item's id and its whole summary.
    fn finish(&mut self) -> (String, String) {
        (self.item_id.clone(), std::mem::take(&mut self.all))
    }
}
