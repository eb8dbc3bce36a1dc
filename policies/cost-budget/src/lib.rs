//! A session spend gate: asks a human as spend passes each soft threshold, and denies at the hard limit (only
//! while on an expensive model, when `expensive_models` is given — a downgrade gate). Omnigent's
//! `omnigent.policies.builtins.cost.cost_budget`. Evaluated on `request` and `tool-call`.

use omnigent_policy::*;

struct CostBudget;

const KEYS: &[&str] = &["max_cost_usd", "ask_thresholds_usd", "expensive_models"];

fn thresholds(p: &Map<String, Value>) -> Result<Vec<f64>, String> {
    match p.get("ask_thresholds_usd") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let mut out = items
                .iter()
                .map(|v| {
                    v.as_f64().filter(|n| *n >= 0.0).ok_or("ask_thresholds_usd must be a list of non-negative numbers")
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.sort_by(|a, b| a.total_cmp(b));
            Ok(out)
        }
        Some(_) => Err("ask_thresholds_usd must be a list of numbers".into()),
    }
}

impl Guest for CostBudget {
    fn describe() -> Descriptor {
        Descriptor {
            name: "cost_budget".into(),
            description: "Ask at soft spend thresholds; deny at the hard limit (optionally only on expensive models).".into(),
            params_schema: json!({"type": "object", "additionalProperties": false, "required": ["max_cost_usd"], "properties": {
                "max_cost_usd": {"type": "number", "minimum": 0},
                "ask_thresholds_usd": {"type": "array", "items": {"type": "number", "minimum": 0}},
                "expensive_models": {"type": "array", "items": {"type": "string"}, "description": "Deny at the limit only on these models (a trailing * matches a prefix); empty: always"}
            }}).to_string(),
        }
    }

    fn init(params: String) -> Result<(), String> {
        let p = init_params(&params)?;
        only_keys(p, KEYS)?;
        number(p, "max_cost_usd", None)?;
        thresholds(p)?;
        string_list(p, "expensive_models", &[]).map(|_| ())
    }

    fn evaluate(event: Event) -> Decision {
        if !matches!(event.phase, Phase::Request | Phase::ToolCall) {
            return abstain();
        }
        let p = params();
        let Ok(max) = number(p, "max_cost_usd", None) else { return deny("cost_budget: max_cost_usd is not set") };
        let spent = event.context.usage.total_cost_usd;
        let expensive = string_list(p, "expensive_models", &[]).unwrap_or_default();
        let model = &event.context.model;
        if spent >= max && (expensive.is_empty() || expensive.iter().any(|m| matches(m, model))) {
            return deny(format!("the session has spent ${spent:.4} of its ${max:.2} budget (cost_budget)"));
        }
        let key = event.key("approved_usd");
        let approved = event.state().get(&key).and_then(Value::as_f64).unwrap_or(0.0);
        let crossed = thresholds(p).unwrap_or_default().into_iter().filter(|t| spent >= *t && *t > approved).last();
        match crossed {
            Some(t) => ask(format!(
                "The session has spent ${spent:.4}, past the ${t:.2} threshold of its ${max:.2} budget. Continue?"
            ))
            .with(StateAction::Set, key, json!(t)),
            None => allow(),
        }
    }
}

omnigent_policy::export_policy!(CostBudget);
