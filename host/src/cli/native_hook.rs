//! `omnigent native-hook`: the command a native CLI runs for each hook. It posts the hook's JSON to the
//! session's server (found in the session folder's `endpoint.json`, read on every call, so a restarted server is
//! found again), waits for the answer as long as the CLI lets it, and prints it. If the server cannot be reached
//! (or dies while answering) for a minute, it answers so that a human stays in the loop: a tool call goes to the CLI's own prompt
//! (`ask`), a prompt is blocked, and reports are dropped (the transcript has them anyway).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};

use crate::native::Endpoint;

/// Largest hook input read (a pasted prompt is part of it).
const MAX_INPUT: u64 = 16 << 20;
/// How long a server that does not answer (restarting, say) is retried, unless endpoint.json says otherwise.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
pub struct HookArgs {
    /// The native session's folder (holds endpoint.json).
    #[arg(long)]
    dir: PathBuf,
    /// The hook event (PreToolUse, PermissionRequest, UserPromptSubmit, Stop, …).
    #[arg(long)]
    event: String,
}

pub async fn run(args: HookArgs) -> anyhow::Result<ExitCode> {
    let mut input = Vec::new();
    std::io::stdin().take(MAX_INPUT).read_to_end(&mut input)?;
    let answer = match ask_server(&args, input).await {
        Ok(answer) => answer,
        Err(why) => {
            eprintln!("omnigent native-hook {}: {why}", args.event);
            fallback(&args.event)
        }
    };
    if !answer.as_object().is_some_and(|o| o.is_empty()) {
        println!("{answer}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the CLI waits on this hook's answer for a decision (a tool call, a consent, a prompt).
fn decides(event: &str) -> bool {
    matches!(event, "PreToolUse" | "PermissionRequest" | "UserPromptSubmit")
}

/// What the CLI gets when omnigent cannot answer: never a silent allow.
fn fallback(event: &str) -> Value {
    match event {
        "PreToolUse" => json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "ask",
            "permissionDecisionReason": "omnigent is not reachable: confirm in the terminal"}}),
        "UserPromptSubmit" => json!({"decision": "block",
            "reason": "omnigent is not reachable, so this session's policies cannot check the prompt; try again"}),
        _ => json!({}),
    }
}

async fn ask_server(args: &HookArgs, input: Vec<u8>) -> Result<Value, String> {
    let started = Instant::now();
    let client = crate::http_client().build().map_err(|e| e.to_string())?;
    loop {
        // Read each time: the server may have moved.
        let endpoint: Endpoint = std::fs::read(args.dir.join("endpoint.json"))
            .map_err(|e| format!("cannot read {}: {e}", args.dir.join("endpoint.json").display()))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("endpoint.json: {e}")))?;
        let url = format!("{}/v1/sessions/{}/native/hooks/{}", endpoint.url, endpoint.session_id, args.event);
        let mut request = client.post(&url).header("content-type", "application/json").body(input.clone());
        if let Some(token) = &endpoint.token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                let bytes = response.bytes().await.map_err(|e| e.to_string())?;
                return serde_json::from_slice(&bytes).map_err(|e| format!("the server's answer is not JSON: {e}"));
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                return Err(format!("the server answered {status}: {}", crate::ids::truncate(&text, 300)));
            }
            // Only a hook that decides something waits for a restarting server (it asks again, under the same
            // id, so it is the same question); a report is not worth holding the CLI up for (the transcript has
            // it). A server that died mid-answer counts as restarting.
            Err(_)
                if decides(&args.event)
                    && started.elapsed() < endpoint.reconnect_s.map(Duration::from_secs).unwrap_or(RECONNECT_FOR) =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("cannot reach the server at {}: {e}", endpoint.url)),
        }
    }
}
