//! The frame every native turn shares, whatever its CLI: the session's policies and the turn's journal (with
//! where a turn cut by a restart had got to), the live turn the CLI's hooks and requests consult, the `request`
//! verdict before a message reaches the CLI, and the turn's end (open consent questions resolved, deferred
//! writes committed, a storage failure reported). `claude::turn` and `codex::turn` do the rest; `Runners`
//! dispatches to them.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

use super::Natives;
use super::bridge::{Bridge, HookCall, LiveTurn};
use crate::ids::SessionId;
use crate::policy::{Phase, PolicyMap};
use crate::session::{FailureCode, Sessions, TurnOutcome, TurnStart};
use crate::turn::gate::Gate;
use crate::turn::journal::{Entry, Journal};

pub fn failed(code: &str, message: String) -> TurnOutcome {
    TurnOutcome::Failed { code: FailureCode::of(code), message }
}

/// A turn that has gone live.
pub struct Started {
    pub live: Arc<LiveTurn>,
    /// What the CLI's hooks report to the turn.
    pub reports: mpsc::UnboundedReceiver<HookCall>,
    /// Where a turn cut by a restart had got to: the last `NativeCursor` of its journal (offset, delivered).
    pub cursor: Option<(u64, bool)>,
}

/// Loads the session's policies, opens the turn's journal and makes the turn the bridge's live turn.
pub async fn start(
    natives: &Natives,
    bridge: &Bridge,
    sessions: &Sessions,
    turn: &TurnStart,
) -> Result<Started, TurnOutcome> {
    let TurnStart { record, response_id, config, shared, resume, .. } = turn;
    let session_policies = PolicyMap::of_session(&record.policy.policies);
    let agent_policies = config.policies.clone().unwrap_or_default();
    let chain = natives
        .policies
        .chain(&session_policies, &agent_policies)
        .await
        .map_err(|e| failed(FailureCode::PolicyInvalid.as_str(), e))?;
    let journal = Journal::open(sessions, &record.id, response_id, *resume)
        .await
        .map_err(|e| failed(FailureCode::JournalUnavailable.as_str(), e))?;
    // A native turn does not replay host calls: it goes on from its cursor (the CLI kept working meanwhile).
    let cursor = journal.take_all().into_iter().rev().find_map(|e| match e {
        Entry::NativeCursor { offset, delivered } => Some((offset, delivered)),
        _ => None,
    });
    let gate = Gate::new(chain, sessions, record, response_id, config.executor.clone(), shared.cancel.clone());
    let (hooks, reports) = mpsc::unbounded_channel();
    let live = Arc::new(LiveTurn {
        response_id: response_id.clone(),
        gate,
        journal,
        hooks,
        config: config.clone(),
        consents: Default::default(),
    });
    bridge.set_live(Some(live.clone()));
    Ok(Started { live, reports, cursor })
}

/// The `request` verdict on the message before it reaches the CLI; a deny ends the turn.
pub async fn judge_request(live: &LiveTurn, text: &str) -> Result<(), TurnOutcome> {
    if !live.gate.judges(Phase::Request) {
        return Ok(());
    }
    let request = json!({"user_content": text, "attachments": []});
    let verdict = live.gate.check(&live.journal, Phase::Request, None, request, None, None).await;
    verdict.map(drop).map_err(|reason| failed(FailureCode::PolicyDenied.as_str(), reason))
}

/// The turn's end: a consent question still open was answered in the terminal (the turn could not have ended
/// otherwise), what the turn left deferred is committed, and a storage failure is the turn's outcome.
pub async fn finish(live: &LiveTurn, sessions: &Sessions, session: &SessionId, outcome: TurnOutcome) -> TurnOutcome {
    live.answered_in_terminal(sessions, session).await;
    live.journal.flush(Vec::new()).await;
    match live.journal.storage_failure() {
        Some(why) if !matches!(outcome, TurnOutcome::Failed { .. }) => failed(FailureCode::StorageError.as_str(), why),
        _ => outcome,
    }
}
