//! The seam between a session's actor and the turns it starts. The actor knows a turn only through this
//! protocol: it starts one through a [`TurnRunner`] (a WASM harness turn today, a native bridge next), shares a
//! [`TurnShared`] with it, delivers what it waits for ([`Waiter`]) and records its [`TurnOutcome`].

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{Answer, Sessions};
use crate::config::SessionConfig;
use crate::ids::SessionId;
use crate::record::SessionRecord;

/// Starts turns. The actor holds one for the process and calls it for each turn it begins or resumes.
pub trait TurnRunner: Send + Sync {
    /// The turn to run; it reports its end with [`Sessions::end_turn`].
    fn run(&self, sessions: Sessions, turn: TurnStart) -> BoxFuture<'static, ()>;

    /// Whether this runner will run sessions with this config (checked when a session is created); Err says why
    /// not, for the client.
    fn admit(&self, _config: &SessionConfig) -> Result<(), String> {
        Ok(())
    }
}

/// What a turn starts with.
pub struct TurnStart {
    /// The session as the actor knew it when the turn started.
    pub record: SessionRecord,
    pub response_id: String,
    pub config: SessionConfig,
    pub shared: TurnShared,
    /// The turn was cut by a restart: it replays its journal first.
    pub resume: bool,
    /// The session's transcript as its actor keeps it in memory (loaded when the turn started, unless that failed).
    pub transcript: super::transcript::Transcript,
}

/// Tokens a turn's model calls used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl TokenUsage {
    pub fn total(self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// How a turn ended, as the actor records it.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnOutcome {
    Completed { usage: TokenUsage, model: String, cost_usd: f64 },
    Interrupted,
    Failed { code: FailureCode, message: String },
}

macro_rules! failure_codes {
    ($($variant:ident = $code:literal: $doc:literal,)*) => {
        /// Why a turn failed, as `last_task_error.code` names it. The host's own reasons are listed; a harness's,
        /// a model provider's or the sandbox's own code passes through as `Other`.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum FailureCode {
            $(#[doc = $doc] $variant,)*
            Other(String),
        }

        impl FailureCode {
            pub fn as_str(&self) -> &str {
                match self {
                    $(FailureCode::$variant => $code,)*
                    FailureCode::Other(code) => code,
                }
            }

            /// Where the failure came from, as Omnigent's `response.failed.source` names it: the model (`llm`), the
            /// harness or native CLI (`harness`), or the host running the turn (`execution`).
            pub fn source(&self) -> &'static str {
                match self {
                    FailureCode::NoHarness
                    | FailureCode::HarnessNotFound
                    | FailureCode::HarnessInvalid
                    | FailureCode::ReplayDiverged => "harness",
                    FailureCode::Other(code) if crate::llm::LlmError::is_llm_code(code) => "llm",
                    FailureCode::Other(code) if code == "native_api_error" => "llm",
                    FailureCode::Other(_) => "harness",
                    _ => "execution",
                }
            }

            /// The code a harness, provider or the sandbox reported (one of ours if it names one).
            pub fn of(code: &str) -> FailureCode {
                match code {
                    $($code => FailureCode::$variant,)*
                    other => FailureCode::Other(other.to_string()),
                }
            }
        }
    };
}

failure_codes! {
    NoHarness = "no_harness": "The session's config names no harness.",
    InvalidConfig = "invalid_config": "The stored config cannot be read as a session config.",
    ServerRestarted = "server_restarted": "The server stopped during a turn that cannot be resumed.",
    HarnessNotFound = "harness_not_found": "The harness is not a builtin and no `.wasm` file is there.",
    HarnessInvalid = "harness_invalid": "The harness component does not load.",
    PolicyInvalid = "policy_invalid": "A policy of the session does not load.",
    PolicyDenied = "policy_denied": "A policy denied the user's request.",
    JournalUnavailable = "journal_unavailable": "A resumed turn cannot read its journal.",
    ReplayDiverged = "replay_diverged": "A resumed harness asked for other host calls than its journal holds.",
    ShuttingDown = "shutting_down": "The server is shutting down.",
    StorageError = "storage_error": "The database failed for longer than the retries; nothing half-written was kept.",
    InternalError = "internal_error": "The turn hit a bug in the host (it panicked); the server log has the details.",
}

/// State the actor shares with a running turn.
#[derive(Clone, Default)]
pub struct TurnShared {
    pub cancel: CancellationToken,
    /// Messages that arrived while the turn ran and the harness has not taken yet.
    pub steering: Arc<Mutex<VecDeque<String>>>,
    /// The session's writer gave the turn up (another replica took the session and resumes the turn from its
    /// journal): its end is not reported, or it would end the resumed turn, which has the same response id.
    pub abandoned: Arc<std::sync::atomic::AtomicBool>,
}

impl TurnShared {
    /// Gives the turn up: it stops, and its end goes unreported.
    pub fn abandon(&self) {
        self.abandoned.store(true, std::sync::atomic::Ordering::Relaxed);
        self.cancel.cancel();
    }
}

/// Reports how a turn ended to its session's actor — unless the turn was given up (see [`TurnShared::abandon`]).
pub async fn report_end(
    sessions: &Sessions,
    shared: &TurnShared,
    id: &SessionId,
    response_id: &str,
    outcome: TurnOutcome,
) {
    if shared.abandoned.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::info!(session = %id, response = %response_id, "a turn given up to another replica stopped here");
        return;
    }
    if let Err(e) = sessions.end_turn(id, response_id, outcome).await {
        tracing::error!(session = %id, error = %e, "could not record the end of a turn; a restart resumes it from its journal");
    }
}

/// Something the running turn waits for, delivered by the actor when it is committed.
#[derive(Debug)]
pub enum Waiter {
    /// A client tool call's `function_call_output`, by call id.
    Output(String, oneshot::Sender<String>),
    /// A human's answer to an elicitation, by elicitation id.
    Approval(String, oneshot::Sender<Answer>),
}

/// Runs a turn; if it panics (a bug), the turn still ends — `failed`, with `internal_error` — so the session is
/// never left `running`, and its journal is dropped, so a restart does not replay into the same panic.
pub(super) async fn ended_even_if_it_panics(
    turn: impl Future<Output = ()> + Send + 'static,
    sessions: Sessions,
    shared: TurnShared,
    id: SessionId,
    response_id: String,
) {
    let Err(panic) = AssertUnwindSafe(turn).catch_unwind().await else { return };
    let why = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!(session = %id, response = %response_id, panic = %why, "a turn panicked; it ends failed");
    let message = format!(
        "the turn stopped on an internal error ({}); this is a bug in omnigent, the server log has the details. \
         Send a message to continue.",
        crate::ids::truncate(&why, 300)
    );
    let outcome = TurnOutcome::Failed { code: FailureCode::InternalError, message };
    report_end(&sessions, &shared, &id, &response_id, outcome).await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::protocol::EventType;
    use crate::record::SessionStatus;
    use crate::session::{Input, NewSession, Published};
    use crate::store::Store;

    /// A turn with a bug.
    struct Panics;

    impl TurnRunner for Panics {
        fn run(&self, _: Sessions, _: TurnStart) -> BoxFuture<'static, ()> {
            async { panic!("deliberately broken turn") }.boxed()
        }
    }

    #[test]
    fn failures_say_where_they_came_from() {
        assert_eq!(FailureCode::of("rate_limited").source(), "llm");
        assert_eq!(FailureCode::of("missing_api_key").source(), "llm");
        assert_eq!(FailureCode::of("native_api_error").source(), "llm");
        assert_eq!(FailureCode::of("native_process_exited").source(), "harness");
        assert_eq!(FailureCode::of("my_harness_gave_up").source(), "harness");
        assert_eq!(FailureCode::NoHarness.source(), "harness");
        assert_eq!(FailureCode::PolicyDenied.source(), "execution");
        assert_eq!(FailureCode::InternalError.source(), "execution");
    }

    #[tokio::test]
    async fn a_turn_that_panics_ends_failed_and_the_session_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("p.db").display())).await.unwrap();
        let sessions = Sessions::new(store, CancellationToken::new(), Arc::new(Panics));
        let config = json!({"name": "broken", "executor": {"harness": "any"}});
        let id = sessions.create(NewSession { config, ..NewSession::default() }).await.unwrap().id;
        let (mut events, _) = sessions.subscribe(&id).await.unwrap();
        for turn in 0..2 {
            let message =
                Input::Message { content: vec![json!({"type": "input_text", "text": "hi"})], created_by: None };
            sessions.post(&id, message).await.unwrap();
            let failed = async {
                loop {
                    if let Ok(Published::Event(e)) = events.recv().await
                        && e.event_type == EventType::ResponseFailed.as_str()
                    {
                        return e;
                    }
                }
            };
            let failed = tokio::time::timeout(Duration::from_secs(10), failed).await.expect("the turn ended");
            assert_eq!(failed.data["response"]["error"]["code"], "internal_error", "turn {turn}");
            assert_eq!(failed.data["source"], "execution", "turn {turn}");
            let record = sessions.get(&id).await.unwrap();
            assert_eq!(record.status, SessionStatus::Failed);
            let error = record.last_task_error.unwrap();
            assert!(error.message.contains("deliberately broken turn"), "{}", error.message);
            assert!(sessions.store().journal(&id).await.unwrap().is_empty(), "nothing left to replay into the bug");
        }
    }
}
