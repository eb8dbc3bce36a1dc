//! The conversation so far as harness messages: a projection of the session's transcript items, from the newest
//! compaction on (its summary, then the items it kept word for word and everything after).

use std::sync::Arc;

use omnigent_runtime::harness::{Message, Role, ToolCall};
use serde_json::Value;

use crate::ids::SessionId;
use crate::protocol::COMPACTION;
use crate::record::Item;
use crate::session::Sessions;
use crate::session::transcript::Transcript;
use crate::stages::Stage;
use crate::store::StoreError;

/// How the model is told what a compaction summarized.
const SUMMARY_PREFIX: &str = "Summary of the earlier conversation (older messages were compacted):\n\n";

/// The whole transcript, in order: from the session actor's memory, or read from the store when the actor could
/// not load it. A failed read is an error, never a shorter conversation.
pub async fn items(sessions: &Sessions, id: &SessionId, transcript: &Transcript) -> Result<Arc<Vec<Item>>, StoreError> {
    let _reading = Stage::History.span();
    match transcript.snapshot() {
        Some(items) => Ok(items),
        None => Ok(Arc::new(sessions.store().all_items(id).await?)),
    }
}

/// The conversation the model is given, as read now.
pub async fn history(sessions: &Sessions, id: &SessionId, transcript: &Transcript) -> Result<Conversation, StoreError> {
    Ok(Conversation::of(&items(sessions, id, transcript).await?))
}

/// The conversation as it was when the transcript ended at `through` (a journaled read, replayed). Items are in
/// position order, and one written again keeps its position and what the conversation reads of it.
pub async fn history_through(
    sessions: &Sessions,
    id: &SessionId,
    transcript: &Transcript,
    through: Option<i64>,
) -> Result<Conversation, StoreError> {
    let items = items(sessions, id, transcript).await?;
    let end = items.partition_point(|i| through.is_some_and(|last| i.position <= last));
    Ok(Conversation::of(&items[..end]))
}

/// The conversation the model is given, and where the transcript it was read from ended.
#[derive(Clone, Debug)]
pub struct Conversation {
    pub messages: Vec<Message>,
    /// The last item's position (None: the transcript was empty).
    pub through: Option<i64>,
}

impl Conversation {
    pub fn of(items: &[Item]) -> Conversation {
        Conversation { messages: project(items), through: items.iter().map(|i| i.position).max() }
    }
}

/// The newest compaction's summary and the items the model still reads word for word: those after the last item
/// it summarized (the compaction item itself is among them and projects to nothing).
pub fn from_latest_compaction(items: &[Item]) -> (Option<&str>, &[Item]) {
    let Some(at) = items.iter().rposition(|i| i.item_type == COMPACTION) else { return (None, items) };
    let compaction = &items[at];
    let last = compaction.data["last_item_id"].as_str();
    let start = last.and_then(|id| items[..at].iter().position(|i| i.id == id)).map_or(at + 1, |k| k + 1);
    (compaction.data["summary"].as_str(), &items[start..])
}

/// The model's view of the transcript: the newest summary (joined to the first user message that follows, so
/// roles still alternate), then the conversation after it.
pub fn project(items: &[Item]) -> Vec<Message> {
    let (summary, rest) = from_latest_compaction(items);
    with_summary(summary, project_items(rest))
}

/// Puts a summary in front of a conversation.
pub fn with_summary(summary: Option<&str>, mut messages: Vec<Message>) -> Vec<Message> {
    let Some(summary) = summary else { return messages };
    match messages.first_mut() {
        Some(first) if first.role == Role::User => {
            first.content = format!("{SUMMARY_PREFIX}{summary}\n\n---\n\n{}", first.content);
        }
        _ => messages.insert(
            0,
            Message {
                role: Role::User,
                content: format!("{SUMMARY_PREFIX}{summary}"),
                tool_calls: vec![],
                tool_call_id: None,
            },
        ),
    }
    messages
}

/// Messages from transcript items: user and assistant messages, each model response's tool calls on its
/// assistant message, tool results as tool messages. Other items are not part of the conversation.
pub fn project_items(items: &[Item]) -> Vec<Message> {
    let mut messages: Vec<Message> = Vec::new();
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

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// The newest user message's text.
pub fn last_user_text(messages: &[Message]) -> String {
    messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content.clone()).unwrap_or_default()
}

/// A stored transcript item, for tests of what is read from one.
#[cfg(test)]
pub(super) fn test_item(id: &str, item_type: &str, data: Value) -> Item {
    Item {
        id: id.into(),
        position: 0,
        response_id: None,
        item_type: item_type.into(),
        status: "completed".into(),
        created_at_us: 0,
        data,
        created_by: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(item_type: &str, data: Value) -> Item {
        test_item("i", item_type, data)
    }

    #[test]
    fn tool_calls_join_their_assistant_message() {
        let items = [
            item("message", json!({"role": "user", "content": [{"type": "input_text", "text": "list"}]})),
            item("message", json!({"role": "assistant", "content": [{"type": "output_text", "text": "sure"}]})),
            item("function_call", json!({"call_id": "c1", "name": "shell", "arguments": "{}"})),
            item("function_call", json!({"call_id": "c2", "name": "ls"})),
            item("function_call_output", json!({"call_id": "c1", "output": "a b"})),
            item("function_call_output", json!({"call_id": "c2", "output": {"not": "text"}})),
            item("reasoning", json!({})),
        ];
        let messages = project(&items);
        assert_eq!(messages.len(), 4);
        assert_eq!((messages[0].role, messages[0].content.as_str()), (Role::User, "list"));
        assert_eq!(messages[1].tool_calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c1", "c2"]);
        assert_eq!(messages[1].tool_calls[1].arguments, "{}");
        assert_eq!(messages[3].content, r#"{"not":"text"}"#);
        assert_eq!(last_user_text(&messages), "list");
    }

    #[test]
    fn a_call_without_text_opens_an_assistant_message() {
        let messages = project(&[item("function_call", json!({"call_id": "c", "name": "x", "arguments": "{}"}))]);
        assert_eq!(messages[0].role, Role::Assistant);
        assert!(messages[0].content.is_empty());
    }
}
