//! The per-session state policies read and write (counters, recent calls, approved thresholds), and how a
//! policy's updates change it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// What a state update does to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateAction {
    Set,
    /// Adds a number (a missing key counts as 0).
    Increment,
    Delete,
    /// Appends to a list (a missing or non-list key becomes a new list).
    Append,
}

/// A change to the session's policy state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StateChange {
    pub key: String,
    pub action: StateAction,
    #[serde(default)]
    pub value: Value,
}

/// Applies changes to a policy state map.
pub fn apply_state(state: &mut Map<String, Value>, changes: &[StateChange]) {
    for c in changes {
        match c.action {
            StateAction::Set => {
                state.insert(c.key.clone(), c.value.clone());
            }
            StateAction::Increment => {
                let old = state.get(&c.key).and_then(Value::as_f64).unwrap_or(0.0);
                let sum = old + c.value.as_f64().unwrap_or(0.0);
                let v = if sum.fract() == 0.0 && sum.abs() < 9e15 { json!(sum as i64) } else { json!(sum) };
                state.insert(c.key.clone(), v);
            }
            StateAction::Delete => {
                state.remove(&c.key);
            }
            StateAction::Append => {
                let entry = state.entry(c.key.clone()).or_insert_with(|| json!([]));
                if !entry.is_array() {
                    *entry = json!([]);
                }
                if let Some(list) = entry.as_array_mut() {
                    list.push(c.value.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, action: StateAction, value: Value) -> StateChange {
        StateChange { key: key.into(), action, value }
    }

    #[test]
    fn updates_apply_in_order() {
        let mut state = Map::new();
        apply_state(
            &mut state,
            &[
                change("n", StateAction::Increment, json!(2)),
                change("n", StateAction::Increment, json!(0.5)),
                change("calls", StateAction::Append, json!("shell")),
                change("calls", StateAction::Append, json!("ls")),
                change("flag", StateAction::Set, json!(true)),
                change("flag", StateAction::Delete, Value::Null),
                change("whole", StateAction::Increment, json!(3)),
            ],
        );
        assert_eq!(Value::Object(state), json!({"n": 2.5, "calls": ["shell", "ls"], "whole": 3}));
    }

    #[test]
    fn the_wire_names_are_lowercase() {
        let c: StateChange = serde_json::from_value(json!({"key": "k", "action": "append", "value": 1})).unwrap();
        assert_eq!(c.action, StateAction::Append);
        assert_eq!(serde_json::to_value(&c).unwrap()["action"], "append");
    }
}
