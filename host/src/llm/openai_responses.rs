//! OpenAI Responses (`POST {base_url}/responses`, streaming): OpenAI's newer wire, the only one some models speak
//! (and the one Codex uses). The conversation goes as `input` items — messages, `function_call` and
//! `function_call_output` — the system prompt as `instructions`; nothing is stored at the vendor (`store: false`),
//! so every call carries the whole conversation, as on the other wires.

use serde_json::{Value, json};

use super::{ChatRequest, Endpoint, LlmError, Streamed, empty_usage, normalize_calls, open_stream, transport_error};
use omnigent_runtime::harness::{Role, ToolCall, Usage, llm::Completion};

const WHO: &str = "the OpenAI Responses endpoint";

pub struct OpenAiResponses(pub Endpoint);

impl OpenAiResponses {
    pub async fn complete(
        &self,
        req: &ChatRequest,
        on_delta: &mut (dyn FnMut(Streamed<'_>) + Send),
    ) -> Result<Completion, LlmError> {
        let request = self.0.post("responses").bearer_auth(&self.0.api_key).json(&body(req));
        let mut reader = open_stream(request, WHO).await?;
        let mut text = String::new();
        let mut calls: Vec<ToolCall> = Vec::new();
        let mut usage = empty_usage();
        let mut finished = None;
        while let Some(frame) = reader.next().await.map_err(|e| transport_error(e, WHO))? {
            if frame.data.trim() == "[DONE]" {
                break;
            }
            let event: Value = serde_json::from_str(&frame.data)
                .map_err(|e| LlmError::Transient { message: format!("unreadable stream event ({e})") })?;
            match event["type"].as_str().unwrap_or_default() {
                "response.output_text.delta" => {
                    if let Some(t) = event["delta"].as_str().filter(|t| !t.is_empty()) {
                        text.push_str(t);
                        on_delta(Streamed::Text(t));
                    }
                }
                "response.reasoning_summary_text.delta" => {
                    if let Some(t) = event["delta"].as_str().filter(|t| !t.is_empty()) {
                        on_delta(Streamed::ReasoningSummary(t));
                    }
                }
                "response.output_item.done" if event["item"]["type"] == "function_call" => {
                    let item = &event["item"];
                    calls.push(ToolCall {
                        id: item["call_id"].as_str().unwrap_or_default().to_string(),
                        name: item["name"].as_str().unwrap_or_default().to_string(),
                        arguments: item["arguments"].as_str().unwrap_or_default().to_string(),
                    });
                }
                "response.completed" | "response.incomplete" => {
                    let r = &event["response"];
                    usage = Usage {
                        input_tokens: r["usage"]["input_tokens"].as_u64().unwrap_or(0),
                        output_tokens: r["usage"]["output_tokens"].as_u64().unwrap_or(0),
                    };
                    finished = Some(match r["incomplete_details"]["reason"].as_str() {
                        Some("max_output_tokens") => "length".to_string(),
                        Some(other) => other.to_string(),
                        None if calls.is_empty() => "stop".to_string(),
                        None => "tool_calls".to_string(),
                    });
                    break;
                }
                "response.failed" | "error" => {
                    let error = if event["type"] == "error" { &event } else { &event["response"]["error"] };
                    let code = error["code"].as_str().unwrap_or("llm_error");
                    let message = format!("{WHO} failed the response: {}", error["message"].as_str().unwrap_or(code));
                    // The vendor's own overload and rate errors are worth another attempt.
                    return Err(match code {
                        "rate_limit_exceeded" => LlmError::RateLimited { retry_after: None, message },
                        "server_error" | "server_is_overloaded" => LlmError::Transient { message },
                        _ => LlmError::Fatal { code: "llm_error".into(), message },
                    });
                }
                _ => {}
            }
        }
        let Some(stop_reason) = finished else {
            return Err(LlmError::Transient { message: "the stream ended before the response finished".into() });
        };
        for (i, call) in calls.iter_mut().enumerate() {
            if call.id.is_empty() {
                call.id = format!("call_{i}_{}", &crate::ids::random_hex()[..12]);
            }
        }
        Ok(Completion { text, tool_calls: normalize_calls(calls), usage, stop_reason })
    }
}

fn body(req: &ChatRequest) -> Value {
    let mut input = Vec::new();
    for m in &req.messages {
        match m.role {
            Role::System => input.push(json!({"role": "system", "content": m.content})),
            Role::User => input.push(json!({"role": "user", "content": m.content})),
            Role::Assistant => {
                if !m.content.is_empty() {
                    input.push(json!({"role": "assistant", "content": m.content}));
                }
                for c in &m.tool_calls {
                    input.push(
                        json!({"type": "function_call", "call_id": c.id, "name": c.name, "arguments": c.arguments}),
                    );
                }
            }
            Role::Tool => input.push(json!({"type": "function_call_output", "call_id": m.tool_call_id,
                "output": m.content})),
        }
    }
    let mut body = json!({"model": req.model, "input": input, "stream": true, "store": false});
    if let Some(system) = &req.system {
        body["instructions"] = system.as_str().into();
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                let params: Value = serde_json::from_str(&t.parameters).unwrap_or(json!({"type": "object"}));
                json!({"type": "function", "name": t.name, "description": t.description, "parameters": params})
            })
            .collect();
    }
    if let Some(max) = req.max_tokens {
        body["max_output_tokens"] = max.into();
    }
    // Reasoning models summarize their reasoning when asked (the summary is streamed and kept; the reasoning is not).
    if req.reasoning_effort.is_some() || reasons(&req.model) {
        body["reasoning"] = json!({"summary": "auto"});
    }
    if let Some(effort) = &req.reasoning_effort {
        body["reasoning"]["effort"] = effort.as_str().into();
    }
    body
}

/// Whether a model reasons (OpenAI's o-series, GPT-5, Codex, deep research): only those take `reasoning`.
fn reasons(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p)) || m.contains("codex") || m.contains("deep-research")
}

#[cfg(test)]
mod tests {
    use omnigent_runtime::harness::{Message, ToolSpec};

    use super::*;

    #[test]
    fn the_conversation_becomes_input_items() {
        let message =
            |role, content: &str| Message { role, content: content.into(), tool_calls: vec![], tool_call_id: None };
        let mut assistant = message(Role::Assistant, "Looking.");
        assistant.tool_calls.push(ToolCall { id: "c1".into(), name: "shell".into(), arguments: "{}".into() });
        let mut result = message(Role::Tool, "a.txt");
        result.tool_call_id = Some("c1".into());
        let req = ChatRequest {
            model: "gpt-5".into(),
            system: Some("Be terse.".into()),
            messages: vec![message(Role::User, "ls"), assistant, result],
            tools: vec![ToolSpec { name: "shell".into(), description: "Run".into(), parameters: "{}".into() }],
            max_tokens: Some(100),
            reasoning_effort: Some("low".into()),
        };
        let b = body(&req);
        assert_eq!(b["instructions"], "Be terse.");
        assert_eq!(b["input"].as_array().unwrap().len(), 4);
        assert_eq!(
            b["input"][2],
            json!({"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"})
        );
        assert_eq!(b["input"][3], json!({"type": "function_call_output", "call_id": "c1", "output": "a.txt"}));
        assert_eq!(b["tools"][0]["name"], "shell");
        assert_eq!((b["max_output_tokens"].as_u64(), &b["reasoning"]["effort"]), (Some(100), &json!("low")));
        assert_eq!(b["store"], false);
    }
}
