//! Denies tool calls once a session has made `limit` of them. Omnigent's
//! `omnigent.policies.builtins.safety.max_tool_calls_per_session`.

use omnigent_policy::*;

struct MaxToolCalls;

impl Guest for MaxToolCalls {
    fn describe() -> Descriptor {
        Descriptor {
            name: "max_tool_calls_per_session".into(),
            description: "Deny tool calls after a session has made `limit` of them.".into(),
            params_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "limit": {"type": "integer", "minimum": 0, "default": 100}
            }})
            .to_string(),
        }
    }

    fn init(params: String) -> Result<(), String> {
        let p = init_params(&params)?;
        only_keys(p, &["limit"])?;
        number(p, "limit", Some(100.0)).map(|_| ())
    }

    fn evaluate(event: Event) -> Decision {
        if event.phase != Phase::ToolCall {
            return abstain();
        }
        let limit = number(params(), "limit", Some(100.0)).unwrap_or(100.0) as u64;
        let key = event.key("count");
        let made = event.state().get(&key).and_then(Value::as_u64).unwrap_or(0);
        if made >= limit {
            return deny(format!("this session has used its {limit} tool calls (max_tool_calls_per_session)"));
        }
        allow().with(StateAction::Increment, key, json!(1))
    }
}

omnigent_policy::export_policy!(MaxToolCalls);
