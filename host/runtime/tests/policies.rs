//! The builtin policy components (policies/) judged through the real sandbox, and a hostile policy
//! (policies/fixtures/hostile-policy) stopped by its limits.

use std::time::{Duration, Instant};

use omnigent_runtime::policy::{Context, Decision, Event, Phase, StateAction, Usage, Verdict};
use omnigent_runtime::{BUILTIN_POLICIES, Failure, GUEST_DIR, PolicyFailure, PolicyLimits, Runtime};
use serde_json::{Value, json};

fn builtin(rt: &Runtime, name: &str) -> std::sync::Arc<omnigent_runtime::PolicyComponent> {
    let bytes = BUILTIN_POLICIES.iter().find(|(n, _)| *n == name).unwrap().1;
    rt.load_policy(bytes).unwrap()
}

fn event(phase: Phase, tool: Option<&str>, data: Value, cost: f64, state: Value) -> Event {
    Event {
        phase,
        target: tool.map(str::to_string),
        data: data.to_string(),
        request_data: None,
        context: Context {
            session_id: "conv_test".into(),
            model: "gpt-test".into(),
            harness: "agent".into(),
            usage: Usage { input_tokens: 10, output_tokens: 5, total_tokens: 15, total_cost_usd: cost },
            labels: "{}".into(),
            state: state.to_string(),
            policy_name: "p".into(),
        },
    }
}

fn call(tool: &str, args: Value) -> Event {
    event(Phase::ToolCall, Some(tool), json!({"name": tool, "arguments": args}), 0.0, json!({}))
}

fn verdict(d: &Decision) -> &'static str {
    match d.verdict {
        Verdict::Allow => "allow",
        Verdict::Deny(_) => "deny",
        Verdict::Ask(_) => "ask",
        Verdict::Abstain => "abstain",
    }
}

async fn eval(rt: &Runtime, name: &str, params: Value, e: Event) -> Decision {
    builtin(rt, name).evaluate(&params.to_string(), e, PolicyLimits::default()).await.unwrap()
}

#[tokio::test]
async fn every_builtin_describes_itself_and_checks_its_parameters() {
    let rt = Runtime::new(None).unwrap();
    for (name, _) in BUILTIN_POLICIES {
        let p = builtin(&rt, name);
        let d = p.describe(PolicyLimits::default()).await.unwrap();
        let schema: Value = serde_json::from_str(&d.params_schema).unwrap();
        assert_eq!(schema["type"], "object", "{name}");
        assert!(!d.description.is_empty());
        let bad = p.check_params(&json!({"no_such_param": 1}).to_string(), PolicyLimits::default()).await.unwrap_err();
        assert!(
            matches!(&bad, PolicyFailure::Params(m) if m.contains("unknown parameter 'no_such_param'")),
            "{name}: {bad}"
        );
    }
    let err = builtin(&rt, "cost_budget").check_params("{}", PolicyLimits::default()).await.unwrap_err();
    assert!(err.to_string().contains("max_cost_usd is required"), "{err}");
}

#[tokio::test]
async fn ask_on_os_tools_asks_before_shell_and_writes_only() {
    let rt = Runtime::new(None).unwrap();
    let d = eval(&rt, "ask_on_os_tools", json!({}), call("shell", json!({"command": "rm -rf build"}))).await;
    match &d.verdict {
        Verdict::Ask(e) => assert!(e.message.contains("shell") && e.message.contains("rm -rf build"), "{}", e.message),
        _ => panic!("expected ask, got {}", verdict(&d)),
    }
    assert_eq!(verdict(&eval(&rt, "ask_on_os_tools", json!({}), call("write_file", json!({}))).await), "ask");
    assert_eq!(verdict(&eval(&rt, "ask_on_os_tools", json!({}), call("read_file", json!({}))).await), "abstain");
    assert_eq!(
        verdict(&eval(&rt, "ask_on_os_tools", json!({"include_reads": true}), call("read_file", json!({}))).await),
        "ask"
    );
    let other_phase = event(Phase::Request, None, json!({"user_content": "hi"}), 0.0, json!({}));
    assert_eq!(verdict(&eval(&rt, "ask_on_os_tools", json!({}), other_phase).await), "abstain");
}

#[tokio::test]
async fn max_tool_calls_counts_in_session_state_and_denies_at_the_limit() {
    let rt = Runtime::new(None).unwrap();
    let d = eval(&rt, "max_tool_calls", json!({"limit": 2}), call("shell", json!({}))).await;
    assert_eq!(verdict(&d), "allow");
    assert_eq!(d.state_updates.len(), 1);
    assert_eq!(d.state_updates[0].key, "p.count");
    assert!(matches!(d.state_updates[0].action, StateAction::Increment));
    let mut e = call("shell", json!({}));
    e.context.state = json!({"p.count": 2}).to_string();
    let d = eval(&rt, "max_tool_calls", json!({"limit": 2}), e).await;
    assert!(matches!(&d.verdict, Verdict::Deny(r) if r.contains("2 tool calls")), "{}", verdict(&d));
}

#[tokio::test]
async fn cost_budget_asks_at_each_threshold_once_then_denies_at_the_limit() {
    let rt = Runtime::new(None).unwrap();
    let params = json!({"max_cost_usd": 1.0, "ask_thresholds_usd": [0.25, 0.5]});
    let at = |cost: f64, state: Value| event(Phase::Request, None, json!({"user_content": "go"}), cost, state);
    assert_eq!(verdict(&eval(&rt, "cost_budget", params.clone(), at(0.1, json!({}))).await), "allow");
    let d = eval(&rt, "cost_budget", params.clone(), at(0.3, json!({}))).await;
    assert_eq!(verdict(&d), "ask");
    assert_eq!(d.state_updates[0].value, "0.25");
    // Once 0.25 is approved it does not ask again until the next threshold.
    assert_eq!(
        verdict(&eval(&rt, "cost_budget", params.clone(), at(0.3, json!({"p.approved_usd": 0.25}))).await),
        "allow"
    );
    assert_eq!(
        verdict(&eval(&rt, "cost_budget", params.clone(), at(0.6, json!({"p.approved_usd": 0.25}))).await),
        "ask"
    );
    let d = eval(&rt, "cost_budget", params.clone(), at(1.2, json!({"p.approved_usd": 0.5}))).await;
    assert!(matches!(&d.verdict, Verdict::Deny(r) if r.contains("budget")), "{}", verdict(&d));
    // A downgrade gate: at the limit, only expensive models are refused.
    let gate = json!({"max_cost_usd": 1.0, "expensive_models": ["gpt-5*"]});
    assert_eq!(verdict(&eval(&rt, "cost_budget", gate, at(1.2, json!({}))).await), "allow");
}

#[tokio::test]
async fn detect_loop_asks_on_the_third_identical_call() {
    let rt = Runtime::new(None).unwrap();
    let mut state = json!({});
    let mut verdicts = Vec::new();
    for args in
        [json!({"command": "ls"}), json!({"command": "ls"}), json!({"command": "pwd"}), json!({"command": "ls"})]
    {
        let mut e = call("shell", args);
        e.context.state = state.to_string();
        let d = eval(&rt, "detect_loop", json!({"window": 10, "threshold": 3}), e).await;
        verdicts.push(verdict(&d));
        let update = &d.state_updates[0];
        state = json!({update.key.clone(): serde_json::from_str::<Value>(&update.value).unwrap()});
    }
    assert_eq!(verdicts, vec!["allow", "allow", "allow", "ask"]);
}

/// A builtin's allocator serves an evaluation from a fixed arena first (policies/sdk/src/arena.rs): an event and a
/// state several times its size are judged the same, their bytes intact, through the fallback to the standard
/// allocator (and reallocations that cross from one to the other).
#[tokio::test]
async fn a_builtin_judges_an_event_larger_than_its_allocator_arena() {
    let rt = Runtime::new(None).unwrap();
    let big = |i: usize| json!({"command": format!("{i}:{}", "x".repeat(8 << 10))});
    let signature = |i: usize| format!("shell:{}", big(i));
    // 99 earlier calls (~800 KiB of state), two of them the call about to be made.
    let mut recent: Vec<String> = (0..97).map(signature).collect();
    recent.insert(10, signature(7));
    recent.insert(50, signature(7));
    let mut e = call("shell", big(7));
    e.context.state = json!({"p.recent": recent}).to_string();
    let d = eval(&rt, "detect_loop", json!({"window": 100, "threshold": 3}), e).await;
    assert_eq!(verdict(&d), "ask");
    let kept: Vec<String> = serde_json::from_str(&d.state_updates[0].value).unwrap();
    recent.push(signature(7));
    assert_eq!(kept, recent);
}

#[tokio::test]
async fn tool_filter_refuses_denied_and_unlisted_tools() {
    let rt = Runtime::new(None).unwrap();
    let deny = json!({"deny": ["shell", "mcp_*"]});
    assert_eq!(verdict(&eval(&rt, "tool_filter", deny.clone(), call("shell", json!({}))).await), "deny");
    assert_eq!(verdict(&eval(&rt, "tool_filter", deny.clone(), call("mcp_github_push", json!({}))).await), "deny");
    assert_eq!(verdict(&eval(&rt, "tool_filter", deny, call("read_file", json!({}))).await), "abstain");
    let allow = json!({"allow": ["read_file"], "reason": "read-only session"});
    let d = eval(&rt, "tool_filter", allow, call("write_file", json!({}))).await;
    assert!(matches!(&d.verdict, Verdict::Deny(r) if r == "read-only session"));
}

#[tokio::test]
async fn hostile_policies_are_stopped_by_their_limits_and_the_runtime_carries_on() {
    let rt = Runtime::new(None).unwrap();
    let bytes = std::fs::read(format!("{GUEST_DIR}/hostile_policy.wasm")).unwrap();
    let hostile = rt.load_policy(&bytes).unwrap();
    let limits = PolicyLimits { memory_bytes: 16 << 20, deadline: Duration::from_millis(300) };
    let run = |mode: &str| {
        let hostile = hostile.clone();
        let params = json!({"mode": mode}).to_string();
        async move { hostile.evaluate(&params, call("shell", json!({})), limits).await }
    };
    let started = Instant::now();
    let looped = run("loop").await.unwrap_err();
    assert!(matches!(looped, PolicyFailure::Sandbox(Failure::Deadline(_))), "{looped}");
    assert!(started.elapsed() < Duration::from_secs(3), "stopped near its deadline: {:?}", started.elapsed());
    assert!(matches!(run("alloc").await.unwrap_err(), PolicyFailure::Sandbox(Failure::OutOfMemory(_))));
    assert!(matches!(run("trap").await.unwrap_err(), PolicyFailure::Sandbox(Failure::Trap(_))));
    // Garbage is returned as is; the host's chain refuses it (tested end to end).
    assert!(run("garbage").await.unwrap().data.is_some());
    assert_eq!(verdict(&run("allow").await.unwrap()), "allow");
    assert!(rt.load_policy(omnigent_runtime::AGENT_HARNESS).is_err(), "a harness is not a policy");
}
