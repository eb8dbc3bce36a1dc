//! Asks a human when the agent repeats the same tool call (same tool, same arguments) `threshold` times within
//! its last `window` calls. Omnigent's `omnigent.policies.builtins.safety.detect_loop`.

use omnigent_policy::*;

struct DetectLoop;

impl Guest for DetectLoop {
    fn describe() -> Descriptor {
        Descriptor {
            name: "detect_loop".into(),
            description: "Ask when the same tool call repeats `threshold` times within the last `window` calls.".into(),
            params_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "window": {"type": "integer", "minimum": 1, "default": 10},
                "threshold": {"type": "integer", "minimum": 2, "default": 3}
            }})
            .to_string(),
        }
    }

    fn init(params: String) -> Result<(), String> {
        let p = init_params(&params)?;
        only_keys(p, &["window", "threshold"])?;
        if number(p, "window", Some(10.0))? < 1.0 {
            return Err("window must be at least 1".into());
        }
        if number(p, "threshold", Some(3.0))? < 2.0 {
            return Err("threshold must be at least 2".into());
        }
        Ok(())
    }

    fn evaluate(event: Event) -> Decision {
        if event.phase != Phase::ToolCall {
            return abstain();
        }
        let p = params();
        let window = number(p, "window", Some(10.0)).unwrap_or(10.0) as usize;
        let threshold = number(p, "threshold", Some(3.0)).unwrap_or(3.0) as usize;
        let call = event.json();
        // Arguments are compared as parsed JSON, so key order and spacing do not hide a repeat.
        let signature =
            format!("{}:{}", event.target.as_deref().unwrap_or(""), call.get("arguments").unwrap_or(&Value::Null));
        let key = event.key("recent");
        let mut recent: Vec<Value> = event.state().get(&key).and_then(Value::as_array).cloned().unwrap_or_default();
        let start = recent.len().saturating_sub(window.saturating_sub(1));
        let repeats = recent[start..].iter().filter(|s| s.as_str() == Some(signature.as_str())).count() + 1;
        recent.push(Value::String(signature));
        let keep = recent.len().saturating_sub(window);
        recent.drain(..keep);
        let decision = if repeats >= threshold {
            ask(format!(
                "The agent is repeating itself: {} with the same arguments {repeats} times in its last {window} calls. Let it go on?",
                event.target.as_deref().unwrap_or("a tool")
            ))
        } else {
            allow()
        };
        decision.with(StateAction::Set, key, Value::Array(recent))
    }
}

omnigent_policy::export_policy!(DetectLoop);
