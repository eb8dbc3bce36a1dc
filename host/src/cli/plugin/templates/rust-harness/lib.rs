//! {{name}}: the model–tool loop, announcing each step on the session's stream as a `harness.{{snake}}` event.
//! Change `run_turn` to your loop; `omnigent plugin test dist/{{snake}}.wasm --script script.jsonl` runs it
//! against a scripted model.

use omnigent_harness::*;

struct {{Camel}};

impl Guest for {{Camel}} {
    fn run_turn(input: TurnInput) -> Result<TurnOutput, Error> {
        let mut turn = Turn::start();
        loop {
            // Stops when the user interrupted or `max-steps` model calls were made; adds steering messages.
            turn.check(&input)?;
            let reply = turn.complete()?;
            emit("harness.{{snake}}", &json!({"step": turn.steps, "tool_calls": reply.tool_calls.len()}))?;
            if reply.tool_calls.is_empty() {
                log(LogLevel::Info, format!("answered after {} model calls", turn.steps));
                return Ok(turn.finish(reply.text));
            }
            turn.run_tools(&reply.tool_calls);
        }
    }
}

export_harness!({{Camel}});
