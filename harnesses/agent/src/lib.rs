//! The default harness: send the history and tools to the model, run the tool calls it asks for (several per
//! response), feed the results back, and repeat until the model answers without tools or `max-steps` is reached.

wit_bindgen::generate!({ path: "../../wit/harness", world: "harness" });

use omnigent::harness::types::{Message, Role};
use omnigent::harness::{llm, session, tools};

struct Agent;

impl Guest for Agent {
    fn run_turn(input: TurnInput) -> Result<TurnOutput, Error> {
        let mut messages = session::history();
        let specs = tools::available();
        let mut usage = Usage { input_tokens: 0, output_tokens: 0 };
        let mut steps = 0;
        loop {
            if session::cancelled() {
                return Err(Error { code: "cancelled".into(), message: "the turn was interrupted".into() });
            }
            if steps >= input.max_steps {
                return Err(Error {
                    code: "max_steps".into(),
                    message: format!("stopped after {steps} model calls without a final answer (max-steps)"),
                });
            }
            for text in session::steering() {
                messages.push(Message { role: Role::User, content: text, tool_calls: vec![], tool_call_id: None });
            }
            let completion =
                llm::complete(&llm::Request { messages: messages.clone(), tools: specs.clone(), max_tokens: None })?;
            steps += 1;
            usage.input_tokens += completion.usage.input_tokens;
            usage.output_tokens += completion.usage.output_tokens;
            messages.push(Message {
                role: Role::Assistant,
                content: completion.text.clone(),
                tool_calls: completion.tool_calls.clone(),
                tool_call_id: None,
            });
            if completion.tool_calls.is_empty() {
                return Ok(TurnOutput { text: completion.text, usage, steps });
            }
            for call in &completion.tool_calls {
                let result = tools::call(&call.id, &call.name, &call.arguments);
                messages.push(Message {
                    role: Role::Tool,
                    content: result.output,
                    tool_calls: vec![],
                    tool_call_id: Some(call.id.clone()),
                });
            }
        }
    }
}

export!(Agent);
