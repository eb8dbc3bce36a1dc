//! The default harness: send the history and tools to the model, run the tool calls it asks for (several per
//! response), feed the results back, and repeat until the model answers without tools or `max-steps` is reached.

use omnigent_harness::*;

struct Agent;

impl Guest for Agent {
    fn run_turn(input: TurnInput) -> Result<TurnOutput, Error> {
        let mut turn = Turn::start();
        loop {
            turn.check(&input)?;
            let reply = turn.complete()?;
            if reply.tool_calls.is_empty() {
                return Ok(turn.finish(reply.text));
            }
            turn.run_tools(&reply.tool_calls);
        }
    }
}

export_harness!(Agent);
