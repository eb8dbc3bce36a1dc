//! A transcript brought in whole (`omnigent session import`, `initial_items` holding a past conversation): its
//! items become the session's history as they were — assistant messages, tool calls and their outputs included —
//! and no turn runs. The harness reads them as the conversation so far on the next message.

use serde_json::{Map, Value};

use super::EventInput;
use crate::ids::prefixed;
use crate::protocol::{self, NewEvent};
use crate::record::{now_us, secs};

/// Item types a history may hold (the ones the conversation is made of).
const HISTORY_TYPES: [&str; 4] = ["message", "function_call", "function_call_output", "reasoning"];
/// Who created imported items, as the transcript shows it.
const IMPORTED_BY: &str = "import";

/// Whether `initial_items` describe a past conversation rather than input for a first turn: any item a client
/// could not send live (an assistant message, a tool call, reasoning).
pub fn is_history(items: &[EventInput]) -> bool {
    items.iter().any(|i| match i.event_type.as_str() {
        "message" => i.data.get("role").and_then(Value::as_str).is_some_and(|r| r != "user"),
        "function_call" | "reasoning" => true,
        _ => false,
    })
}

/// The events that write `items` into a session's transcript, in order. Errors name the item.
pub fn events(items: Vec<EventInput>) -> Result<Vec<NewEvent>, String> {
    let created_at = secs(now_us());
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| event(raw, created_at).map_err(|e| format!("initial_items[{i}]: {e}")))
        .collect()
}

fn event(raw: EventInput, created_at: i64) -> Result<NewEvent, String> {
    let t = raw.event_type.as_str();
    if !HISTORY_TYPES.contains(&t) {
        return Err(format!(
            "a history item must be one of {}, got '{}'",
            HISTORY_TYPES.join(", "),
            crate::ids::truncate(t, 40)
        ));
    }
    let Value::Object(mut data) = raw.data else { return Err("'data' must be a JSON object".into()) };
    // Ids and times are this server's: an export's are dropped.
    for envelope in ["id", "object", "status", "response_id", "created_at", "created_by", "type"] {
        data.remove(envelope);
    }
    check(t, &data)?;
    let user = t == "message" && data.get("role").and_then(Value::as_str) == Some("user");
    if user {
        return Ok(protocol::input_consumed(&prefixed("msg"), t, Value::Object(data), Some(IMPORTED_BY.into())));
    }
    let prefix = match t {
        "message" => "msg",
        "function_call" => "fc",
        "function_call_output" => "fco",
        _ => "rs",
    };
    let mut item = protocol::item(&prefixed(prefix), t, "completed", "", created_at, Value::Object(data));
    item["response_id"] = Value::Null;
    item["created_by"] = IMPORTED_BY.into();
    Ok(protocol::output_item_done(item))
}

/// The fields the conversation needs of each type.
fn check(item_type: &str, data: &Map<String, Value>) -> Result<(), String> {
    let text = |key: &str| data.get(key).and_then(Value::as_str).is_some();
    match item_type {
        "message" => {
            match data.get("role").and_then(Value::as_str) {
                Some("user" | "assistant" | "system" | "developer") => {}
                _ => return Err("a message needs role user, assistant, system or developer".into()),
            }
            match data.get("content") {
                Some(Value::String(_) | Value::Array(_)) => Ok(()),
                _ => Err("a message needs content (a string or an array of parts)".into()),
            }
        }
        "function_call" if text("call_id") && text("name") => Ok(()),
        "function_call" => Err("a function_call needs call_id and name".into()),
        "function_call_output" if text("call_id") && data.contains_key("output") => Ok(()),
        "function_call_output" => Err("a function_call_output needs call_id and output".into()),
        _ => Ok(()),
    }
}
