//! How the actor takes clients' inputs: the posts queued in its mailbox are applied as one transaction (group
//! commit), each checked against the session as the batch has changed it; an input the database refuses fails
//! alone, never the inputs queued with it.

use serde_json::{Value, json};

use super::actor::{Actor, Command, Effect, Next, Reply, stop_if_gone};
use super::draft::Draft;
use super::{Ack, Answer, Input, SessionError};
use crate::ids::prefixed;
use crate::protocol::{self, COMPACTION_REQUEST};
use crate::record::SessionStatus;

/// Most input events one transaction takes (group commit under load).
const MAX_BATCH: usize = 128;

/// A committed batch of inputs: each one's outcome, and what they set in motion.
struct Committed {
    outcomes: Vec<Result<Ack, SessionError>>,
    effects: Vec<Effect>,
}

/// Answers each input: with its own outcome when the commit went through, else with the commit's error.
fn answer(result: Result<Vec<Result<Ack, SessionError>>, SessionError>, replies: Vec<Reply<Ack>>) -> Next {
    let next = stop_if_gone(&result);
    match result {
        Ok(outcomes) => {
            for (outcome, reply) in outcomes.into_iter().zip(replies) {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.share()));
            }
        }
    }
    next
}

impl Actor {
    /// The inputs queued behind this one (up to a batch), and the first other command if one interrupts them.
    pub(super) fn gather(&mut self, input: Input, reply: Reply<Ack>) -> (Vec<(Input, Reply<Ack>)>, Option<Command>) {
        let mut batch = vec![(input, reply)];
        while batch.len() < MAX_BATCH {
            match self.mailbox.try_recv() {
                Ok(Command::Post { input, reply, queued }) => {
                    drop(queued);
                    batch.push((input, reply));
                }
                Ok(other) => return (batch, Some(other)),
                Err(_) => break,
            }
        }
        (batch, None)
    }

    /// Applies a batch of inputs in one transaction. If that commit fails, each input is committed alone, so one
    /// client's input that the database refuses never fails another client's request.
    pub(super) async fn post_batch(&mut self, batch: Vec<(Input, Reply<Ack>)>) -> Next {
        let (inputs, replies): (Vec<Input>, Vec<Reply<Ack>>) = batch.into_iter().unzip();
        // A copy only where there is something to isolate: the inputs go into the draft by value.
        let alone = (inputs.len() > 1).then(|| inputs.clone());
        match (self.commit_inputs(inputs).await, alone) {
            (Err(e), Some(alone)) if !matches!(e, SessionError::NotFound(_)) => {
                tracing::warn!(session = %self.record.id, error = %e, inputs = alone.len(), "a batch of inputs failed to commit; committing them one by one");
                for (input, reply) in alone.into_iter().zip(replies) {
                    let result = self.commit_inputs(vec![input]).await;
                    if self.answer_then_apply(result, vec![reply]).await == Next::Stop {
                        return Next::Stop;
                    }
                }
                Next::Continue
            }
            (result, _) => self.answer_then_apply(result, replies).await,
        }
    }

    /// Answers the inputs (they are committed: the clients need not wait for what follows), then sets in motion
    /// what they imply, before the actor takes its next command.
    async fn answer_then_apply(&mut self, result: Result<Committed, SessionError>, replies: Vec<Reply<Ack>>) -> Next {
        let (outcomes, effects) = match result {
            Ok(Committed { outcomes, effects }) => (Ok(outcomes), effects),
            Err(e) => (Err(e), Vec::new()),
        };
        let next = answer(outcomes, replies);
        if !effects.is_empty() {
            // Let the answered requests' tasks run first: a task spawned now (the turn) would take the worker's
            // next slot ahead of them, and the 202 would wait for the turn's start (prepare, instantiate, the
            // model request) on a busy machine.
            tokio::task::yield_now().await;
        }
        for effect in effects {
            self.apply(effect).await;
        }
        next
    }

    /// Writes inputs into one draft and commits it. Each input's own outcome (its ack, or why it was refused)
    /// comes back with what the inputs set in motion; Err when the commit failed.
    async fn commit_inputs(&mut self, inputs: Vec<Input>) -> Result<Committed, SessionError> {
        let mut draft = Draft::new(&self.record);
        let mut effects = Vec::new();
        let outcomes: Vec<_> = inputs.into_iter().map(|input| self.input(&mut draft, &mut effects, input)).collect();
        self.commit(draft).await?;
        Ok(Committed { outcomes, effects })
    }

    /// Writes one input into the draft; what it sets in motion waits in `effects` until the commit succeeds.
    fn input(&self, draft: &mut Draft, effects: &mut Vec<Effect>, input: Input) -> Result<Ack, SessionError> {
        let running = self.turn.is_some() || effects.iter().any(|e| matches!(e, Effect::StartTurn(_)));
        match input {
            Input::Message { content, created_by } => {
                let item_id = prefixed("msg");
                let text =
                    content.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n");
                let data = json!({"role": "user", "content": content});
                draft.emit(protocol::input_consumed(&item_id, "message", data, created_by));
                if running {
                    effects.push(Effect::Steer(text));
                } else if let Some(turn) = draft.start_turn() {
                    effects.push(Effect::StartTurn(turn));
                }
                Ok(Ack { queued: true, item_id: Some(item_id) })
            }
            Input::FunctionCallOutput { call_id, output, created_by } => {
                let item_id = prefixed("fco");
                let data = json!({"call_id": call_id, "output": output});
                draft.emit(protocol::input_consumed(&item_id, "function_call_output", data, created_by));
                effects.push(Effect::Deliver { call_id, output });
                Ok(Ack { queued: true, item_id: Some(item_id) })
            }
            Input::Compact { created_by } => {
                if running {
                    return Err(SessionError::Invalid(
                        "a turn is running: send compact once it has ended (or interrupt it first)".into(),
                    ));
                }
                match draft.record.config.pointer("/executor/harness").and_then(Value::as_str) {
                    None | Some("") => {
                        return Err(SessionError::Invalid("this session has no harness to compact with".into()));
                    }
                    Some(h) if crate::config::is_native_harness(h) => {
                        return Err(SessionError::Invalid(
                            "a native harness compacts its own conversation (Claude Code: /compact in its terminal)"
                                .into(),
                        ));
                    }
                    Some(_) => {}
                }
                // The request is an item of the transcript; the turn it starts only compacts (turn/compaction.rs).
                let item_id = prefixed("cmpreq");
                draft.emit(protocol::input_consumed(&item_id, COMPACTION_REQUEST, json!({}), created_by));
                if let Some(turn) = draft.start_turn() {
                    effects.push(Effect::StartTurn(turn));
                }
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
                draft.emit(protocol::elicitation_resolved(&elicitation_id, json!(action), content.clone()));
                if draft.record.policy.pending.is_empty() && draft.record.status == SessionStatus::Paused {
                    draft.set_status(SessionStatus::Running, None);
                }
                effects.push(Effect::Resolve { elicitation_id, answer: Answer { action, content } });
                Ok(Ack { queued: false, item_id: None })
            }
        }
    }
}
