//! `omnigent plugin test POLICY.wasm --events F`: a policy over a recorded session, one verdict per judged event.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use omnigent_runtime::Runtime;

use crate::policy::replay::Replay;
use crate::policy::{Outcome, PolicyEnv, PolicyMap, Situation, apply_state, evaluate};

pub(super) async fn test(
    runtime: &Arc<Runtime>,
    file: PathBuf,
    events: PathBuf,
    params: &str,
) -> anyhow::Result<ExitCode> {
    let params: serde_json::Value = match serde_json::from_str(params) {
        Ok(p @ serde_json::Value::Object(_)) => p,
        _ => {
            println!("--params must be a JSON object");
            return Ok(ExitCode::from(2));
        }
    };
    let text = match std::fs::read_to_string(&events) {
        Ok(text) => text,
        Err(e) => {
            println!("{}: cannot be read: {e}", events.display());
            return Ok(ExitCode::from(2));
        }
    };
    let decl = serde_json::json!({"component": file, "factory_params": params});
    let map = PolicyMap(vec![("under_test".to_string(), serde_json::from_value(decl)?)]);
    let env = PolicyEnv::new(runtime.clone(), PolicyMap::default());
    if let Err(e) = env.check(&map).await {
        println!("{e}");
        return Ok(ExitCode::FAILURE);
    }
    let chain = match env.chain(&map, &PolicyMap::default()).await {
        Ok(chain) => chain,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut situation = Situation {
        session_id: "plugin-test".into(),
        model: String::new(),
        harness: String::new(),
        usage: omnigent_runtime::policy::Usage {
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            total_cost_usd: 0.0,
        },
        labels: serde_json::Map::new(),
        state: serde_json::Map::new(),
    };
    let mut replay = Replay::default();
    let mut judged_any = false;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            println!("{}:{}: not a JSON object", events.display(), n + 1);
            return Ok(ExitCode::from(2));
        };
        let Some(judged) = replay.judged(&event) else { continue };
        judged_any = true;
        let target = judged.target.as_deref();
        let what = match target {
            Some(t) => format!("{}:{t}", judged.phase.as_str()),
            None => judged.phase.as_str().to_string(),
        };
        let outcome =
            evaluate(&chain, judged.phase, target, judged.data, judged.request_data.as_ref(), &situation).await;
        let (verdict, changes, labels) = match outcome {
            Outcome::Allow { data, changes, labels } => {
                (if data.is_some() { "allow (rewritten)".to_string() } else { "allow".to_string() }, changes, labels)
            }
            Outcome::Deny { reason, changes, labels, .. } => (format!("deny: {reason}"), changes, labels),
            Outcome::Ask(asked) => (format!("ask: {}", asked.message), asked.changes, asked.labels),
        };
        println!("line {}: {what} → {verdict}", n + 1);
        apply_state(&mut situation.state, &changes);
        crate::record::merge_labels(&mut situation.labels, &labels);
    }
    if !judged_any {
        println!("no request, tool call, tool result or response in {}", events.display());
    }
    if !situation.state.is_empty() || !situation.labels.is_empty() {
        println!("state: {}", serde_json::Value::Object(situation.state));
        println!("labels: {}", serde_json::Value::Object(situation.labels));
    }
    Ok(ExitCode::SUCCESS)
}
