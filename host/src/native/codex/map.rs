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
pub fn items(item: &Value) -> Vec<(String, &'static str, Value)> {
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
            // The recorder wrote some control characters raw (not JSON): read them as spaces.
            .map(|(_, json)| json.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>())
            .filter_map(|json| serde_json::from_str::<Value>(&json).ok())
            .filter(|v| v.get("id").is_none())
            .map(|v| map(v["method"].as_str().unwrap_or_default(), &v["params"]))
            .filter(|s| *s != Seen::Nothing)
            .collect()
    }

    fn items_of(seen: &[Seen]) -> Vec<(String, &'static str, Value)> {
        seen.iter().filter_map(|s| if let Seen::Items(i) = s { Some(i.clone()) } else { None }).flatten().collect()
    }

    // The recorder cut lines at ~600 characters: long notifications (a finished command, the turn's end) are
    // rebuilt below from their recorded fields.

    #[test]
    fn a_plain_turn_is_a_message_with_deltas() {
        let seen = recorded("as-plain.log");
        let items = items_of(&seen);
        assert_eq!(items.len(), 1, "{seen:?}");
        assert_eq!(items[0].2["content"][0]["text"], "Codex ran plain.");
        assert!(seen.iter().any(|s| matches!(s, Seen::Delta { delta, .. } if delta == "Codex ")));
        let end = json!({"threadId": "t", "turn": {"id": "01a2351f-671f", "status": "completed", "error": null}});
        assert_eq!(
            map("turn/completed", &end),
            Seen::Ended { turn: "01a2351f-671f".into(), status: "completed".into(), error: None }
        );
    }

    #[test]
    fn an_approved_command_is_a_call_and_its_output() {
        let seen = recorded("as-accept.log");
        assert!(seen.iter().any(|s| matches!(s, Seen::Resolved(_))), "{seen:?}");
        assert_eq!(items_of(&seen)[0].2["content"][0]["text"], "Codex wrote c1.");
        let item = json!({"type": "commandExecution", "id": "call_1a986877", "command": "/bin/bash -lc 'echo codex > c1.txt'",
            "cwd": "/w", "status": "completed", "aggregatedOutput": null, "exitCode": 0});
        let items = items_of(&[map("item/completed", &json!({"item": item}))]);
        let kinds: Vec<&str> = items.iter().map(|i| i.1).collect();
        assert_eq!(kinds, ["function_call", "function_call_output"]);
        assert_eq!(items[0].2["call_id"], items[1].2["call_id"]);
        assert_eq!(items[1].2["is_error"], false);
    }

    #[test]
    fn a_declined_command_is_an_error_output() {
        let item = json!({"type": "commandExecution", "id": "call_2", "command": "rm -rf x", "cwd": "/w",
            "status": "declined", "aggregatedOutput": null, "exitCode": null});
        let items = items_of(&[map("item/completed", &json!({"item": item}))]);
        assert_eq!(items[1].2["is_error"], true, "{items:?}");
        assert_eq!(items[1].2["output"], "the command was declined");
    }
}
