//! Session domain types shared by the store, the session actors and the API.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::ids::SessionId;

/// The seed's lifecycle states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Ready; no turn is running.
    Idle,
    /// A turn is in progress.
    Running,
    /// The last turn ended with an error (see `last_task_error`).
    Failed,
    /// A policy asked a human and the turn waits for the answer.
    Paused,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 4] = [Self::Idle, Self::Running, Self::Failed, Self::Paused];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Failed => "failed",
            Self::Paused => "paused",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// Started by a user or a client.
    Default,
    /// A sub-agent's child session, started by its parent's turn.
    SubAgent,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Default => "default",
            SessionKind::SubAgent => "sub_agent",
        }
    }

    pub fn parse(s: &str) -> Option<SessionKind> {
        [SessionKind::Default, SessionKind::SubAgent].into_iter().find(|k| k.as_str() == s)
    }
}

/// Why the last turn failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskError {
    pub code: String,
    pub message: String,
}

/// One session as stored: the cached fold of its event log.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub id: SessionId,
    pub created_at_us: i64,
    pub updated_at_us: i64,
    pub title: Option<String>,
    pub labels: Map<String, Value>,
    pub status: SessionStatus,
    pub last_task_error: Option<TaskError>,
    /// The session config (Omnigent's agent YAML, as JSON).
    pub config: Value,
    pub agent_id: Option<String>,
    pub kind: SessionKind,
    pub parent_session_id: Option<SessionId>,
    /// Sequence number of the newest event in the log (0 when empty).
    pub last_seq: i64,
    /// The response of the turn in progress, if any.
    pub active_response_id: Option<String>,
    /// Token usage so far, per model (Omnigent's `usage_by_model`).
    pub usage_by_model: Map<String, Value>,
    /// Policies added over REST, policy state, and elicitations.
    pub policy: PolicyFold,
    /// Archived sessions leave the default list.
    pub archived: bool,
    /// What a client set with PATCH.
    pub settings: SessionSettings,
    /// The writer's fence this record was read under: a replica that claims the session bumps it (Postgres
    /// replicas; it stays 0 otherwise), and every commit is refused unless the stored epoch is still this one.
    pub writer_epoch: i64,
}

/// Per-session settings a client changes (Omnigent's `PATCH /v1/sessions/{id}` fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSettings {
    /// `none` … `max`: sent with each OpenAI-wire model call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// The model turns use instead of the config's, from the next turn on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_override: Option<String>,
    /// The id of the session inside the tool it wraps (a native CLI's session); set once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_session_id: Option<String>,
    /// The runner whose machine runs this session's model calls and tools (`omnigent runner`); None: the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_id: Option<String>,
}

/// The policy side of a session, a fold of its log like the rest of the record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyFold {
    /// Policies added to this session over REST (`SessionPolicyObject`s), in the order they were added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Value>,
    /// The per-session state policies read and write (counters, recent calls, approved thresholds).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub state: Map<String, Value>,
    /// `response.elicitation_request` events still waiting for an answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Value>,
    /// Answers given during the turn in progress (elicitation id → `accept`/`decline`/`cancel`), kept until the turn
    /// ends so a turn replayed after a restart finds them.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub resolved: Map<String, Value>,
}

impl PolicyFold {
    /// The pending request with this elicitation id.
    pub fn pending(&self, elicitation_id: &str) -> Option<&Value> {
        self.pending.iter().find(|p| p["elicitation_id"] == elicitation_id)
    }
}

impl SessionRecord {
    pub fn new(config: Value, title: Option<String>, labels: Map<String, Value>, now_us: i64) -> Self {
        SessionRecord {
            id: SessionId::new(),
            created_at_us: now_us,
            updated_at_us: now_us,
            title,
            labels,
            status: SessionStatus::Idle,
            last_task_error: None,
            config,
            agent_id: None,
            kind: SessionKind::Default,
            parent_session_id: None,
            last_seq: 0,
            active_response_id: None,
            usage_by_model: Map::new(),
            policy: PolicyFold::default(),
            archived: false,
            settings: SessionSettings::default(),
            writer_epoch: 0,
        }
    }
}

/// An event in a session's log. `data` is the full wire payload and carries `type`.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub event_type: String,
    pub data: Value,
    pub created_at_us: i64,
}

/// A transcript item (message, function call, …): a fold of the events that produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: String,
    /// Sequence number of the event that last wrote this item; orders the transcript.
    pub position: i64,
    pub response_id: Option<String>,
    pub item_type: String,
    pub status: String,
    pub created_at_us: i64,
    pub data: Value,
    pub created_by: Option<String>,
}

impl Item {
    /// Omnigent's flat rendering (`/items`, `response.output_item.done.item`): `data` spread over the common fields.
    pub fn flat(&self) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), self.id.clone().into());
        out.insert("object".into(), "conversation.item".into());
        out.insert("type".into(), self.item_type.clone().into());
        out.insert("status".into(), self.status.clone().into());
        out.insert("response_id".into(), opt(&self.response_id));
        out.insert("created_at".into(), secs(self.created_at_us).into());
        if let Some(by) = &self.created_by {
            out.insert("created_by".into(), by.clone().into());
        }
        if let Value::Object(data) = &self.data {
            for (k, v) in data {
                let key = if k == "agent" { "model".to_string() } else { k.clone() };
                out.entry(key).or_insert_with(|| v.clone());
            }
        }
        Value::Object(out)
    }

    /// Omnigent's nested rendering (snapshot `items`).
    pub fn nested(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "type": self.item_type,
            "status": self.status,
            "response_id": self.response_id,
            "created_at": secs(self.created_at_us),
            "data": self.data,
            "created_by": self.created_by,
        })
    }
}

fn opt(v: &Option<String>) -> Value {
    v.clone().map(Value::String).unwrap_or(Value::Null)
}

/// Merges label changes: a null value removes the label.
pub fn merge_labels(labels: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (k, v) in changes {
        if v.is_null() {
            labels.remove(k);
        } else {
            labels.insert(k.clone(), v.clone());
        }
    }
}

/// What a model's entry of `usage_by_model` says was spent (`total_cost_usd`, or `cost_usd` as stored by
/// versions before).
pub fn model_cost_usd(entry: &Value) -> f64 {
    entry["total_cost_usd"].as_f64().or_else(|| entry["cost_usd"].as_f64()).unwrap_or(0.0)
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// A UTC calendar time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl UtcTime {
    /// `secs` since the epoch as a calendar time (Howard Hinnant's civil-from-days algorithm).
    pub fn of_secs(secs: i64) -> UtcTime {
        let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: day_secs / 3_600,
            minute: day_secs % 3_600 / 60,
            second: day_secs % 60,
        }
    }
}

/// The UTC calendar day (`YYYY-MM-DD`) of a time in microseconds.
pub fn utc_day(us: i64) -> String {
    let UtcTime { year, month, day, .. } = UtcTime::of_secs(us.div_euclid(1_000_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// `us` (microseconds since the epoch) as an ISO-8601 UTC timestamp with milliseconds, e.g.
/// `2026-12-02T10:58:06.123Z` (what Omnigent's clients parse as a datetime).
pub fn iso8601(us: i64) -> String {
    let UtcTime { year, month, day, hour, minute, second } = UtcTime::of_secs(us.div_euclid(1_000_000));
    let millis = us.rem_euclid(1_000_000) / 1_000;
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// Wire timestamps are unix seconds.
pub fn secs(us: i64) -> i64 {
    us.div_euclid(1_000_000)
}

#[cfg(test)]
mod iso_tests {
    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::iso8601(1_796_187_632_060_123), "2026-12-02T05:00:32.060Z");
        assert_eq!(super::iso8601(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(super::iso8601(-1_000), "1969-12-31T23:59:59.999Z");
    }
}
