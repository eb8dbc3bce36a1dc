//! The fold: what each event of a session's log changes in the session's cached state, its transcript items and
//! its comments. The session row, the items and the comments are exactly the fold of the log.

use serde_json::Value;

use crate::model::{Item, SessionRecord, SessionStatus, StoredEvent};
use crate::protocol::EventType;
use crate::store::CommentChange;

/// Folds one event into the session's cached state. The session row is exactly the fold of its log.
pub fn fold(record: &mut SessionRecord, event: &StoredEvent) {
    record.last_seq = event.seq;
    record.updated_at_us = event.created_at_us;
    let data = &event.data;
    let Some(event_type) = EventType::parse(&event.event_type) else { return };
    match event_type {
        EventType::SessionStatus => {
            if let Some(status) = data.get("status").and_then(Value::as_str).and_then(SessionStatus::parse) {
                record.status = status;
                if matches!(status, SessionStatus::Idle | SessionStatus::Failed) {
                    record.active_response_id = None;
                }
                record.last_task_error = match status {
                    SessionStatus::Failed => data.get("error").and_then(|e| serde_json::from_value(e.clone()).ok()),
                    _ => None,
                };
            }
        }
        EventType::SessionTitle => record.title = data.get("title").and_then(Value::as_str).map(str::to_string),
        EventType::ResponseCreated => {
            record.active_response_id = data.pointer("/response/id").and_then(Value::as_str).map(str::to_string);
        }
        t if t.ends_response()
            && record.active_response_id.as_deref() == data.pointer("/response/id").and_then(Value::as_str) =>
        {
            record.active_response_id = None;
            // The turn is over: nothing it asked is pending any more, and its answers are no longer needed.
            record.policy.pending.clear();
            record.policy.resolved.clear();
        }
        EventType::ElicitationRequest => {
            let own = data
                .pointer("/params/target_session_id")
                .and_then(Value::as_str)
                .is_none_or(|t| t == record.id.as_str());
            if let Some(eid) = data.get("elicitation_id").and_then(Value::as_str)
                && own
                && !record.policy.resolved.contains_key(eid)
            {
                record.policy.pending.retain(|p| p["elicitation_id"] != eid);
                record.policy.pending.push(data.clone());
            }
        }
        EventType::ElicitationResolved => {
            if let Some(eid) = data.get("elicitation_id").and_then(Value::as_str)
                && record.policy.pending(eid).is_some()
            {
                record.policy.pending.retain(|p| p["elicitation_id"] != eid);
                record.policy.resolved.insert(eid.to_string(), data.get("action").cloned().unwrap_or(Value::Null));
            }
        }
        EventType::PolicyState => {
            if let Some(changes) = data
                .get("updates")
                .and_then(|u| serde_json::from_value::<Vec<crate::policy::StateChange>>(u.clone()).ok())
            {
                crate::policy::apply_state(&mut record.policy.state, &changes);
            }
        }
        EventType::PolicyCreated | EventType::PolicyUpdated => {
            if let Some(policy) = data.get("policy")
                && let Some(id) = policy.get("id").and_then(Value::as_str)
            {
                match record.policy.policies.iter_mut().find(|p| p["id"] == id) {
                    Some(existing) => *existing = policy.clone(),
                    None => record.policy.policies.push(policy.clone()),
                }
            }
        }
        EventType::PolicyDeleted => {
            if let Some(id) = data.get("policy_id").and_then(Value::as_str) {
                record.policy.policies.retain(|p| p["id"] != id);
            }
        }
        EventType::SessionUsage => {
            // The event carries the running total, so the fold is the latest one.
            if let Some(Value::Object(usage)) = data.get("usage_by_model") {
                record.usage_by_model = usage.clone();
            }
        }
        EventType::SessionLabels => {
            if let Some(Value::Object(labels)) = data.get("labels") {
                record.labels = labels.clone();
            }
        }
        // Labels a policy sets: merged, a null value removes the label.
        EventType::SessionLabelsSet => {
            if let Some(Value::Object(changes)) = data.get("set_labels") {
                crate::model::merge_labels(&mut record.labels, changes);
            }
        }
        _ => {}
    }
}

/// The change to the comments fold an event makes, if any.
pub fn comment_change_of(event: &StoredEvent) -> Option<CommentChange> {
    let comment = event.data.get("comment")?;
    let id = comment.get("id")?.as_str()?.to_string();
    match EventType::parse(&event.event_type)? {
        EventType::CommentCreated | EventType::CommentUpdated => Some(CommentChange::Upsert {
            path: comment.get("path").and_then(Value::as_str).unwrap_or_default().to_string(),
            created_at_us: event.created_at_us,
            data: comment.clone(),
            id,
        }),
        EventType::CommentDeleted => Some(CommentChange::Delete { id }),
        _ => None,
    }
}

/// The transcript item an event creates or updates, if any.
pub fn item_of(event: &StoredEvent) -> Option<Item> {
    match EventType::parse(&event.event_type)? {
        EventType::SessionInputConsumed => {
            let inner = event.data.get("data")?;
            Some(Item {
                id: inner.get("item_id")?.as_str()?.to_string(),
                position: event.seq,
                response_id: None,
                item_type: inner.get("type")?.as_str()?.to_string(),
                status: "completed".into(),
                created_at_us: event.created_at_us,
                data: inner.get("data").cloned().unwrap_or(Value::Null),
                created_by: inner.get("created_by").and_then(Value::as_str).map(str::to_string),
            })
        }
        EventType::OutputItemDone => {
            let item = event.data.get("item")?;
            let mut data = item.as_object()?.clone();
            let id = data.remove("id")?.as_str()?.to_string();
            let item_type = data.remove("type")?.as_str()?.to_string();
            let status =
                data.remove("status").and_then(|v| v.as_str().map(str::to_string)).unwrap_or("completed".into());
            let response_id = data.remove("response_id").and_then(|v| v.as_str().map(str::to_string));
            let created_by = data.remove("created_by").and_then(|v| v.as_str().map(str::to_string));
            data.remove("created_at");
            data.remove("object");
            Some(Item {
                id,
                position: event.seq,
                response_id,
                item_type,
                status,
                created_at_us: event.created_at_us,
                data: Value::Object(data),
                created_by,
            })
        }
        _ => None,
    }
}
