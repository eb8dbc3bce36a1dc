//! A draft: the writes of one transaction, built against a copy of the session so a failed commit changes nothing.
//! Every event appended to it is numbered and folded at once (`fold`), so later inputs of the same batch see its
//! effect.

use serde_json::{Map, Value, json};

use super::Patch;
use super::fold::{comment_change_of, fold, item_of};
use super::runner::{FailureCode, TurnOutcome};
use crate::config::SessionConfig;
use crate::protocol::{self, EventType, NewEvent, ResponseModel, ResponseStatus};
use crate::record::{Item, SessionRecord, SessionStatus, StoredEvent, TaskError, model_cost_usd, now_us, secs};
use crate::store::{CommentChange, DailySpend, FileChange, JournalEntry};

pub(super) struct Draft {
    pub record: SessionRecord,
    pub events: Vec<StoredEvent>,
    pub items: Vec<Item>,
    pub comments: Vec<CommentChange>,
    pub files: Vec<FileChange>,
    pub journal: Vec<JournalEntry>,
    pub clear_journal: bool,
    /// What the turn ending in this draft spent on its model, for the day's total.
    pub spend: Option<DailySpend>,
}

/// A turn the draft decided to start (or resume), to be started once the draft is committed.
pub(super) struct PlannedTurn {
    pub response_id: String,
    pub model: ResponseModel,
    pub config: Box<SessionConfig>,
    /// The turn was cut by a restart; it replays its journal.
    pub resume: bool,
}

/// The turn whose end a draft records.
pub(super) struct EndingTurn<'a> {
    pub response_id: &'a str,
    pub model: &'a ResponseModel,
    pub created_at_us: i64,
    /// The items the response produced (its `output`).
    pub output: &'a [Value],
}

impl Draft {
    pub fn new(record: &SessionRecord) -> Self {
        Draft {
            record: record.clone(),
            events: Vec::new(),
            items: Vec::new(),
            comments: Vec::new(),
            files: Vec::new(),
            journal: Vec::new(),
            clear_journal: false,
            spend: None,
        }
    }

    /// Whether committing it would write anything.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.journal.is_empty() && self.files.is_empty() && !self.clear_journal
    }

    /// Appends an event: numbers it, folds it into the session and its items.
    pub fn emit(&mut self, event: NewEvent) {
        let (event_type, payload) = event.into_parts();
        self.emit_at(event_type, payload, now_us());
    }

    /// Appends an event that happened at `at` (a fork copies history with its times).
    pub fn emit_at(&mut self, event_type: String, payload: Value, at: i64) {
        let seq = self.record.last_seq + 1;
        let mut data = match payload {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        data.insert("type".into(), event_type.as_str().into());
        data.insert("sequence_number".into(), seq.into());
        let event = StoredEvent { seq, event_type, data: Value::Object(data), created_at_us: at };
        fold(&mut self.record, &event);
        if let Some(item) = item_of(&event) {
            self.items.retain(|i| i.id != item.id);
            self.items.push(item);
        }
        if let Some(change) = comment_change_of(&event) {
            self.comments.push(change);
        }
        self.events.push(event);
    }

    pub fn set_status(&mut self, status: SessionStatus, error: Option<TaskError>) {
        let event = protocol::status(&self.record.id, status, error.as_ref());
        self.emit(event);
    }

    /// A message starts a turn with the session's harness. A session whose config cannot run a turn fails it
    /// before any model is called, as Omnigent does.
    pub fn start_turn(&mut self) -> Option<PlannedTurn> {
        let config = self.turn_config()?;
        let response_id = crate::ids::response_id_for(&self.record.id);
        let model = ResponseModel { agent: config.name.clone(), llm: config.executor.model_name().to_string() };
        self.set_status(SessionStatus::Running, None);
        let response = protocol::response_object(
            &response_id,
            ResponseStatus::InProgress,
            &model,
            secs(now_us()),
            Some(&self.record.id),
        );
        self.emit(protocol::response(EventType::ResponseCreated, response.clone()));
        self.emit(protocol::response(EventType::ResponseInProgress, response));
        // A new turn's journal starts empty (a leftover of a turn whose end was never recorded is dropped).
        self.clear_journal = true;
        Some(PlannedTurn { response_id, model, config: Box::new(config), resume: false })
    }

    /// After a restart: picks the turn in progress up again (the turn replays its journal), or, when there is no
    /// turn to pick up, records that it was lost.
    pub fn resume_turn(&mut self) -> Option<PlannedTurn> {
        let Some(response_id) = self.record.active_response_id.clone() else {
            let error = TaskError {
                code: FailureCode::ServerRestarted.as_str().into(),
                message: "the server stopped while this session was running and no turn was recorded as in \
                          progress; what happened until then is in the transcript. Send a message to continue."
                    .into(),
            };
            self.set_status(SessionStatus::Failed, Some(error));
            return None;
        };
        let config = self.turn_config()?;
        let model = ResponseModel { agent: config.name.clone(), llm: config.executor.model_name().to_string() };
        Some(PlannedTurn { response_id, model, config: Box::new(config), resume: true })
    }

    /// The config a turn runs with, or the session marked failed with why there is none.
    /// The config a turn runs with: the session's, with its model override.
    fn turn_config(&mut self) -> Option<SessionConfig> {
        let harness = self.record.config.pointer("/executor/harness").and_then(Value::as_str);
        if harness.is_none_or(str::is_empty) {
            let error = TaskError {
                code: FailureCode::NoHarness.as_str().into(),
                message: "this session's config names no executor.harness, so no turn can run; create the session \
                          with a config that sets executor.harness"
                    .into(),
            };
            self.set_status(SessionStatus::Failed, Some(error));
            return None;
        }
        match serde_json::from_value::<SessionConfig>(self.record.config.clone()) {
            Ok(mut c) => {
                // A model override set with PATCH is the model of the turns that start after it.
                if let Some(model) = &self.record.settings.model_override {
                    c.executor.model = Some(model.clone());
                }
                Some(c)
            }
            Err(e) => {
                let error = TaskError {
                    code: FailureCode::InvalidConfig.as_str().into(),
                    message: format!("the session config is invalid: {e}"),
                };
                self.set_status(SessionStatus::Failed, Some(error));
                None
            }
        }
    }

    /// Records how a turn ended: its response's last event, the usage totals, the session's new state.
    pub fn end_turn(&mut self, turn: &EndingTurn<'_>, outcome: TurnOutcome) {
        let session = self.record.id.clone();
        let response = |status| {
            protocol::response_object(turn.response_id, status, turn.model, secs(turn.created_at_us), Some(&session))
        };
        self.clear_journal = true;
        match outcome {
            TurnOutcome::Completed { usage, model, cost_usd } => {
                let total = usage.total();
                let mut r = response(ResponseStatus::Completed);
                r["completed_at"] = secs(now_us()).into();
                // As Omnigent: the output of a completed response only.
                r["output"] = Value::Array(turn.output.to_vec());
                r["usage"] = json!({"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                    "total_tokens": total, "output_tokens_details": {"reasoning_tokens": 0},
                    "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "model": model});
                self.emit(protocol::response(EventType::ResponseCompleted, r));
                // The running total per model (the session's fold keeps the latest).
                let mut by_model = self.record.usage_by_model.clone();
                let entry = by_model.entry(model).or_insert_with(|| json!({}));
                if !entry.is_object() {
                    *entry = json!({});
                }
                for (key, add) in [
                    ("input_tokens", usage.input_tokens),
                    ("output_tokens", usage.output_tokens),
                    ("total_tokens", total),
                    // Not counted separately (yet): present, as Omnigent's clients read them.
                    ("cache_read_input_tokens", 0),
                    ("cache_creation_input_tokens", 0),
                ] {
                    entry[key] = (entry[key].as_u64().unwrap_or(0) + add).into();
                }
                // Omnigent names it `total_cost_usd`; sessions stored before read as `cost_usd`.
                let spent = model_cost_usd(entry);
                if let Some(fields) = entry.as_object_mut() {
                    fields.remove("cost_usd");
                }
                entry["total_cost_usd"] = (spent + cost_usd).into();
                if cost_usd > 0.0 {
                    let day = crate::record::utc_day(now_us());
                    self.spend = Some(DailySpend { day, cost_usd });
                }
                let total_cost: f64 = by_model.values().map(model_cost_usd).sum();
                self.emit(protocol::usage(&session, total, total_cost, &by_model));
                self.set_status(SessionStatus::Idle, None);
            }
            TurnOutcome::Interrupted => {
                let mut r = response(ResponseStatus::Incomplete);
                r["incomplete_details"] = json!({"reason": "user_interrupt"});
                self.emit(protocol::response(EventType::ResponseIncomplete, r));
                self.emit(protocol::interrupted(turn.response_id, secs(now_us())));
                self.set_status(SessionStatus::Idle, None);
            }
            TurnOutcome::Failed { code, message } => {
                let mut r = response(ResponseStatus::Failed);
                let source = code.source();
                let code = code.as_str().to_string();
                r["error"] = json!({"code": code, "message": message});
                self.emit(protocol::response_failed(r, source));
                self.set_status(SessionStatus::Failed, Some(TaskError { code, message }));
            }
        }
    }

    pub fn patch(&mut self, patch: Patch) {
        if let Some(title) = patch.title
            && title != self.record.title
        {
            self.emit(protocol::title(&self.record.id, title.as_deref()));
        }
        if let Some(changes) = patch.labels {
            let mut labels = self.record.labels.clone();
            crate::record::merge_labels(&mut labels, &changes);
            if labels != self.record.labels {
                self.emit(protocol::labels(&self.record.id, &labels));
            }
        }
        if let Some(archived) = patch.archived
            && archived != self.record.archived
        {
            self.emit(protocol::archived(&self.record.id, archived));
        }
        if let Some(effort) = patch.reasoning_effort
            && effort != self.record.settings.reasoning_effort
        {
            self.emit(protocol::reasoning_effort(&self.record.id, effort.as_deref()));
        }
        if let Some(model) = patch.model_override
            && model != self.record.settings.model_override
        {
            let base = self.record.config.pointer("/executor/model").and_then(Value::as_str);
            let effective = model.as_deref().or(base);
            self.emit(protocol::model(&self.record.id, effective, model.as_deref()));
        }
        if let Some(runner) = patch.runner_id
            && runner != self.record.settings.runner_id
        {
            self.emit(protocol::runner(&self.record.id, runner.as_deref()));
        }
        if let Some(external) = patch.external_session_id
            && self.record.settings.external_session_id.as_deref() != Some(external.as_str())
        {
            self.emit(protocol::external_session_id(&self.record.id, &external));
        }
    }
}
