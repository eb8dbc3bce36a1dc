//! Anthropic Messages (`POST {base_url}/v1/messages`, streaming).

use serde_json::{Value, json};

use super::{ChatRequest, Endpoint, LlmError, Streamed, empty_usage, normalize_calls, open_stream, transport_error};
use omnigent_runtime::harness::{Role, ToolCall, llm::Completion};

pub struct Anthropic(pub Endpoint);

const DEFAULT_MAX_TOKENS: u32 = 8192;

impl Anthropic {
    pub async fn complete(
        &self,
        req: &ChatRequest,
        on_delta: &mut (dyn FnMut(Streamed<'_>) + Send),
    ) -> Result<Completion, LlmError> {
        let request = self
            .0
            .post("v1/messages")
            .header("x-api-key", &self.0.api_key)
            .header("anthropic-version", "2023-06-01")
            .json(&body(req));
        let mut reader = open_stream(request, "Anthropic").await?;
        let mut text = String::new();
        let mut calls: Vec<ToolCall> = Vec::new();
        // Content block index → position in `calls` for tool_use blocks.
        let mut block_call: Vec<Option<usize>> = Vec::new();
        let mut usage = empty_usage();
        let mut stop = String::new();
        let mut finished = false;
        while let Some(frame) = reader.next().await.map_err(|e| transport_error(e, "Anthropic"))? {
            let event: Value = serde_json::from_str(&frame.data)
                .map_err(|e| LlmError::Transient { message: format!("unreadable stream event ({e})") })?;
            match event["type"].as_str().unwrap_or_default() {
                "message_start" => {
                    usage.input_tokens = event["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
                }
                "content_block_start" => {
                    let index = event["index"].as_u64().unwrap_or(0) as usize;
                    while block_call.len() <= index {
                        block_call.push(None);
                    }
                    let block = &event["content_block"];
                    if block["type"] == "tool_use" {
                        calls.push(ToolCall {
                            id: block["id"].as_str().unwrap_or_default().to_string(),
                            name: block["name"].as_str().unwrap_or_default().to_string(),
                            arguments: String::new(),
                        });
                        block_call[index] = Some(calls.len() - 1);
                    }
                }
                "content_block_delta" => {
                    let index = event["index"].as_u64().unwrap_or(0) as usize;
                    let delta = &event["delta"];
                    match delta["type"].as_str().unwrap_or_default() {
                        "text_delta" => {
                            if let Some(t) = delta["text"].as_str() {
                                text.push_str(t);
                                on_delta(Streamed::Text(t));
                            }
                        }
                        "input_json_delta" => {
                            if let Some(Some(call)) = block_call.get(index) {
                                calls[*call].arguments.push_str(delta["partial_json"].as_str().unwrap_or_default());
                            }
                        }
                        _ => {}
                    }
                }
                "message_delta" => {
                    if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                        stop = reason.to_string();
                    }
                    if let Some(out) = event["usage"]["output_tokens"].as_u64() {
                        usage.output_tokens = out;
                    }
                }
                "message_stop" => {
                    finished = true;
                    break;
                }
                "error" => {
                    let kind = event["error"]["type"].as_str().unwrap_or("error");
                    let message = format!(
                        "Anthropic stream error ({kind}): {}",
                        event["error"]["message"].as_str().unwrap_or("")
                    );
                    return Err(if kind == "overloaded_error" || kind == "api_error" {
                        LlmError::Transient { message }
                    } else if kind == "rate_limit_error" {
                        LlmError::RateLimited { retry_after: None, message }
                    } else {
                        LlmError::Fatal { code: "llm_error".into(), message }
                    });
                }
                _ => {}
            }
        }
        if !finished {
            return Err(LlmError::Transient { message: "the stream ended before message_stop".into() });
        }
        let stop_reason = if stop == "tool_use" { "tool_calls".to_string() } else { stop };
        Ok(Completion { text, tool_calls: normalize_calls(calls), usage, stop_reason })
    }
}

fn body(req: &ChatRequest) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    let mut system = req.system.clone().unwrap_or_default();
    for m in &req.messages {
        let (role, block) = match m.role {
            Role::System => {
                if !system.is_empty() {
                    system.push_str("\n\n");
                }
                system.push_str(&m.content);
                continue;
            }
            Role::User => ("user", vec![json!({"type": "text", "text": m.content})]),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    let input: Value = serde_json::from_str(&c.arguments).unwrap_or(json!({}));
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
                ("assistant", blocks)
            }
            Role::Tool => {
                ("user", vec![json!({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content})])
            }
        };
        // Anthropic wants alternating roles: merge consecutive blocks of the same role (e.g. several tool results).
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                last["content"].as_array_mut().expect("content is an array").extend(block);
            }
            _ => messages.push(json!({"role": role, "content": block})),
        }
    }
    let mut body = json!({
        "model": req.model,
        "max_tokens": req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": true,
    });
    if !system.is_empty() {
        body["system"] = system.into();
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                let schema: Value = serde_json::from_str(&t.parameters).unwrap_or(json!({"type": "object"}));
                json!({"name": t.name, "description": t.description, "input_schema": schema})
            })
            .collect();
    }
    body
}
