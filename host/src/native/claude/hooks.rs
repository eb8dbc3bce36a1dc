//! Answers to Claude's hooks (the CLI runs `omnigent native-hook`, which posts the hook's JSON here and prints
//! our answer back). Tool calls go through the session's policy chain (`tool_call`, `tool_result`); the CLI's
//! own consent prompt becomes an elicitation anyone can answer; the rest are reports for the running turn.
//!
//! An empty answer (`{}`) lets Claude go on as it would alone — its own consent prompt included — so nothing
//! here ever allows silently what Claude would have asked about.

use serde_json::{Value, json};

use tokio_util::sync::CancellationToken;

use crate::config::SessionConfig;
use crate::ids::SessionId;
use crate::native::Natives;
use crate::native::bridge::{Bridge, HookCall, LiveTurn, resolve_elsewhere};
use crate::policy::{Phase, PolicyMap};
use crate::session::{ApprovalAction, Input, Sessions};
use crate::turn::gate::Gate;

/// How long the CLI's own consent question may wait for an answer from omnigent (the terminal can answer it
/// meanwhile); then Claude's own prompt is all that is left.
const CONSENT_TIMEOUT_S: u64 = 86_400;
/// The name a consent question carries where a policy's name would be.
pub const CONSENT_ASKER: &str = "claude_native_permission";

/// The answer to one hook call.
pub async fn answer(natives: &Natives, bridge: &Bridge, sessions: &Sessions, event: &str, body: Value) -> Value {
    let mut live = bridge.live();
    if live.is_none() && matches!(event, "PreToolUse" | "PermissionRequest") {
        // Just after a restart the resumed turn may not have taken over yet: its hook calls wait for it.
        live = wait_for_turn(bridge, sessions).await;
    }
    match (event, live) {
        ("PreToolUse", Some(live)) => pre_tool_use(&live, &body).await,
        ("PermissionRequest", Some(live)) => permission(&live, sessions, &bridge.session, &body).await,
        ("PostToolUse", Some(live)) => post_tool_use(&live, &body).await,
        (_, Some(live)) => {
            let _ = live.hooks.send(HookCall { event: event.to_string(), body });
            json!({})
        }
        ("UserPromptSubmit", None) => typed_in_terminal(natives, bridge, sessions, &body).await,
        // Nothing of ours runs (the human drives the terminal alone): Claude decides as it would.
        (_, None) => json!({}),
    }
}

/// A prompt the human typed into the terminal while no turn ran: the session records it (`created_by:
/// terminal`) and follows Claude's answer as a turn like any other.
async fn typed_in_terminal(natives: &Natives, bridge: &Bridge, sessions: &Sessions, body: &Value) -> Value {
    let Some(text) = body["prompt"].as_str().filter(|t| !t.trim().is_empty()) else { return json!({}) };
    // The session's `request` policies judge it before Claude sends it anywhere.
    if let Err(reason) = judge_prompt(natives, sessions, &bridge.session, text).await {
        return json!({"decision": "block", "reason": reason});
    }
    let offset = body["transcript_path"].as_str().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()).unwrap_or(0);
    bridge.set_typed(crate::native::bridge::Typed { text: text.to_string(), offset, external_id: None });
    let content = vec![json!({"type": "input_text", "text": text})];
    let input = Input::Message { content, created_by: Some("terminal".into()) };
    if let Err(e) = sessions.post(&bridge.session, input).await {
        tracing::warn!(session = %bridge.session, error = %e, "could not record a prompt typed in the terminal");
    }
    json!({})
}

/// The live turn, if the session is in a turn that is being resumed (up to a few seconds).
async fn wait_for_turn(bridge: &Bridge, sessions: &Sessions) -> Option<std::sync::Arc<LiveTurn>> {
    let in_turn = sessions.get(&bridge.session).await.ok().is_some_and(|r| {
        matches!(r.status, crate::record::SessionStatus::Running | crate::record::SessionStatus::Paused)
    });
    if !in_turn {
        return None;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if let Some(live) = bridge.live() {
            return Some(live);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

/// The `request` verdict of the session's policies on a prompt typed into the terminal.
async fn judge_prompt(natives: &Natives, sessions: &Sessions, session: &SessionId, text: &str) -> Result<(), String> {
    let record = sessions
        .get(session)
        .await
        .map_err(|e| format!("omnigent cannot read the session to check the prompt: {e}"))?;
    let config = SessionConfig::from_json(record.config.clone())?;
    let session_policies = PolicyMap::of_session(&record.policy.policies);
    let chain = natives.policies.chain(&session_policies, &config.policies.clone().unwrap_or_default()).await?;
    let gate = Gate::new(chain, sessions, &record, "", config.executor.clone(), CancellationToken::new());
    gate.judge_without_asking(Phase::Request, None, json!({"user_content": text, "attachments": []})).await
}

fn tool_of(body: &Value) -> (String, String) {
    let name = body["tool_name"].as_str().unwrap_or("tool").to_string();
    (name, body["tool_input"].to_string())
}

/// Before a tool runs: the policies' `tool_call` verdict. A deny is Claude's deny (the model reads the reason);
/// a human's accept of a policy's question is an allow (no second prompt); otherwise Claude asks as usual.
async fn pre_tool_use(live: &LiveTurn, body: &Value) -> Value {
    let (name, arguments) = tool_of(body);
    let call = json!({"name": name, "arguments": arguments});
    let call_id = body["tool_use_id"].as_str();
    let waited = live.gate.waited();
    // The same call asks the same question, also when Claude sends the hook again after a server restart.
    let ask_id = call_id.map(|id| format!("elicit_claude_{}", &crate::ids::stable_hex(id)[..24]));
    match live.gate.check_as(&live.journal, Phase::ToolCall, Some(&name), call, None, call_id, ask_id).await {
        Err(reason) => json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
            "permissionDecision": "deny", "permissionDecisionReason": reason}}),
        Ok(_) if live.gate.waited() > waited => json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
            "permissionDecision": "allow", "permissionDecisionReason": "approved in omnigent"}}),
        Ok(_) => json!({}),
    }
}

/// After a tool ran: the policies' `tool_result` verdict. The result is already with Claude; a deny is reported
/// (`response.policy_denied`) and told to the model.
async fn post_tool_use(live: &LiveTurn, body: &Value) -> Value {
    let (name, arguments) = tool_of(body);
    let seen = json!({"result": body["tool_response"].to_string(), "is_error": false});
    let call = json!({"name": name, "arguments": arguments});
    match live.gate.check(&live.journal, Phase::ToolResult, Some(&name), seen, Some(&call), None).await {
        Err(reason) => json!({"hookSpecificOutput": {"hookEventName": "PostToolUse",
            "additionalContext": format!("omnigent policy: {reason}")}}),
        Ok(_) => json!({}),
    }
}

/// Claude's own consent prompt (also on screen): an elicitation anyone can answer. If the human answers in the
/// terminal first, Claude drops this hook call; the question is then resolved as answered there.
async fn permission(live: &LiveTurn, sessions: &Sessions, session: &SessionId, body: &Value) -> Value {
    let (name, arguments) = tool_of(body);
    // Claude gives this hook no call id: the question is named by the turn and the call's content, so a hook
    // sent again after a server restart finds the same question.
    let key = format!("{}\n{}\n{name}\n{arguments}", body["session_id"].as_str().unwrap_or_default(), live.response_id);
    let eid = format!("elicit_claude_perm_{}", &crate::ids::stable_hex(&key)[..24]);
    let mut guard = AnsweredElsewhere { sessions: sessions.clone(), session: session.clone(), eid: Some(eid.clone()) };
    live.consents.lock().unwrap().push(eid.clone());
    let call = json!({"name": name, "arguments": arguments});
    let message = format!("Claude Code wants to call **{name}**");
    let action =
        live.gate.consent(&live.journal, &eid, CONSENT_ASKER, message, &name, None, &call, CONSENT_TIMEOUT_S).await;
    guard.eid = None;
    live.consents.lock().unwrap().retain(|e| *e != eid);
    let decision = match action {
        ApprovalAction::Accept => json!({"behavior": "allow"}),
        ApprovalAction::Decline => json!({"behavior": "deny", "message": "a human declined this in omnigent"}),
        // Timed out or cancelled: Claude's own prompt decides.
        _ => return json!({}),
    };
    json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}})
}

/// Resolves a consent question when its hook call goes away unanswered (Claude stopped waiting: the human
/// answered in the terminal, or the turn was interrupted), so no client keeps showing it.
struct AnsweredElsewhere {
    sessions: Sessions,
    session: SessionId,
    eid: Option<String>,
}

impl Drop for AnsweredElsewhere {
    fn drop(&mut self) {
        let Some(eid) = self.eid.take() else { return };
        let (sessions, session) = (self.sessions.clone(), self.session.clone());
        tokio::spawn(async move { resolve_elsewhere(&sessions, &session, &eid).await });
    }
}
