//! Compaction: the older part of a long conversation is summarized by the session's own model into a `compaction`
//! item, and from then on the model reads the summary plus the newest exchanges instead of everything (the
//! transcript keeps everything for humans). It happens at the start of a turn, before the harness runs:
//! - when a client asked (`POST …/events {type: compact}`): the request is an item of the transcript, and the turn
//!   it starts only compacts;
//! - automatically, when the conversation would fill `compaction.trigger_threshold` (0.8) of the model's context
//!   window (`executor.context_window`, 128k by default; estimated at four characters a token).
//!
//! The newest `compaction.recent_window` (5) user messages, with everything after each, stay word for word. The
//! summary's model call is an `llm_request` for the policies, and it is journaled like every host call: the
//! `compaction` item is committed together with its journal entry, so a restart mid-compaction neither loses nor
//! doubles it (before the commit the call is made again; after it the replay takes the summary from the journal).

use omnigent_runtime::harness::{Message, Role};
use serde_json::json;

use super::history;
use super::host::Host;
use super::journal::{Entry, Kind};
use crate::conversation::{Conversation, from_latest_compaction, project_items, with_summary};
use crate::ids::{prefixed, truncate};
use crate::llm::ChatRequest;
use crate::policy::Phase;
use crate::protocol::{self, COMPACTION, COMPACTION_REQUEST, ErrorSource, NewEvent};
use crate::record::{Item, now_us, secs};
use crate::session::{FailureCode, TokenUsage, TurnOutcome};

const DEFAULT_THRESHOLD: f64 = 0.8;
const DEFAULT_RECENT_WINDOW: u32 = 5;
const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;
/// Longest summary asked of the model.
const SUMMARY_MAX_TOKENS: u32 = 2_000;
/// How much of one tool result the summarizer reads.
const TOOL_OUTPUT_CHARS: usize = 2_000;

const INSTRUCTIONS: &str = "You compact the conversation of a coding agent with its user so the agent can continue \
    without it. Write a concise summary that keeps what the agent needs: the user's goals and constraints, decisions \
    made, files and commands involved with their important results, what is done and what is still open. Plain \
    text, no preamble.";

/// What the start of a turn does about compaction.
pub(super) enum Step {
    /// Go on with the turn (compacted or not).
    Continue,
    /// The turn is over: it only compacted (or could not).
    Done(TurnOutcome),
}

/// Where the transcript is cut: everything up to `last_item_id` is summarized.
struct Cut {
    last_item_id: String,
    older: Vec<Message>,
}

impl Host {
    /// Compacts now if the turn was started by a `compact` request or the conversation is due; see the module doc.
    pub(super) async fn compaction_step(&self) -> Step {
        let resumed = self.journal.take(Kind::CompactionStart).is_some();
        if !resumed && self.journal.replaying() {
            // The original run went past this point without compacting.
            return Step::Continue;
        }
        let items = match history::items(&self.sessions, &self.id, &self.transcript).await {
            Ok(items) => items,
            Err(e) => {
                self.journal.fail(format!("reading the conversation failed: {e}"));
                return Step::Done(TurnOutcome::Failed { code: FailureCode::StorageError, message: e.to_string() });
            }
        };
        let requested = requested(&items);
        let settings = self.config.compaction.unwrap_or_default();
        if !resumed && !requested {
            let window = self.config.executor.context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW) as f64;
            let threshold = settings.trigger_threshold.unwrap_or(DEFAULT_THRESHOLD);
            // The actor's projection when it keeps the transcript (the same items, not projected again).
            let read = self.transcript.conversation().unwrap_or_else(|| Conversation::of(&items));
            if (estimate_tokens(&read.messages) as f64) < threshold * window {
                // Read once: the harness's history call takes this.
                *self.history.lock().unwrap() = Some(read);
                return Step::Continue;
            }
        }
        let recent = settings.recent_window.unwrap_or(DEFAULT_RECENT_WINDOW) as usize;
        let Some(cut) = cut(&items, recent) else {
            if !requested {
                return Step::Continue;
            }
            let message = format!(
                "nothing to compact: the conversation has at most {recent} user messages, which compaction keeps as \
                 they are (compaction.recent_window)"
            );
            self.journal
                .emit(vec![
                    protocol::compaction_failed(),
                    protocol::error(ErrorSource::Llm, "nothing_to_compact", &message),
                ])
                .await;
            return Step::Done(TurnOutcome::Completed {
                usage: TokenUsage::default(),
                model: self.model.clone(),
                cost_usd: 0.0,
            });
        };
        if !resumed {
            self.journal.defer(Vec::new(), Entry::CompactionStart);
            self.journal.emit(vec![protocol::compaction_in_progress()]).await;
        }
        let outcome = self.summarize(cut).await;
        // The history the harness reads now starts from the new compaction.
        *self.history.lock().unwrap() = None;
        match (outcome, requested) {
            (Ok(usage), true) => Step::Done(TurnOutcome::Completed {
                usage,
                model: self.model.clone(),
                cost_usd: self.config.executor.cost_usd(usage.input_tokens, usage.output_tokens),
            }),
            (Err(failure), true) => Step::Done(failure),
            // An automatic compaction that failed leaves the conversation whole; the turn goes on.
            (_, false) => Step::Continue,
        }
    }

    /// The summary's model call (judged as an `llm_request`), and the `compaction` item with its journal entry.
    async fn summarize(&self, cut: Cut) -> Result<TokenUsage, TurnOutcome> {
        let fail = |code: FailureCode, message: String| TurnOutcome::Failed { code, message };
        let gate_data = json!({"model": self.model, "messages_count": cut.older.len(), "tools_count": 0,
            "system_prompt_preview": truncate(INSTRUCTIONS, 200), "last_user_message": "", "purpose": "compaction"});
        if let Err(reason) = self.gate.check(&self.journal, Phase::LlmRequest, None, gate_data, None, None).await {
            self.journal.emit(vec![protocol::compaction_failed()]).await;
            return Err(fail(FailureCode::PolicyDenied, reason));
        }
        let completion = match self.journal.take(Kind::Compaction) {
            Some(Entry::Compaction { completion }) => completion,
            _ => {
                if let Err(why) = self.journal.check_live("a compaction") {
                    return Err(fail(FailureCode::ReplayDiverged, why));
                }
                let request = ChatRequest {
                    model: self.model.clone(),
                    system: Some(INSTRUCTIONS.into()),
                    messages: vec![Message {
                        role: Role::User,
                        content: render(&cut.older),
                        tool_calls: vec![],
                        tool_call_id: None,
                    }],
                    tools: Vec::new(),
                    max_tokens: Some(SUMMARY_MAX_TOKENS),
                    reasoning_effort: self.reasoning_effort.clone(),
                };
                let completion = match self.models.complete(&request, &mut |_| {}, &mut |_, _, _| {}).await {
                    Ok(c) if !c.text.trim().is_empty() => c,
                    Ok(_) => {
                        let message = "the model's summary was empty; the conversation stays as it was".to_string();
                        self.journal
                            .emit(vec![
                                protocol::compaction_failed(),
                                protocol::error(ErrorSource::Llm, "llm_error", &message),
                            ])
                            .await;
                        return Err(fail(FailureCode::of("llm_error"), message));
                    }
                    Err(e) => {
                        let events = vec![
                            protocol::compaction_failed(),
                            protocol::error(ErrorSource::Llm, e.code(), &e.to_string()),
                        ];
                        self.journal.emit(events).await;
                        return Err(fail(FailureCode::of(e.code()), e.to_string()));
                    }
                };
                self.journal
                    .record(
                        self.compaction_events(&cut, &completion),
                        Vec::new(),
                        Entry::Compaction { completion: completion.clone() },
                    )
                    .await;
                completion
            }
        };
        let usage =
            TokenUsage { input_tokens: completion.usage.input_tokens, output_tokens: completion.usage.output_tokens };
        self.gate.add_usage(usage);
        Ok(usage)
    }

    fn compaction_events(&self, cut: &Cut, completion: &omnigent_runtime::harness::llm::Completion) -> Vec<NewEvent> {
        let summary = completion.text.trim();
        let fields = json!({"summary": summary, "last_item_id": cut.last_item_id, "model": self.config.name,
            "llm_model": self.model, "token_count": completion.usage.output_tokens,
            "compacted_messages": cut.older.len()});
        let item = protocol::item(&prefixed("cmp"), COMPACTION, "completed", &self.response_id, secs(now_us()), fields);
        let total = completion.usage.input_tokens + completion.usage.output_tokens;
        vec![
            protocol::output_item_done(item),
            protocol::compaction_completed(summary, &self.model, total, cut.older.len()),
        ]
    }
}

/// Whether the turn was started by a `compact` request: the newest user input is one.
fn requested(items: &[Item]) -> bool {
    items
        .iter()
        .rev()
        .find(|i| i.item_type == COMPACTION_REQUEST || is_user_message(i))
        .is_some_and(|i| i.item_type == COMPACTION_REQUEST)
}

fn is_user_message(item: &Item) -> bool {
    item.item_type == "message" && item.data["role"] == "user"
}

/// Keeps the newest `recent` user messages and what follows each; None when nothing is older than them.
fn cut(items: &[Item], recent: usize) -> Option<Cut> {
    let (summary, rest) = from_latest_compaction(items);
    let users: Vec<usize> = rest.iter().enumerate().filter(|(_, i)| is_user_message(i)).map(|(k, _)| k).collect();
    let keep_from = *users.get(users.len().checked_sub(recent.max(1))?)?;
    let older = &rest[..keep_from];
    // Only a previous summary and nothing new: no progress to make.
    let last = older.iter().rev().find(|i| i.item_type != COMPACTION && i.item_type != COMPACTION_REQUEST)?;
    Some(Cut { last_item_id: last.id.clone(), older: with_summary(summary, project_items(older)) })
}

/// The conversation as text for the summarizer.
fn render(messages: &[Message]) -> String {
    let mut out = String::from("The conversation so far:\n\n");
    for m in messages {
        let who = match m.role {
            Role::User => "USER",
            Role::Assistant => "ASSISTANT",
            Role::Tool => "TOOL RESULT",
            Role::System => "SYSTEM",
        };
        let content = if m.role == Role::Tool { truncate(&m.content, TOOL_OUTPUT_CHARS) } else { m.content.clone() };
        if !content.is_empty() {
            out.push_str(&format!("{who}: {content}\n"));
        }
        for call in &m.tool_calls {
            out.push_str(&format!("ASSISTANT calls {}({})\n", call.name, call.arguments));
        }
    }
    out
}

/// About four characters a token: enough to tell when a conversation nears the context window.
fn estimate_tokens(messages: &[Message]) -> u64 {
    let chars: usize = messages
        .iter()
        .map(|m| m.content.len() + m.tool_calls.iter().map(|c| c.name.len() + c.arguments.len()).sum::<usize>())
        .sum();
    (chars / 4) as u64
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn item(id: &str, item_type: &str, data: Value) -> Item {
        crate::conversation::test_item(id, item_type, data)
    }

    fn user(id: &str, text: &str) -> Item {
        item(id, "message", json!({"role": "user", "content": [{"type": "input_text", "text": text}]}))
    }

    fn assistant(id: &str, text: &str) -> Item {
        item(id, "message", json!({"role": "assistant", "content": [{"type": "output_text", "text": text}]}))
    }

    #[test]
    fn the_cut_keeps_the_newest_exchanges_and_the_projection_reads_the_summary() {
        let mut items = vec![user("u1", "one"), assistant("a1", "1"), user("u2", "two"), assistant("a2", "2")];
        items.push(user("u3", "three"));
        let first = cut(&items, 1).unwrap();
        assert_eq!(first.last_item_id, "a2");
        assert_eq!(first.older.len(), 4);
        assert!(cut(&items, 3).is_none(), "three user messages, all kept");
        // The compaction item lands after the kept exchange; the model reads summary + the kept exchange + more.
        items.push(assistant("a3", "3"));
        items.push(item("c1", COMPACTION, json!({"summary": "S", "last_item_id": "a2"})));
        items.push(user("u4", "four"));
        let messages = Conversation::of(&items).messages;
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(messages[0].content.contains("S") && messages[0].content.ends_with("three"), "{}", messages[0].content);
        assert_eq!(messages[2].content, "four");
        // A second compaction summarizes the first summary and what followed it.
        let again = cut(&items, 1).unwrap();
        assert_eq!(again.last_item_id, "a3");
        assert!(again.older[0].content.contains("S"));
    }

    #[test]
    fn a_compact_request_is_the_newest_user_input() {
        let mut items = vec![user("u1", "one"), item("r1", COMPACTION_REQUEST, json!({}))];
        assert!(requested(&items));
        items.push(item("c1", COMPACTION, json!({"summary": "S", "last_item_id": "u1"})));
        assert!(requested(&items), "still, after the compaction item (a replay)");
        items.push(user("u2", "two"));
        assert!(!requested(&items));
    }
}
