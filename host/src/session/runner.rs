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
use crate::model::SessionRecord;

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
    Failed { code: String, message: String },
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
