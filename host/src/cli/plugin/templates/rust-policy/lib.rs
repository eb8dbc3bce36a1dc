//! {{name}}: denies shell commands that contain a blocked pattern, and counts the session's tool calls in its
//! policy state. Change `evaluate` to your rule; `cargo test` runs the tests below on your machine.

use omnigent_policy::*;

struct {{Camel}};

/// Patterns blocked when the session declares no `blocked` parameter.
const DEFAULT_BLOCKED: &[&str] = &["rm -rf /", "git push --force"];

impl Guest for {{Camel}} {
    fn describe() -> Descriptor {
        describe(
            "{{snake}}",
            "Deny shell commands containing a blocked pattern; count tool calls.",
            json!({"type": "object", "additionalProperties": false, "properties": {
                "blocked": {"type": "array", "items": {"type": "string"}, "description": "substrings to refuse"}
            }}),
        )
    }

    fn init(params: String) -> Result<(), String> {
        let p = init_params(&params)?;
        only_keys(p, &["blocked"])?;
        string_list(p, "blocked", DEFAULT_BLOCKED).map(|_| ())
    }

    fn evaluate(event: Event) -> Decision {
        let Some(tool) = event.tool_call() else { return abstain() };
        if tool == "shell" {
            let command = event.arg_str("command").unwrap_or_default();
            let blocked = string_list(params(), "blocked", DEFAULT_BLOCKED).unwrap_or_default();
            if let Some(pattern) = blocked.iter().find(|p| command.contains(p.as_str())) {
                return deny(format!("`{pattern}` is blocked in this session ({{snake}})"));
            }
        }
        allow().increment(event.key("tool_calls"), 1.0)
    }
}

export_policy!({{Camel}});

#[cfg(test)]
mod tests {
    use super::*;
    use omnigent_policy::testing::{event, verdict, with_params};

    fn shell(command: &str) -> Event {
        event(Phase::ToolCall).tool("shell").arguments(json!({"command": command})).build()
    }

    #[test]
    fn blocks_a_blocked_command() {
        with_params(json!({})).unwrap();
        assert_eq!(verdict(&{{Camel}}::evaluate(shell("rm -rf / --no-preserve-root"))), "deny: `rm -rf /` is blocked in this session ({{snake}})");
    }

    #[test]
    fn allows_and_counts_other_calls() {
        with_params(json!({"blocked": ["curl"]})).unwrap();
        let decision = {{Camel}}::evaluate(shell("ls -la"));
        assert_eq!(verdict(&decision), "allow");
        assert_eq!(decision.state_updates[0].key, "under_test.tool_calls");
    }

    #[test]
    fn refuses_unknown_parameters() {
        assert!({{Camel}}::init(json!({"blockd": []}).to_string()).is_err());
    }

    #[test]
    fn ignores_other_phases() {
        assert_eq!(verdict(&{{Camel}}::evaluate(event(Phase::Request).text("hi").build())), "abstain");
    }
}
