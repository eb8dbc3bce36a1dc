//! `omnigent plugin test HARNESS.wasm --script F`: one turn of a harness against a scripted model, offline. The
//! host side of the turn answers from the script and prints every call the harness makes, in order.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use omnigent_runtime::harness::{Error, LogLevel, Message, Role, ToolCall, ToolSpec, TurnInput, Usage, llm, tools};
use omnigent_runtime::{Runtime, TurnHost, TurnLimits};
use serde::Deserialize;
use serde_json::Value;

/// One line of a script.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    user: Option<String>,
    tool: Option<ScriptedTool>,
    model: Option<Reply>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ScriptedTool {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "object_schema")]
    parameters: Value,
    /// What every call of the tool returns.
    #[serde(default = "ok")]
    output: String,
    #[serde(default)]
    is_error: bool,
}

fn object_schema() -> Value {
    serde_json::json!({"type": "object"})
}

fn ok() -> String {
    "ok".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    #[serde(default)]
    text: String,
    #[serde(default)]
    tool_calls: Vec<ScriptedCall>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedCall {
    name: String,
    #[serde(default = "object_schema")]
    arguments: Value,
}

/// The script, read.
struct Script {
    history: Vec<Message>,
    tools: Vec<ScriptedTool>,
    replies: VecDeque<Reply>,
}

fn read_script(path: &PathBuf) -> Result<Script, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot be read: {e}", path.display()))?;
    let mut script = Script { history: vec![], tools: vec![], replies: VecDeque::new() };
    for (n, raw) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = format!("{}:{}", path.display(), n + 1);
        let line: Line = serde_json::from_str(raw).map_err(|e| format!("{at}: {e}"))?;
        match line {
            Line { user: Some(text), tool: None, model: None } => {
                script.history.push(Message { role: Role::User, content: text, tool_calls: vec![], tool_call_id: None })
            }
            Line { user: None, tool: Some(tool), model: None } => script.tools.push(tool),
            Line { user: None, tool: None, model: Some(reply) } => script.replies.push_back(reply),
            _ => return Err(format!("{at}: a line holds exactly one of \"user\", \"tool\" or \"model\"")),
        }
    }
    if script.history.is_empty() {
        return Err(format!("{}: no {{\"user\": …}} line: the turn needs a user message", path.display()));
    }
    Ok(script)
}

/// The host side of the turn: answers from the script and prints what the harness does.
struct ScriptedHost {
    script: Mutex<Script>,
    /// Model calls so far.
    calls: AtomicU32,
}

/// One line of at most 160 characters, for the printout.
fn brief(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    crate::ids::truncate(&one_line, 160)
}

#[async_trait::async_trait]
impl TurnHost for ScriptedHost {
    async fn complete(&self, request: llm::Request) -> Result<llm::Completion, Error> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        println!("model call {n}: {} messages, {} tools", request.messages.len(), request.tools.len());
        let Some(reply) = self.script.lock().unwrap().replies.pop_front() else {
            println!("  → the script has no reply for model call {n}");
            return Err(Error {
                code: "llm_error".into(),
                message: format!("the script has no reply for model call {n}"),
            });
        };
        let tool_calls: Vec<ToolCall> = reply
            .tool_calls
            .into_iter()
            .enumerate()
            .map(|(i, call)| ToolCall {
                id: format!("call_{n}_{}", i + 1),
                name: call.name,
                arguments: call.arguments.to_string(),
            })
            .collect();
        if !reply.text.is_empty() {
            println!("  → text: {}", brief(&reply.text));
        }
        for call in &tool_calls {
            println!("  → tool call {} {}: {}", call.id, call.name, brief(&call.arguments));
        }
        let usage = Usage { input_tokens: 10, output_tokens: 5 };
        let stop_reason = if tool_calls.is_empty() { "stop" } else { "tool_calls" };
        Ok(llm::Completion { text: reply.text, tool_calls, usage, stop_reason: stop_reason.into() })
    }

    async fn tools(&self) -> Vec<ToolSpec> {
        let script = self.script.lock().unwrap();
        script
            .tools
            .iter()
            .map(|t| ToolSpec {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.parameters.to_string(),
            })
            .collect()
    }

    async fn call_tool(&self, call_id: String, name: String, arguments: String) -> tools::ToolResult {
        let tool = self.script.lock().unwrap().tools.iter().find(|t| t.name == name).cloned();
        let result = match tool {
            Some(tool) => tools::ToolResult { output: tool.output, is_error: tool.is_error },
            None => tools::ToolResult { output: format!("no tool named {name} in the script"), is_error: true },
        };
        let mark = if result.is_error { "error" } else { "output" };
        println!("tool {call_id} {name} {} → {mark}: {}", brief(&arguments), brief(&result.output));
        result
    }

    async fn history(&self) -> Vec<Message> {
        self.script.lock().unwrap().history.clone()
    }

    async fn steering(&self) -> Vec<String> {
        vec![]
    }

    fn cancelled(&self) -> bool {
        false
    }

    async fn emit(&self, event_type: String, data: String) -> Result<(), Error> {
        println!("event {event_type}: {}", brief(&data));
        Ok(())
    }

    async fn write_file(&self, name: String, content: Vec<u8>) -> Result<String, Error> {
        println!("file {name}: {} bytes", content.len());
        Ok(format!("file_{name}"))
    }

    fn log(&self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        println!("log {level}: {}", brief(&message));
    }
}

pub(super) async fn test(runtime: &Arc<Runtime>, bytes: &[u8], script: PathBuf) -> anyhow::Result<ExitCode> {
    let script = match read_script(&script) {
        Ok(script) => script,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let component = match tokio::task::block_in_place(|| runtime.load_harness(bytes)) {
        Ok(component) => component,
        Err(e) => {
            println!("not loadable here: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let host = Arc::new(ScriptedHost { script: Mutex::new(script), calls: AtomicU32::new(0) });
    let outcome = component.run_turn(host.clone(), TurnInput { max_steps: 25 }, TurnLimits::default()).await;
    let left = host.script.lock().unwrap().replies.len();
    match outcome {
        Ok(output) => {
            println!(
                "turn completed: {} model calls, {} input / {} output tokens",
                output.steps, output.usage.input_tokens, output.usage.output_tokens
            );
            println!("answer: {}", brief(&output.text));
            if left > 0 {
                println!("note: {left} scripted model replies were not used");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            println!("turn failed ({}): {failure}", failure.code());
            Ok(ExitCode::FAILURE)
        }
    }
}
