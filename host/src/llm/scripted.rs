//! The `scripted` provider: a DEMO/TEST provider that answers from `executor.script` in the session config,
//! with no network and no key. Reply N of the script answers the N-th model call of the session (counted from
//! the assistant messages in the conversation), so it is deterministic and survives restarts.

use omnigent_runtime::harness::{Role, ToolCall, Usage, llm::Completion};

use super::{ChatRequest, LlmError, Streamed};
use crate::config::ScriptStep;

pub struct Scripted {
    pub script: Vec<ScriptStep>,
}

impl Scripted {
    pub async fn complete(
        &self,
        req: &ChatRequest,
        on_delta: &mut (dyn FnMut(Streamed<'_>) + Send),
    ) -> Result<Completion, LlmError> {
        let n = req.messages.iter().filter(|m| m.role == Role::Assistant).count();
        let Some(step) = self.script.get(n) else {
            return Err(LlmError::Fatal {
                code: "script_exhausted".into(),
                message: format!("the scripted provider has {} replies and all were used", self.script.len()),
            });
        };
        let text = step.text.clone().unwrap_or_default();
        // Stream it word by word, as a real model would (slowly, when the step asks).
        let delay = step.delay_ms.map(std::time::Duration::from_millis);
        for piece in text.split_inclusive(' ') {
            match delay {
                Some(pause) => tokio::time::sleep(pause).await,
                None => tokio::task::yield_now().await,
            }
            on_delta(Streamed::Text(piece));
        }
        let tool_calls: Vec<ToolCall> = step
            .tool_call
            .iter()
            .chain(step.tool_calls.iter())
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: format!("call_s{n}_{i}"),
                name: c.name.clone(),
                arguments: if c.arguments.is_null() { "{}".into() } else { c.arguments.to_string() },
            })
            .collect();
        let words = |s: &str| s.split_whitespace().count() as u64;
        let input_tokens =
            req.messages.iter().map(|m| words(&m.content)).sum::<u64>() + req.system.as_deref().map(words).unwrap_or(0);
        let stop_reason = if tool_calls.is_empty() { "stop" } else { "tool_calls" };
        Ok(Completion {
            usage: Usage { input_tokens, output_tokens: words(&text) + tool_calls.len() as u64 },
            text,
            tool_calls,
            stop_reason: stop_reason.into(),
        })
    }
}
