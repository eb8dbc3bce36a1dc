//! A chain of policies judging one event of a turn. Rules (Omnigent's): the first deny stops the chain (state
//! written by earlier allows stays); asks accumulate (every asking policy is named; their state updates wait for a
//! human's accept); a data rewrite becomes the next policy's input. A policy that fails denies on the phases that
//! fail closed and abstains on the others.

use std::sync::Arc;

use omnigent_runtime::policy as wit;
use omnigent_runtime::{PolicyComponent, PolicyLimits};
use serde_json::{Map, Value};

use super::{DEFAULT_ASK_TIMEOUT_S, Level, Phase, PolicyDecl, StateAction, StateChange, apply_state};

/// A policy ready to evaluate.
#[derive(Clone)]
pub struct Loaded {
    pub name: String,
    pub level: Level,
    pub decl: PolicyDecl,
    component: Arc<dyn Evaluate>,
    params: String,
}

impl Loaded {
    pub fn new(name: &str, level: Level, decl: PolicyDecl, component: Arc<dyn Evaluate>) -> Loaded {
        let params = Value::Object(decl.factory_params.clone()).to_string();
        Loaded { name: name.to_string(), level, decl, component, params }
    }
}

/// Something that judges one event: a policy component (a fresh instance per call), or a stand-in in unit tests.
#[async_trait::async_trait]
pub trait Evaluate: Send + Sync {
    /// `params`: the policy's parameters as JSON; Err says why the policy failed (it trapped, timed out, refused
    /// its parameters).
    async fn evaluate(&self, params: &str, event: wit::Event, limits: PolicyLimits) -> Result<wit::Decision, String>;
}

#[async_trait::async_trait]
impl Evaluate for PolicyComponent {
    async fn evaluate(&self, params: &str, event: wit::Event, limits: PolicyLimits) -> Result<wit::Decision, String> {
        PolicyComponent::evaluate(self, params, event, limits).await.map_err(|e| e.to_string())
    }
}

/// What the session looks like to a policy.
pub struct Situation {
    pub session_id: String,
    pub model: String,
    pub harness: String,
    pub usage: wit::Usage,
    pub labels: Map<String, Value>,
    pub state: Map<String, Value>,
}

/// The chain's verdict on one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Go ahead; `data` replaces the event's payload when a policy rewrote it.
    Allow {
        data: Option<Value>,
        changes: Vec<StateChange>,
        labels: Map<String, Value>,
    },
    Deny {
        policy: String,
        reason: String,
        changes: Vec<StateChange>,
        labels: Map<String, Value>,
    },
    /// Ask a human.
    Ask(Asked),
}

/// What the chain asks a human, and what each answer applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    /// Every policy that asked.
    pub policies: Vec<String>,
    pub message: String,
    /// The payload as rewritten by the policies, if one rewrote it.
    pub data: Option<Value>,
    /// Written by the policies that allowed: applies now.
    pub changes: Vec<StateChange>,
    pub labels: Map<String, Value>,
    /// Written by the policies that asked: applies only on an accept.
    pub held_changes: Vec<StateChange>,
    pub held_labels: Map<String, Value>,
    /// How long the question may wait (the longest any asking policy allows).
    pub timeout_s: u64,
}

/// The phase as the policy world's WIT names it.
fn wit_phase(phase: Phase) -> wit::Phase {
    match phase {
        Phase::Request => wit::Phase::Request,
        Phase::ToolCall => wit::Phase::ToolCall,
        Phase::ToolResult => wit::Phase::ToolResult,
        Phase::Response => wit::Phase::Response,
        Phase::LlmRequest => wit::Phase::LlmRequest,
        Phase::LlmResponse => wit::Phase::LlmResponse,
    }
}

/// A decision with every JSON field parsed, or why it is garbage.
struct Parsed {
    verdict: wit::Verdict,
    data: Option<Value>,
    changes: Vec<StateChange>,
    labels: Map<String, Value>,
}

fn parse(decision: wit::Decision) -> Result<Parsed, String> {
    let data = match decision.data {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| format!("its data is not JSON ({e})"))?),
        None => None,
    };
    let mut changes = Vec::new();
    for u in decision.state_updates {
        let action = match u.action {
            wit::StateAction::Set => StateAction::Set,
            wit::StateAction::Increment => StateAction::Increment,
            wit::StateAction::Delete => StateAction::Delete,
            wit::StateAction::Append => StateAction::Append,
        };
        let value = if action == StateAction::Delete {
            Value::Null
        } else {
            serde_json::from_str(&u.value).map_err(|e| format!("its state update of '{}' is not JSON ({e})", u.key))?
        };
        if u.key.is_empty() || u.key.len() > 256 {
            return Err("a state key is empty or longer than 256 bytes".into());
        }
        changes.push(StateChange { key: u.key, action, value });
    }
    let labels = match decision.set_labels {
        None => Map::new(),
        Some(text) => match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => m,
            _ => return Err("its set-labels is not a JSON object".into()),
        },
    };
    Ok(Parsed { verdict: decision.verdict, data, changes, labels })
}

/// Runs the chain over one event.
pub async fn evaluate(
    chain: &[Loaded],
    phase: Phase,
    target: Option<&str>,
    data: Value,
    request_data: Option<&Value>,
    situation: &Situation,
) -> Outcome {
    let mut data = data;
    let mut rewritten = false;
    let mut state = situation.state.clone();
    let (mut changes, mut labels) = (Vec::new(), Map::new());
    let (mut askers, mut messages, mut held_changes, mut held_labels) =
        (Vec::new(), Vec::new(), Vec::new(), Map::new());
    let mut timeout_s = 0;
    for policy in chain.iter().filter(|p| p.decl.selects(phase, target)) {
        let event = wit::Event {
            phase: wit_phase(phase),
            target: target.map(str::to_string),
            data: data.to_string(),
            request_data: request_data.map(Value::to_string),
            context: wit::Context {
                session_id: situation.session_id.clone(),
                model: situation.model.clone(),
                harness: situation.harness.clone(),
                usage: situation.usage,
                labels: Value::Object(situation.labels.clone()).to_string(),
                state: Value::Object(state.clone()).to_string(),
                policy_name: policy.name.clone(),
            },
        };
        let started = std::time::Instant::now();
        let result = policy.component.evaluate(&policy.params, event, policy.decl.limits()).await;
        let parsed = result.and_then(parse);
        tracing::debug!(policy = %policy.name, phase = phase.as_str(), elapsed_us = started.elapsed().as_micros() as u64, "policy evaluated");
        let parsed = match parsed {
            Ok(p) => p,
            Err(why) => {
                if phase.fails_closed() {
                    tracing::warn!(policy = %policy.name, phase = phase.as_str(), error = %why, "policy failed; denying (this phase fails closed)");
                    return Outcome::Deny {
                        policy: policy.name.clone(),
                        reason: format!("the policy '{}' failed ({why}), so the {phase} is denied", policy.name),
                        changes,
                        labels,
                    };
                }
                tracing::warn!(policy = %policy.name, phase = phase.as_str(), error = %why, "policy failed; ignoring it on this phase");
                continue;
            }
        };
        match parsed.verdict {
            wit::Verdict::Deny(reason) => {
                changes.extend(parsed.changes);
                labels.extend(parsed.labels);
                return Outcome::Deny { policy: policy.name.clone(), reason, changes, labels };
            }
            wit::Verdict::Ask(e) => {
                askers.push(policy.name.clone());
                messages.push(e.message);
                held_changes.extend(parsed.changes);
                held_labels.extend(parsed.labels);
                timeout_s = timeout_s.max(policy.decl.ask_timeout.unwrap_or(DEFAULT_ASK_TIMEOUT_S));
            }
            wit::Verdict::Allow | wit::Verdict::Abstain => {
                apply_state(&mut state, &parsed.changes);
                changes.extend(parsed.changes);
                labels.extend(parsed.labels);
            }
        }
        if let Some(d) = parsed.data {
            data = d;
            rewritten = true;
        }
    }
    let data = rewritten.then_some(data);
    if askers.is_empty() {
        Outcome::Allow { data, changes, labels }
    } else {
        Outcome::Ask(Asked {
            policies: askers,
            message: messages.join("\n"),
            data,
            changes,
            labels,
            held_changes,
            held_labels,
            timeout_s,
        })
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Stand-in policies for unit tests of the chain and the gate.

    use std::sync::Mutex;

    use super::*;

    /// Answers every event with the same verdict (and records which phases it saw).
    pub struct Fixed {
        pub verdict: wit::Verdict,
        pub data: Option<String>,
        pub updates: Vec<wit::StateUpdate>,
        pub seen: Mutex<Vec<wit::Phase>>,
        pub fail: Option<String>,
    }

    impl Fixed {
        pub fn new(verdict: wit::Verdict) -> Fixed {
            Fixed { verdict, data: None, updates: Vec::new(), seen: Mutex::default(), fail: None }
        }
    }

    #[async_trait::async_trait]
    impl Evaluate for Fixed {
        async fn evaluate(&self, _params: &str, event: wit::Event, _: PolicyLimits) -> Result<wit::Decision, String> {
            self.seen.lock().unwrap().push(event.phase);
            if let Some(why) = &self.fail {
                return Err(why.clone());
            }
            Ok(wit::Decision {
                verdict: self.verdict.clone(),
                data: self.data.clone(),
                state_updates: self.updates.clone(),
                set_labels: None,
            })
        }
    }

    pub fn loaded(name: &str, policy: Fixed, on: &[&str]) -> (Loaded, Arc<Fixed>) {
        let policy = Arc::new(policy);
        let mut decl = PolicyDecl::builtin("ask_on_os_tools");
        decl.on = on.iter().map(|s| s.to_string()).collect();
        (Loaded::new(name, Level::Session, decl, policy.clone()), policy)
    }

    pub fn situation() -> Situation {
        Situation {
            session_id: "conv_test".into(),
            model: "m".into(),
            harness: "agent".into(),
            usage: wit::Usage { input_tokens: 0, output_tokens: 0, total_tokens: 0, total_cost_usd: 0.0 },
            labels: Map::new(),
            state: Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testing::{Fixed, loaded, situation};
    use super::*;

    fn ask(message: &str) -> wit::Verdict {
        wit::Verdict::Ask(wit::Elicitation { message: message.into() })
    }

    async fn run(chain: &[Loaded], phase: Phase, target: Option<&str>) -> Outcome {
        evaluate(chain, phase, target, json!({"name": "shell"}), None, &situation()).await
    }

    #[tokio::test]
    async fn the_first_deny_stops_the_chain() {
        let (a, _) = loaded("a", Fixed::new(wit::Verdict::Deny("no".into())), &[]);
        let (b, b_policy) = loaded("b", Fixed::new(wit::Verdict::Allow), &[]);
        let outcome = run(&[a, b], Phase::ToolCall, Some("shell")).await;
        assert!(matches!(outcome, Outcome::Deny { ref policy, ref reason, .. } if policy == "a" && reason == "no"));
        assert!(b_policy.seen.lock().unwrap().is_empty(), "a policy after a deny is not asked");
    }

    #[tokio::test]
    async fn asks_accumulate_and_their_state_waits() {
        let mut first = Fixed::new(ask("sure?"));
        first.updates =
            vec![wit::StateUpdate { key: "asked".into(), action: wit::StateAction::Increment, value: "1".into() }];
        let (a, _) = loaded("a", first, &[]);
        let (b, _) = loaded("b", Fixed::new(ask("really?")), &[]);
        let (c, _) = loaded("c", Fixed::new(wit::Verdict::Abstain), &[]);
        match run(&[a, b, c], Phase::ToolCall, Some("shell")).await {
            Outcome::Ask(Asked { policies, message, changes, held_changes, .. }) => {
                assert_eq!(policies, ["a", "b"]);
                assert_eq!(message, "sure?\nreally?");
                assert!(changes.is_empty());
                assert_eq!(held_changes.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_rewrite_is_the_next_policys_input_and_the_result() {
        let mut redact = Fixed::new(wit::Verdict::Allow);
        redact.data = Some(r#"{"name": "shell", "arguments": "{}"}"#.into());
        let (a, _) = loaded("a", redact, &[]);
        let (b, _) = loaded("b", Fixed::new(wit::Verdict::Allow), &[]);
        let outcome = run(&[a, b], Phase::ToolCall, Some("shell")).await;
        assert!(matches!(outcome, Outcome::Allow { data: Some(ref d), .. } if d["arguments"] == "{}"), "{outcome:?}");
    }

    #[tokio::test]
    async fn selectors_pick_phases_and_tools() {
        let (a, a_policy) = loaded("a", Fixed::new(wit::Verdict::Deny("x".into())), &["tool_call:mcp_*"]);
        let chain = [a];
        assert!(matches!(run(&chain, Phase::ToolCall, Some("shell")).await, Outcome::Allow { data: None, .. }));
        assert!(matches!(run(&chain, Phase::LlmRequest, None).await, Outcome::Allow { .. }));
        assert!(matches!(run(&chain, Phase::ToolCall, Some("mcp_git")).await, Outcome::Deny { .. }));
        assert_eq!(a_policy.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_failing_policy_fails_closed_only_where_it_can_stop_something() {
        let mut broken = Fixed::new(wit::Verdict::Allow);
        broken.fail = Some("trapped".into());
        let (a, _) = loaded("a", broken, &[]);
        let chain = [a];
        match run(&chain, Phase::ToolCall, Some("shell")).await {
            Outcome::Deny { reason, .. } => assert!(reason.contains("trapped"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(run(&chain, Phase::ToolResult, Some("shell")).await, Outcome::Allow { .. }));
    }
}
