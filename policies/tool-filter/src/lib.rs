//! Tool allow and deny lists: a tool on `deny` is refused; when `allow` is given, every tool not on it is refused.
//! A trailing `*` matches a prefix (`mcp_github_*`).

use omnigent_policy::*;

struct ToolFilter;

impl Guest for ToolFilter {
    fn describe() -> Descriptor {
        Descriptor {
            name: "tool_filter".into(),
            description: "Refuse tools on a deny list, or not on an allow list.".into(),
            params_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "allow": {"type": "array", "items": {"type": "string"}},
                "deny": {"type": "array", "items": {"type": "string"}},
                "reason": {"type": "string"}
            }})
            .to_string(),
        }
    }

    fn init(params: String) -> Result<(), String> {
        let p = init_params(&params)?;
        only_keys(p, &["allow", "deny", "reason"])?;
        string_list(p, "allow", &[])?;
        string_list(p, "deny", &[])?;
        if p.get("reason").is_some_and(|r| !r.is_string()) {
            return Err("reason must be a string".into());
        }
        Ok(())
    }

    fn evaluate(event: Event) -> Decision {
        let Some(tool) = event.tool_call() else { return abstain() };
        let p = params();
        let allow_list = string_list(p, "allow", &[]).unwrap_or_default();
        let deny_list = string_list(p, "deny", &[]).unwrap_or_default();
        let reason = |why: &str| {
            p.get("reason")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("the tool '{tool}' {why}"))
        };
        if deny_list.iter().any(|d| matches(d, tool)) {
            return deny(reason("is on this session's deny list"));
        }
        if !allow_list.is_empty() && !allow_list.iter().any(|a| matches(a, tool)) {
            return deny(reason("is not on this session's allow list"));
        }
        abstain()
    }
}

omnigent_policy::export_policy!(ToolFilter);
