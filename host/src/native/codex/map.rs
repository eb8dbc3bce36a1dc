//! What the codex app-server's notifications mean for the session: items (ids are codex's own, so reading one
//! twice can never make two), text deltas, usage, and the turn's end.

use serde_json::{Value, json};

/// One notification, as the session sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Seen {
    /// Transcript items (a command is a call and its output).
    Items(Vec<(String, &'static str, Value)>),
    /// Streamed assistant text of item `id`.
    Delta {
        id: String,
        delta: String,
    },
    /// The thread's token counts so far (codex reports running totals).
    Usage {
        input_tokens: u64,
        output_tokens: u64,
    },
    /// A turn started (`turn/started`): its id.
    Started(String),
    /// The turn ended: `completed`, `interrupted` or `failed` (with codex's message).
    Ended {
        turn: String,
        status: String,
        error: Option<String>,
    },
    /// The human answered an approval in the TUI (or it went away): the JSON-RPC request id.
    Resolved(Value),
    Nothing,
}

/// What a notification means.
pub fn map(method: &str, params: &Value) -> Seen {
    match method {
        "item/agentMessage/delta" => Seen::Delta {
            id: params["itemId"].as_str().unwrap_or_default().to_string(),
            delta: params["delta"].as_str().unwrap_or_default().to_string(),
        },
        "item/completed" => Seen::Items(items(&params["item"])),
        "thread/tokenUsage/updated" => {
            let total = &params["tokenUsage"]["total"];
            Seen::Usage {
                input_tokens: total["inputTokens"].as_u64().unwrap_or(0),
                output_tokens: total["outputTokens"].as_u64().unwrap_or(0),
            }
        }
        "turn/started" => Seen::Started(params["turn"]["id"].as_str().unwrap_or_default().to_string()),
        "turn/completed" => {
            let turn = &params["turn"];
            let error = match &turn["error"] {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                e => Some(e["message"].as_str().map(str::to_string).unwrap_or_else(|| e.to_string())),
            };
            Seen::Ended {
                turn: turn["id"].as_str().unwrap_or_default().to_string(),
                status: turn["status"].as_str().unwrap_or("completed").to_string(),
                error,
            }
        }
        "serverRequest/resolved" => Seen::Resolved(params["requestId"].clone()),
        _ => Seen::Nothing,
    }
}

/// A finished codex item as transcript items.
fn items(item: &Value) -> Vec<(String, &'static str, Value)> {
    let id = item["id"].as_str().unwrap_or_default().to_string();
    match item["type"].as_str().unwrap_or_default() {
        "agentMessage" => {
            let text = item["text"].as_str().unwrap_or_default();
            if text.is_empty() {
                return Vec::new();
            }
            let content = json!([{"type": "output_text", "text": text, "annotations": []}]);
            vec![(id, "message", json!({"role": "assistant", "content": content}))]
        }
        "commandExecution" => {
            let arguments = json!({"command": item["command"], "cwd": item["cwd"]}).to_string();
            let status = item["status"].as_str().unwrap_or_default();
            let failed = status != "completed" || item["exitCode"].as_i64().is_some_and(|c| c != 0);
            let output = match (item["aggregatedOutput"].as_str(), status) {
                (Some(out), _) => out.to_string(),
                (None, "declined") => "the command was declined".to_string(),
                (None, _) => String::new(),
            };
            vec![
                (format!("fc_{id}"), "function_call", json!({"name": "shell", "arguments": arguments, "call_id": id})),
                (
                    format!("fco_{id}"),
                    "function_call_output",
                    json!({"call_id": id, "output": output, "is_error": failed, "exit_code": item["exitCode"]}),
                ),
            ]
        }
        "fileChange" => {
            let arguments = json!({"changes": item["changes"]}).to_string();
            let status = item["status"].as_str().unwrap_or_default();
            vec![
                (
                    format!("fc_{id}"),
                    "function_call",
                    json!({"name": "apply_patch", "arguments": arguments, "call_id": id}),
                ),
                (
                    format!("fco_{id}"),
                    "function_call_output",
                    json!({"call_id": id, "output": status, "is_error": status != "completed"}),
                ),
            ]
        }
        "reasoning" => {
            let text: Vec<&str> = item["summary"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if text.is_empty() {
                return Vec::new();
            }
            vec![(id, "reasoning", json!({"summary": [{"type": "summary_text", "text": text.join("\n")}]}))]
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/native/codex/fixtures");

    /// The notifications of a recorded app-server session (`<time> << {json}` lines).
    fn recorded(name: &str) -> Vec<Seen> {
        let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
        text.lines()
            .filter_map(|l| l.split_once(" << "))
            .filter_map(|(_, json)| serde_json::from_str::<Value>(json).ok())
            .filter(|v| v.get("id").is_none())
            .map(|v| map(v["method"].as_str().unwrap_or_default(), &v["params"]))
            .filter(|s| *s != Seen::Nothing)
            .collect()
    }

    #[test]
    fn a_plain_turn_is_a_message_and_its_end() {
        let seen = recorded("as-plain.log");
        let items: Vec<_> =
            seen.iter().filter_map(|s| if let Seen::Items(i) = s { Some(i.clone()) } else { None }).flatten().collect();
        assert_eq!(items.len(), 1, "{seen:?}");
        assert_eq!(items[0].2["content"][0]["text"], "Codex ran plain.");
        assert!(seen.iter().any(|s| matches!(s, Seen::Delta { .. })));
        assert!(matches!(seen.last(), Some(Seen::Ended { status, .. }) if status == "completed"), "{seen:?}");
    }

    #[test]
    fn an_approved_command_is_a_call_and_its_output() {
        let seen = recorded("as-accept.log");
        let kinds: Vec<&str> = seen
            .iter()
            .filter_map(|s| if let Seen::Items(i) = s { Some(i.clone()) } else { None })
            .flatten()
            .map(|i| i.1)
            .collect();
        assert_eq!(kinds, ["function_call", "function_call_output", "message"], "{seen:?}");
        assert!(seen.iter().any(|s| matches!(s, Seen::Resolved(_))));
    }

    #[test]
    fn a_declined_command_is_an_error_output() {
        let seen = recorded("as-decline.log");
        let output = seen
            .iter()
            .filter_map(|s| if let Seen::Items(i) = s { Some(i.clone()) } else { None })
            .flatten()
            .find(|i| i.1 == "function_call_output")
            .unwrap();
        assert_eq!(output.2["is_error"], true, "{output:?}");
    }
}
