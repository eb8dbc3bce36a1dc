//! The seam between a session's actor and the turns it starts. The actor knows a turn only through this
//! protocol: it starts one through a [`TurnRunner`] (a WASM harness turn today, a native bridge next), shares a
//! [`TurnShared`] with it, delivers what it waits for ([`Waiter`]) and records its [`TurnOutcome`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{ApprovalAction, Sessions};
use crate::config::SessionConfig;
use crate::record::SessionRecord;

/// Starts turns. The actor holds one for the process and calls it for each turn it begins or resumes.
pub trait TurnRunner: Send + Sync {
    /// The turn to run; it reports its end with [`Sessions::end_turn`].
    fn run(&self, sessions: Sessions, turn: TurnStart) -> BoxFuture<'static, ()>;
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
}

/// State the actor shares with a running turn.
#[derive(Clone, Default)]
pub struct TurnShared {
    pub cancel: CancellationToken,
    /// Messages that arrived while the turn ran and the harness has not taken yet.
    pub steering: Arc<Mutex<VecDeque<String>>>,
}

/// Something the running turn waits for, delivered by the actor when it is committed.
#[derive(Debug)]
pub enum Waiter {
    /// A client tool call's `function_call_output`, by call id.
    Output(String, oneshot::Sender<String>),
    /// A human's answer to an elicitation, by elicitation id.
    Approval(String, oneshot::Sender<ApprovalAction>),
}
