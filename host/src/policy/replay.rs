//! A session's recorded log read as the events its policies judged (`omnigent plugin test`): a user message is a
//! `request`, a tool call a `tool_call`, its output a `tool_result` (with the call as `request_data`), a completed
//! response the `response` (its last assistant text). Model calls are not in the log, so `llm_request` /
//! `llm_response` are not replayed.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::Phase;

/// One event a policy judges.
#[derive(Debug, PartialEq)]
pub struct Judged {
    pub phase: Phase,
    pub target: Option<String>,
    pub data: Value,
    pub request_data: Option<Value>,
}

/// Reads log events in order, remembering tool calls for their results.
#[derive(Default)]
pub struct Replay {
    calls: HashMap<String, (String, Value)>,
    /// The newest assistant text of the response in progress (its answer, once it completes).
    answer: Option<String>,
}

impl Replay {
    /// What a logged event (a stream frame's JSON, which names its `type`) was for the policies, if anything.
    pub fn judged(&mut self, event: &Value) -> Option<Judged> {
        match event["type"].as_str()? {
            "session.input.consumed" if event.pointer("/data/type")? == "message" => {
                let content = event.pointer("/data/data/content")?;
                Some(Judged {
                    phase: Phase::Request,
                    target: None,
                    data: json!({"user_content": text_of(content)}),
                    request_data: None,
                })
            }
            "response.output_item.done" => self.item(&event["item"]),
            "response.completed" => {
                let text = self.answer.take()?;
                Some(Judged { phase: Phase::Response, target: None, data: json!({"text": text}), request_data: None })
            }
            _ => None,
        }
    }

    fn item(&mut self, item: &Value) -> Option<Judged> {
        match item["type"].as_str()? {
            "function_call" => {
                let name = item["name"].as_str()?.to_string();
                let arguments = match &item["arguments"] {
                    Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
                    other => other.clone(),
                };
                let call = json!({"name": name, "arguments": arguments});
                if let Some(id) = item["call_id"].as_str() {
                    self.calls.insert(id.to_string(), (name.clone(), call.clone()));
                }
                Some(Judged { phase: Phase::ToolCall, target: Some(name), data: call, request_data: None })
            }
            "function_call_output" => {
                let (name, call) = self.calls.get(item["call_id"].as_str()?)?.clone();
                let result = match &item["output"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let data = json!({"result": result, "is_error": false});
                Some(Judged { phase: Phase::ToolResult, target: Some(name), data, request_data: Some(call) })
            }
            "message" if item["role"] == "assistant" => {
                self.answer = Some(text_of(&item["content"]));
                None
            }
            _ => None,
        }
    }
}

/// The text of a message's content: a string, or the text of its parts.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_reads_as_request_call_result_and_response() {
        let mut replay = Replay::default();
        let events = [
            json!({"type": "session.input.consumed", "data": {"type": "message", "data": {"role": "user",
                "content": [{"type": "input_text", "text": "list it"}]}}}),
            json!({"type": "session.status", "status": "running"}),
            json!({"type": "response.output_item.done", "item": {"type": "function_call", "name": "shell",
                "call_id": "c1", "arguments": "{\"command\": \"ls\"}"}}),
            json!({"type": "response.output_item.done", "item": {"type": "function_call_output", "call_id": "c1",
                "output": "a b"}}),
            json!({"type": "response.output_item.done", "item": {"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Done."}]}}),
            json!({"type": "response.completed", "response": {"id": "resp_1"}}),
        ];
        let judged: Vec<Judged> = events.iter().filter_map(|e| replay.judged(e)).collect();
        let phases: Vec<Phase> = judged.iter().map(|j| j.phase).collect();
        assert_eq!(phases, [Phase::Request, Phase::ToolCall, Phase::ToolResult, Phase::Response]);
        assert_eq!(judged[0].data, json!({"user_content": "list it"}));
        assert_eq!(judged[1].data, json!({"name": "shell", "arguments": {"command": "ls"}}));
        assert_eq!(judged[2].request_data, Some(judged[1].data.clone()));
        assert_eq!(judged[3].data, json!({"text": "Done."}));
    }
}
