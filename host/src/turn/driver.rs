//! Driving a WASM harness turn from start to end: load the harness and the policies, replay the journal if the
//! turn is resumed, judge the user's request, run the harness, judge its answer, and report the outcome.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnigent_runtime::harness::TurnInput;
use omnigent_runtime::{HarnessComponent, TurnFailure, TurnLimits};
use serde_json::json;

use super::TurnEnv;
use super::compaction::Step;
use super::gate::Gate;
use super::host::{Host, Models};
use super::journal::Journal;
use crate::config::{SessionConfig, ToolKind};
use crate::conversation::last_user_text;
use crate::llm::Provider;
use crate::policy::{Phase, PolicyMap};
use crate::protocol::{self, ErrorSource, NewEvent};
use crate::remote::RunnerLink;
use crate::session::{FailureCode, Sessions, TurnOutcome, TurnStart};
use crate::stages::Stage;

const DEFAULT_MAX_STEPS: u32 = 25;

fn failed(code: FailureCode, message: String) -> TurnOutcome {
    TurnOutcome::Failed { code, message }
}

/// Runs a turn to its end and reports the outcome to the session's actor.
pub(super) async fn run(env: TurnEnv, sessions: Sessions, turn: TurnStart) {
    let id = turn.record.id.clone();
    let response_id = turn.response_id.clone();
    let shared = turn.shared.clone();
    let outcome = prepare_and_drive(&env, &sessions, turn).await;
    let outcome = if shared.cancel.is_cancelled() && !matches!(outcome, TurnOutcome::Completed { .. }) {
        TurnOutcome::Interrupted
    } else {
        outcome
    };
    crate::session::runner::report_end(&sessions, &shared, &id, &response_id, outcome).await;
}

async fn prepare_and_drive(env: &TurnEnv, sessions: &Sessions, turn: TurnStart) -> TurnOutcome {
    let preparing = Stage::Prepare.span();
    let TurnStart { record, response_id, config, shared, resume, transcript } = turn;
    let component = match load_harness(env, &config).await {
        Ok(c) => c,
        Err(e) => return e,
    };
    // A session bound to a runner makes its model calls and builtin tools there, with the runner's keys and files.
    let models = match (&record.settings.runner_id, &env.runners) {
        (Some(runner), Some(hub)) => Models::Runner(RunnerLink {
            hub: hub.clone(),
            sessions: sessions.clone(),
            runner: runner.clone(),
            session: record.id.clone(),
            config: config.to_json(),
            cancel: shared.cancel.clone(),
        }),
        _ => match Provider::from_config(&config, env.http.clone(), &env.credentials) {
            Ok(p) => Models::Here(p),
            Err(e) => return failed(FailureCode::of(e.code()), e.to_string()),
        },
    };
    let Ok(_slot) = env.slots.clone().acquire_owned().await else {
        return failed(FailureCode::ShuttingDown, "the server is shutting down".into());
    };
    let defaults = TurnLimits::default();
    let limits = TurnLimits {
        memory_bytes: config.executor.memory_mb.map(|mb| (mb as usize) << 20).unwrap_or(defaults.memory_bytes),
        deadline: config.executor.turn_timeout_s.map(Duration::from_secs).unwrap_or(defaults.deadline),
    };
    let model = config.executor.model_name().to_string();
    // The turn's tools: how they are confined, the skills, the MCP servers. What their start-up has to say is said
    // once: a resumed turn said it before the restart.
    let say = async |events: Vec<NewEvent>| {
        if !events.is_empty()
            && !resume
            && let Err(e) = sessions.emit(&record.id, events, Vec::new()).await
        {
            tracing::warn!(session = %record.id, error = %e, "could not record the turn's start-up notices");
        }
    };
    let place = env.sandbox.confine(&config);
    let (skills, skill_problems) = crate::skills::load(&config, place.as_ref()).await;
    let announce = async |servers| say(vec![protocol::mcp_startup(&record.id, &servers)]).await;
    let mcp = env.mcp.start(&record.id, &config, place.as_ref(), announce).await;
    let mut notices: Vec<NewEvent> = Vec::new();
    if !mcp.report.is_empty() {
        notices.push(protocol::mcp_startup(&record.id, &mcp.report));
    }
    let runs_programs = config.tools.values().any(|t| t.kind == ToolKind::Builtin || t.command.is_some());
    if let Some(why) = env.sandbox.fallback_notice(&record.id, &config).filter(|_| runs_programs) {
        notices.push(protocol::error(ErrorSource::Tool("shell"), "sandbox_unavailable", &why));
    }
    notices.extend(
        skill_problems
            .iter()
            .map(|why| protocol::error(ErrorSource::Tool(crate::skills::LOAD_SKILL), "skill_unavailable", why)),
    );
    say(notices).await;
    let max_steps = config.executor.max_steps.unwrap_or(DEFAULT_MAX_STEPS);
    let session_policies = PolicyMap::of_session(&record.policy.policies);
    let agent_policies = config.policies.clone().unwrap_or_default();
    let chain = match env.policies.chain(&session_policies, &agent_policies).await {
        Ok(c) => c,
        Err(e) => return failed(FailureCode::PolicyInvalid, e),
    };
    let journal = match Journal::open(sessions, &record.id, &response_id, resume).await {
        Ok(j) => j,
        Err(e) => return failed(FailureCode::JournalUnavailable, e),
    };
    let gate = Gate::new(chain, sessions, &record, &response_id, config.executor.clone(), shared.cancel.clone());
    let host = Arc::new(Host {
        sessions: sessions.clone(),
        id: record.id.clone(),
        response_id,
        config,
        models,
        model: model.clone(),
        reasoning_effort: record.settings.reasoning_effort.clone(),
        place,
        skills,
        mcp: env.mcp.clone(),
        mcp_tools: mcp.tools,
        mcp_failed: mcp.failed,
        shared,
        journal,
        gate,
        client_calls: Mutex::default(),
        children: Mutex::default(),
        history: Mutex::default(),
        transcript,
    });
    drop(preparing);
    let outcome = drive(&host, component, TurnInput { max_steps }, limits, model).await;
    // Verdicts that waited for a commit (a denied request, the response's verdict) are written before the end.
    host.journal.flush(Vec::new()).await;
    match host.journal.storage_failure() {
        Some(why) if !matches!(outcome, TurnOutcome::Failed { .. }) => failed(FailureCode::StorageError, why),
        _ => outcome,
    }
}

/// The turn proper: the request's verdict, the harness run, the response's verdict.
async fn drive(
    host: &Arc<Host>,
    component: Arc<HarnessComponent>,
    input: TurnInput,
    limits: TurnLimits,
    model: String,
) -> TurnOutcome {
    // A long conversation is compacted first; a turn a `compact` request started ends there.
    if let Step::Done(outcome) = host.compaction_step().await {
        return outcome;
    }
    // The user's request is judged before the harness sees it.
    if host.gate.judges(Phase::Request) {
        // A replay has the verdict in its journal; a live turn reads the history the harness is about to get.
        let text =
            if host.journal.replaying() { String::new() } else { last_user_text(&host.read_history().await.messages) };
        let request = json!({"user_content": text, "attachments": []});
        if let Err(reason) = host.gate.check(&host.journal, Phase::Request, None, request, None, None).await {
            return failed(FailureCode::PolicyDenied, reason);
        }
    }
    let run = component.run_turn(host.clone(), input, limits);
    let result = tokio::select! {
        r = run => r,
        _ = host.shared.cancel.cancelled() => return TurnOutcome::Interrupted,
    };
    if let Some(why) = host.journal.storage_failure() {
        return failed(FailureCode::StorageError, why);
    }
    if let Some(why) = host.journal.diverged() {
        return failed(FailureCode::ReplayDiverged, why);
    }
    match result {
        // The answer's text is already in the log (the harness's model calls recorded it).
        Ok(out) => {
            if host.gate.judges(Phase::Response) {
                // The answer was streamed already: a deny here is reported, not undone.
                let answer = json!({"text": out.text});
                let _ = host.gate.check(&host.journal, Phase::Response, None, answer, None, None).await;
            }
            // What the host counted, not what the harness reports: a harness cannot talk its spend down.
            let usage = host.gate.turn_usage();
            if (usage.input_tokens, usage.output_tokens) != (out.usage.input_tokens, out.usage.output_tokens) {
                tracing::debug!(session = %host.id, reported = ?out.usage, counted = ?usage, "the harness reported other usage than its model calls");
            }
            let cost_usd = host.config.executor.cost_usd(usage.input_tokens, usage.output_tokens);
            TurnOutcome::Completed { usage, model, cost_usd }
        }
        Err(TurnFailure::Harness(e)) if e.code == "cancelled" => TurnOutcome::Interrupted,
        Err(e) => failed(FailureCode::of(e.code()), e.to_string()),
    }
}

async fn load_harness(env: &TurnEnv, config: &SessionConfig) -> Result<Arc<HarnessComponent>, TurnOutcome> {
    let harness = config.executor.harness.clone();
    let bytes: Vec<u8> = match harness.as_str() {
        "agent" => {
            if let Some(loaded) = env.runtime.agent() {
                return Ok(loaded);
            }
            let runtime = env.runtime.clone();
            return tokio::task::spawn_blocking(move || runtime.load_agent())
                .await
                .map_err(|e| failed(FailureCode::HarnessInvalid, format!("loading the harness panicked: {e}")))?
                .map_err(|e| failed(FailureCode::HarnessInvalid, format!("the builtin agent harness: {e}")));
        }
        path if path.ends_with(".wasm") => {
            crate::regular_file::read_async(Path::new(path), crate::bounds::MAX_COMPONENT_BYTES).await.map_err(|e| {
                let code = if e.is_missing() { FailureCode::HarnessNotFound } else { FailureCode::HarnessInvalid };
                failed(code, format!("harness: {e}"))
            })?
        }
        other => {
            return Err(failed(
                FailureCode::HarnessNotFound,
                format!("harness '{other}' is not available (builtin: agent, or a .wasm path)"),
            ));
        }
    };
    let runtime = env.runtime.clone();
    // Compiling is CPU work (100+ ms the first time): keep it off the async workers.
    tokio::task::spawn_blocking(move || runtime.load_harness(&bytes))
        .await
        .map_err(|e| failed(FailureCode::HarnessInvalid, format!("loading the harness panicked: {e}")))?
        .map_err(|e| failed(FailureCode::HarnessInvalid, format!("harness {harness}: {e}")))
}
