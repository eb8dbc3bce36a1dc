//! OpenAI-compatible Chat Completions (`POST {base_url}/chat/completions`, streaming). Works with any gateway that
//! speaks it: Ollama, vLLM, OpenRouter, LiteLLM.

use serde_json::{Value, json};

use super::{ChatRequest, Endpoint, LlmError, Streamed, empty_usage, normalize_calls, open_stream, transport_error};
use omnigent_runtime::harness::{Role, ToolCall, Usage, llm::Completion};

pub struct OpenAi(pub Endpoint);

impl OpenAi {
    pub async fn complete(
        &self,
        req: &ChatRequest,
        on_delta: &mut (dyn FnMut(Streamed<'_>) + Send),
    ) -> Result<Completion, LlmError> {
        let request = self.0.post("chat/completions").bearer_auth(&self.0.api_key).json(&body(req));
        let mut reader = open_stream(request, "the OpenAI-compatible endpoint").await?;
        let mut text = String::new();
        let mut calls: Vec<ToolCall> = Vec::new();
        let mut usage = empty_usage();
        let mut stop = String::new();
        let mut done = false;
        while let Some(frame) = reader.next().await.map_err(|e| transport_error(e, "the OpenAI-compatible endpoint"))? {
            if frame.data.trim() == "[DONE]" {
                done = true;
                break;
            }
            let chunk: Value = serde_json::from_str(&frame.data)
                .map_err(|e| LlmError::Transient { message: format!("unreadable stream chunk ({e})") })?;
            if let Some(err) = chunk.get("error") {
                return Err(LlmError::Fatal {
                    code: "llm_error".into(),
                    message: format!("provider error in stream: {err}"),
                });
            }
            if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                usage = Usage {
                    input_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
                    output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
                };
            }
            let Some(choice) = chunk["choices"].get(0) else { continue };
            let delta = &choice["delta"];
            if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
                text.push_str(t);
                on_delta(Streamed::Text(t));
            }
            for tc in delta["tool_calls"].as_array().into_iter().flatten() {
                let index = tc["index"].as_u64().unwrap_or(calls.len() as u64) as usize;
                while calls.len() <= index {
                    calls.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
                }
                let call = &mut calls[index];
                if let Some(id) = tc["id"].as_str() {
                    call.id = id.to_string();
                }
                if let Some(name) = tc["function"]["name"].as_str() {
                    call.name.push_str(name);
                }
                if let Some(args) = tc["function"]["arguments"].as_str() {
                    call.arguments.push_str(args);
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                stop = reason.to_string();
            }
        }
        if !done && stop.is_empty() {
            return Err(LlmError::Transient { message: "the stream ended before the response finished".into() });
        }
        for (i, call) in calls.iter_mut().enumerate() {
            if call.id.is_empty() {
                call.id = format!("call_{i}_{}", &crate::ids::random_hex()[..12]);
            }
        }
        Ok(Completion { text, tool_calls: normalize_calls(calls), usage, stop_reason: stop })
    }
}

fn body(req: &ChatRequest) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &req.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for m in &req.messages {
        messages.push(match m.role {
            Role::System => json!({"role": "system", "content": m.content}),
            Role::User => json!({"role": "user", "content": m.content}),
            Role::Assistant => {
                let mut v = json!({"role": "assistant", "content": if m.content.is_empty() { Value::Null } else { m.content.clone().into() }});
                if !m.tool_calls.is_empty() {
                    v["tool_calls"] = m
                        .tool_calls
                        .iter()
                        .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                        .collect();
                }
                v
            }
            Role::Tool => json!({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}),
        });
    }
    let mut body = json!({
        "model": req.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                let params: Value = serde_json::from_str(&t.parameters).unwrap_or(json!({"type": "object"}));
                json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": params}})
            })
            .collect();
    }
    if let Some(max) = req.max_tokens {
        body["max_tokens"] = max.into();
    }
    if let Some(effort) = &req.reasoning_effort {
        body["reasoning_effort"] = effort.as_str().into();
    }
    body
}
