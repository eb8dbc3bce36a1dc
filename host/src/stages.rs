//! Where a turn's time goes. Each stage of the turn path (the ack of a post, a commit, the harness's instance, a
//! model call, an emit, a policy evaluation, …) runs in a `tracing` span of target `stage` named for it. A server
//! started with `--stage-times` keeps every such span's wall time (creation to close) and serves the breakdown at
//! `GET /v1/debug/stages`; otherwise nothing listens to the target and a stage span costs one relaxed atomic load.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::span::{Attributes, Id};
use tracing::{Span, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The `tracing` target of every stage span.
pub const TARGET: &str = "stage";

/// Most durations kept per stage (the oldest are overwritten): a bench run's worth.
const KEPT: usize = 200_000;

macro_rules! stages {
    ($($variant:ident = $name:literal: $doc:literal,)*) => {
        /// A stage of the turn path.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Stage {
            $(#[doc = $doc] $variant,)*
        }

        impl Stage {
            pub const ALL: &[Stage] = &[$(Stage::$variant,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Stage::$variant => $name,)*
                }
            }

            /// A span for this stage: time it by entering it, or by instrumenting a future with it.
            pub fn span(self) -> Span {
                // One callsite per stage, so each is enabled (or not) on its own.
                match self {
                    $(Stage::$variant => tracing::info_span!(target: TARGET, $name),)*
                }
            }

            pub fn description(self) -> &'static str {
                match self {
                    $(Stage::$variant => $doc,)*
                }
            }

            fn of(name: &str) -> Option<Stage> {
                match name {
                    $($name => Some(Stage::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

stages! {
    Request = "request": "A `POST /events` inside the server, head parsed to response ready (middleware, body, ack).",
    Ack = "ack": "An input's handler: parsed, committed by its session's actor, answered (the 202 of `POST /events`).",
    Queue = "queue": "An input waiting in its session's mailbox until the actor takes it.",
    Commit = "commit": "One transaction of one session: waiting for the writer's turn, writing, committing.",
    Publish = "publish": "A committed transaction's events handed to the session's subscribers.",
    TurnSpawn = "turn_spawn": "A turn started by the actor until its task first runs.",
    Prepare = "prepare": "Before the harness runs: its component, the model provider, tools, skills, MCP, policies, the journal.",
    Instantiate = "instantiate": "A fresh instance of the harness component (store, linker, start).",
    History = "history": "The conversation read from the transcript for the harness.",
    ModelCall = "model_call": "One model call, request sent to the last streamed chunk recorded.",
    Emit = "emit": "Events a turn records through its session's actor (queue, commit, publish).",
    Policy = "policy": "One policy component evaluating one event (a fresh instance).",
    TurnEnd = "turn_end": "A turn's end recorded by the actor (its response, the idle status).",
    Turn = "turn": "A whole turn, from the actor starting it to its end committed.",
}

/// Durations kept for one stage.
#[derive(Default)]
struct Samples {
    micros: Vec<u32>,
    /// Where the next sample goes once `micros` is full.
    next: usize,
    count: u64,
}

impl Samples {
    fn push(&mut self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        if self.micros.len() < KEPT {
            self.micros.push(us);
        } else {
            self.micros[self.next] = us;
            self.next = (self.next + 1) % KEPT;
        }
        self.count += 1;
    }
}

/// The kept durations of every stage, process-wide (as the `tracing` dispatcher is).
struct Recorder {
    stages: Mutex<Vec<Samples>>,
}

static RECORDER: OnceLock<Recorder> = OnceLock::new();

/// Installs the recorder and returns the layer that feeds it: add it to the process's subscriber.
pub fn layer<S>() -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    RECORDER.get_or_init(|| Recorder { stages: Mutex::new(Stage::ALL.iter().map(|_| Samples::default()).collect()) });
    StageLayer.with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.target() == TARGET))
}

/// When a stage span began (kept in the span's extensions).
struct Began(Instant);

struct StageLayer;

impl<S> Layer<S> for StageLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Began(Instant::now()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(stage) = Stage::of(span.name()) else { return };
        let Some(began) = span.extensions().get::<Began>().map(|b| b.0) else { return };
        if let Some(recorder) = RECORDER.get() {
            recorder.stages.lock().unwrap()[stage as usize].push(began.elapsed());
        }
    }
}

/// One stage's durations, summarized.
#[derive(Debug, Serialize)]
pub struct StageSummary {
    pub stage: &'static str,
    pub description: &'static str,
    /// Spans closed since the last reset (the percentiles are over the newest of them).
    pub count: u64,
    pub p50_us: u32,
    pub p90_us: u32,
    pub p99_us: u32,
    pub mean_us: u32,
}

/// Whether this process keeps stage times (the server was started with `--stage-times`).
pub fn enabled() -> bool {
    RECORDER.get().is_some()
}

/// Every stage that ran since the last reset, in the order of the turn path; None when stage times are off.
pub fn summary() -> Option<Vec<StageSummary>> {
    let recorder = RECORDER.get()?;
    // Copied under the lock, sorted outside it: closing spans record meanwhile.
    let copied: Vec<(u64, Vec<u32>)> =
        recorder.stages.lock().unwrap().iter().map(|s| (s.count, s.micros.clone())).collect();
    let mut out = Vec::new();
    for (stage, (count, mut sorted)) in Stage::ALL.iter().zip(copied) {
        if count == 0 {
            continue;
        }
        sorted.sort_unstable();
        let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
        let mean = sorted.iter().map(|&us| u64::from(us)).sum::<u64>() / sorted.len() as u64;
        out.push(StageSummary {
            stage: stage.name(),
            description: stage.description(),
            count,
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            mean_us: u32::try_from(mean).unwrap_or(u32::MAX),
        });
    }
    Some(out)
}

/// Forgets every kept duration; false when stage times are off.
pub fn reset() -> bool {
    let Some(recorder) = RECORDER.get() else { return false };
    for samples in recorder.stages.lock().unwrap().iter_mut() {
        *samples = Samples::default();
    }
    true
}
