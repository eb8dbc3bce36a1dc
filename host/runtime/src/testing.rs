//! A minimal host side of a turn, for tests and benchmarks that exercise a harness without a server: the
//! conversation is one user message, the model answers `reply` at once, and there are no tools.

use crate::TurnHost;
use crate::harness::{Error, LogLevel, Message, Role, ToolSpec, Usage, llm, tools};

pub struct FixedHost {
    pub user_message: String,
    pub reply: String,
}

impl FixedHost {
    pub fn new(user_message: &str, reply: &str) -> FixedHost {
        FixedHost { user_message: user_message.into(), reply: reply.into() }
    }
}

#[async_trait::async_trait]
impl TurnHost for FixedHost {
    async fn complete(&self, _: llm::Request) -> Result<llm::Completion, Error> {
        Ok(llm::Completion {
            text: self.reply.clone(),
            tool_calls: vec![],
            usage: Usage { input_tokens: 1, output_tokens: 1 },
            stop_reason: "stop".into(),
        })
    }
    async fn tools(&self) -> Vec<ToolSpec> {
        vec![]
    }
    async fn call_tool(&self, _: String, _: String, _: String) -> tools::ToolResult {
        tools::ToolResult { output: "no tools here".into(), is_error: true }
    }
    async fn history(&self) -> Vec<Message> {
        vec![Message { role: Role::User, content: self.user_message.clone(), tool_calls: vec![], tool_call_id: None }]
    }
    async fn steering(&self) -> Vec<String> {
        vec![]
    }
    fn cancelled(&self) -> bool {
        false
    }
    async fn emit(&self, _: String, _: String) -> Result<(), Error> {
        Ok(())
    }
    async fn write_file(&self, _: String, _: Vec<u8>) -> Result<String, Error> {
        Err(Error { code: "unsupported".into(), message: "no files here".into() })
    }
    fn log(&self, _: LogLevel, _: String) {}
}
