//! Validation of what clients send to `POST /v1/sessions/{id}/events`: its shape, and what it refers to.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::SessionError;
use crate::ids::SessionId;
use crate::store::Store;

/// The body of `POST /v1/sessions/{id}/events` (Omnigent's `SessionEventInput`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    /// `message`, `function_call_output`, `interrupt`, `approval` or `compact`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's payload; its shape depends on `type`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
    /// Accepted for compatibility with Omnigent clients.
    #[serde(default)]
    pub model_override: Option<String>,
    /// Accepted for compatibility with Omnigent clients.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Vec<Value>>,
    /// Who sent it (shown on the item).
    #[serde(default)]
    pub created_by: Option<String>,
}

pub const ALLOWED_TYPES: [&str; 5] = ["message", "function_call_output", "interrupt", "approval", "compact"];

/// A validated input event.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A user message: starts a turn (or, later, steers the running one).
    Message { content: Vec<Value>, created_by: Option<String> },
    /// The result of a client-side tool call.
    FunctionCallOutput { call_id: String, output: String, created_by: Option<String> },
    /// Cancel the running turn.
    Interrupt,
    /// Summarize the older conversation now (a turn that only compacts).
    Compact { created_by: Option<String> },
    /// Answer a pending elicitation.
    Approval { elicitation_id: String, action: ApprovalAction, content: Option<Value> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalAction {
    Accept,
    Decline,
    Cancel,
}

/// A human's answer to an elicitation: the action, and what they filled in (a form's fields, for a question that
/// asked for some).
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub action: ApprovalAction,
    pub content: Option<Value>,
}

impl Answer {
    /// No answer came (the question timed out, was cancelled, or nobody can answer it).
    pub fn cancelled() -> Answer {
        Answer { action: ApprovalAction::Cancel, content: None }
    }
}

/// Longest `created_by`.
const MAX_AUTHOR_CHARS: usize = 256;

const CONTENT_PART_TYPES: [&str; 4] = ["input_text", "output_text", "input_image", "input_file"];

impl Input {
    pub fn parse(raw: EventInput) -> Result<Input, String> {
        if let Some(by) = &raw.created_by {
            crate::ids::check_short_text("created_by", by, MAX_AUTHOR_CHARS)?;
        }
        let data = match raw.data {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => return Err(format!("'data' must be a JSON object, got {}", kind(&other))),
        };
        match raw.event_type.as_str() {
            "message" => parse_message(data, raw.created_by),
            "function_call_output" => {
                let call_id = required_str(&data, "call_id")?;
                let output = match data.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Null) | None => return Err("function_call_output needs data.output".into()),
                    Some(other) => other.to_string(),
                };
                Ok(Input::FunctionCallOutput { call_id, output, created_by: raw.created_by })
            }
            "interrupt" => Ok(Input::Interrupt),
            "compact" => Ok(Input::Compact { created_by: raw.created_by }),
            "approval" => {
                let elicitation_id = required_str(&data, "elicitation_id")?;
                let action = data.get("action").cloned().ok_or("approval needs data.action")?;
                let action: ApprovalAction = serde_json::from_value(action)
                    .map_err(|_| "data.action must be one of accept, decline, cancel".to_string())?;
                Ok(Input::Approval { elicitation_id, action, content: data.get("content").cloned() })
            }
            other => Err(format!(
                "unknown event type '{}'; allowed types: {}",
                crate::ids::truncate(other, 60),
                ALLOWED_TYPES.join(", ")
            )),
        }
    }
}

fn parse_message(data: Map<String, Value>, created_by: Option<String>) -> Result<Input, String> {
    match data.get("role") {
        None => {}
        Some(Value::String(r)) if r == "user" => {}
        Some(other) => {
            return Err(format!(
                "message role must be 'user' (the assistant's messages come from the harness), got {other}"
            ));
        }
    }
    let content = match data.get("content") {
        Some(Value::String(text)) => vec![json!({"type": "input_text", "text": text})],
        Some(Value::Array(parts)) => parts.clone(),
        Some(other) => {
            return Err(format!("message content must be a string or an array of parts, got {}", kind(other)));
        }
        None => return Err("message needs data.content".into()),
    };
    if content.is_empty() {
        return Err("message content is empty".into());
    }
    for (i, part) in content.iter().enumerate() {
        let Some(t) = part.get("type").and_then(Value::as_str) else {
            return Err(format!("content[{i}] needs a string 'type'"));
        };
        if !CONTENT_PART_TYPES.contains(&t) {
            return Err(format!("content[{i}].type '{t}' is not one of {}", CONTENT_PART_TYPES.join(", ")));
        }
        if (t == "input_text" || t == "output_text") && !part.get("text").is_some_and(Value::is_string) {
            return Err(format!("content[{i}] ({t}) needs a string 'text'"));
        }
        if (t == "input_image" || t == "input_file")
            && !["file_id", "image_url", "file_data", "file_url"]
                .iter()
                .any(|k| part.get(*k).is_some_and(Value::is_string))
        {
            return Err(format!("content[{i}] ({t}) needs a file_id (or image_url / file_data / file_url)"));
        }
    }
    Ok(Input::Message { content, created_by })
}

/// Checks what an input refers to against the session's stored state: a `function_call_output` answers a client
/// tool call that waits for one (an orphan output would reach the model as a tool message without its call on
/// every later turn, which vendors reject), and a message's `file_id`s name files of this session.
pub async fn check_references(store: &Store, session: &SessionId, input: &Input) -> Result<(), SessionError> {
    match input {
        Input::FunctionCallOutput { call_id, .. } => {
            let items = store.items_for_call(session, call_id).await?;
            let of_type = |t: &str| items.iter().find(|i| i.item_type == t);
            let waiting = of_type("function_call").is_some_and(|c| c.status == "action_required")
                && of_type("function_call_output").is_none();
            if !waiting {
                if store.get_session(session).await?.is_none() {
                    return Err(SessionError::NotFound(session.clone()));
                }
                return Err(SessionError::NoPendingCall(crate::ids::truncate(call_id, 80)));
            }
        }
        Input::Message { content, .. } => {
            for (i, part) in content.iter().enumerate() {
                if let Some(file_id) = part.get("file_id").and_then(Value::as_str)
                    && store.get_file(session, file_id).await?.is_none()
                {
                    return Err(SessionError::Invalid(format!(
                        "content[{i}]: this session has no file '{}' (upload it first)",
                        crate::ids::truncate(file_id, 80)
                    )));
                }
            }
        }
        Input::Interrupt | Input::Approval { .. } | Input::Compact { .. } => {}
    }
    Ok(())
}

fn required_str(data: &Map<String, Value>, key: &str) -> Result<String, String> {
    match data.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!("data.{key} must be a non-empty string")),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(t: &str, data: Value) -> Result<Input, String> {
        Input::parse(EventInput { event_type: t.into(), data, model_override: None, tools: None, created_by: None })
    }

    #[test]
    fn message_accepts_string_and_parts() {
        let m = input("message", json!({"role": "user", "content": "hi"})).unwrap();
        assert_eq!(m, Input::Message { content: vec![json!({"type": "input_text", "text": "hi"})], created_by: None });
        assert!(input("message", json!({"content": [{"type": "input_text", "text": "x"}]})).is_ok());
    }

    #[test]
    fn bad_inputs_say_what_is_wrong() {
        let err = input("bogus", json!({})).unwrap_err();
        assert!(err.contains("allowed types: message, function_call_output, interrupt, approval"), "{err}");
        assert!(input("message", json!({"content": []})).unwrap_err().contains("empty"));
        assert!(input("message", json!({"role": "assistant", "content": "x"})).unwrap_err().contains("role"));
        assert!(input("message", json!({"content": [{"type": "input_text"}]})).unwrap_err().contains("text"));
        assert!(input("message", json!([1])).unwrap_err().contains("JSON object"));
        assert!(input("approval", json!({"elicitation_id": "e", "action": "maybe"})).unwrap_err().contains("accept"));
        assert!(input("function_call_output", json!({"call_id": "c"})).unwrap_err().contains("output"));
    }
}
