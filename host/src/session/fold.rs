//! The fold: what each event of a session's log changes in the session's cached state, its transcript items and
//! its comments. The session row, the items and the comments are exactly the fold of the log.

use serde_json::Value;

use crate::protocol::EventType;
use crate::record::{Item, SessionRecord, SessionStatus, StoredEvent};
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
        EventType::SessionModel => {
            record.settings.model_override = data.get("model_override").and_then(Value::as_str).map(str::to_string);
        }
        EventType::SessionReasoningEffort => {
            record.settings.reasoning_effort = data.get("reasoning_effort").and_then(Value::as_str).map(str::to_string);
        }
        EventType::SessionArchived => record.archived = data.get("archived").and_then(Value::as_bool).unwrap_or(false),
        EventType::SessionRunner => {
            record.settings.runner_id = data.get("runner_id").and_then(Value::as_str).map(str::to_string);
        }
        EventType::SessionExternalId => {
            record.settings.external_session_id =
                data.get("external_session_id").and_then(Value::as_str).map(str::to_string);
        }
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
                crate::record::merge_labels(&mut record.labels, changes);
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

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::ids::SessionId;
    use crate::protocol::{self, CommentChangeKind, NewEvent, ResponseStatus};
    use crate::record::{SessionKind, TaskError};

    fn record() -> SessionRecord {
        SessionRecord::new(json!({}), None, Map::new(), 0)
    }

    /// An event as the log stores it (`type` and `sequence_number` in its data).
    fn stored(record: &SessionRecord, event: NewEvent) -> StoredEvent {
        let seq = record.last_seq + 1;
        let (event_type, mut data) = event.into_parts();
        data["type"] = event_type.clone().into();
        data["sequence_number"] = seq.into();
        StoredEvent { seq, event_type, data, created_at_us: seq * 1000 }
    }

    fn apply(record: &mut SessionRecord, event: NewEvent) -> StoredEvent {
        let event = stored(record, event);
        fold(record, &event);
        event
    }

    fn response(record: &SessionRecord, t: EventType, id: &str) -> NewEvent {
        protocol::response(
            t,
            protocol::response_object(id, ResponseStatus::InProgress, &Default::default(), 0, Some(&record.id)),
        )
    }

    #[test]
    fn status_and_errors() {
        let mut r = record();
        let id = r.id.clone();
        let event = response(&r, EventType::ResponseCreated, "resp_1");
        apply(&mut r, event);
        assert_eq!(r.active_response_id.as_deref(), Some("resp_1"));
        let error = TaskError { code: "harness_trap".into(), message: "boom".into() };
        apply(&mut r, protocol::status(&id, SessionStatus::Failed, Some(&error)));
        assert_eq!(
            (r.status, r.last_task_error.clone(), r.active_response_id.clone()),
            (SessionStatus::Failed, Some(error), None)
        );
        apply(&mut r, protocol::status(&id, SessionStatus::Idle, None));
        assert_eq!((r.status, r.last_task_error.clone()), (SessionStatus::Idle, None));
        assert_eq!((r.last_seq, r.updated_at_us), (3, 3000), "the head moves with every event");
    }

    #[test]
    fn elicitations_are_pending_until_answered_and_forgotten_when_the_turn_ends() {
        let mut r = record();
        let id = r.id.clone();
        let event = response(&r, EventType::ResponseCreated, "resp_1");
        apply(&mut r, event);
        let ask = |eid: &str, target: &SessionId| {
            let policies = ["p".to_string()];
            protocol::elicitation_request(
                protocol::ElicitationRequest {
                    elicitation_id: eid,
                    message: "ok?",
                    phase: "tool_call",
                    policies: &policies,
                    content_preview: "",
                    tool_name: None,
                    call_id: None,
                    session: target,
                    response_id: "resp_1",
                    expires_at: 0,
                }
                .payload(),
            )
        };
        apply(&mut r, ask("e1", &id));
        apply(&mut r, ask("e_child", &SessionId::new()));
        assert_eq!(r.policy.pending.len(), 1, "a child's mirrored request is pending in the child, not here");
        apply(&mut r, protocol::elicitation_resolved("e1", json!("accept"), None));
        assert!(r.policy.pending.is_empty());
        assert_eq!(r.policy.resolved["e1"], "accept");
        apply(&mut r, ask("e1", &id));
        assert!(r.policy.pending.is_empty(), "an answered request does not come back");
        let event = response(&r, EventType::ResponseCompleted, "resp_other");
        apply(&mut r, event);
        assert_eq!(r.policy.resolved.len(), 1, "another response's end changes nothing");
        let event = response(&r, EventType::ResponseCompleted, "resp_1");
        apply(&mut r, event);
        assert!(r.policy.resolved.is_empty() && r.active_response_id.is_none());
    }

    #[test]
    fn labels_policies_and_state() {
        let mut r = record();
        let id = r.id.clone();
        let labels = |v: serde_json::Value| v.as_object().unwrap().clone();
        apply(&mut r, protocol::labels(&id, &labels(json!({"a": 1, "b": 2}))));
        apply(&mut r, protocol::labels_set(&id, &labels(json!({"b": null, "c": 3}))));
        assert_eq!(Value::Object(r.labels.clone()), json!({"a": 1, "c": 3}));
        apply(&mut r, protocol::policy_saved(&id, json!({"id": "pol_1", "name": "x"}), true));
        apply(&mut r, protocol::policy_saved(&id, json!({"id": "pol_1", "name": "y"}), false));
        assert_eq!(r.policy.policies, [json!({"id": "pol_1", "name": "y"})]);
        apply(&mut r, protocol::policy_deleted(&id, "pol_1"));
        assert!(r.policy.policies.is_empty());
        let change = crate::policy::StateChange {
            key: "n".into(),
            action: crate::policy::StateAction::Increment,
            value: json!(2),
        };
        apply(&mut r, protocol::policy_state(&id, &[change]));
        assert_eq!(r.policy.state["n"], 2);
        apply(&mut r, protocol::title(&id, Some("t")));
        assert_eq!(r.title.as_deref(), Some("t"));
        assert_eq!(r.kind, SessionKind::Default);
    }

    #[test]
    fn items_and_comments_come_from_their_events() {
        let r = record();
        let input =
            stored(&r, protocol::input_consumed("msg_1", "message", json!({"role": "user"}), Some("me".into())));
        let item = item_of(&input).unwrap();
        assert_eq!(
            (item.id.as_str(), item.item_type.as_str(), item.created_by.as_deref()),
            ("msg_1", "message", Some("me"))
        );
        let done = protocol::item("fc_1", "function_call", "action_required", "resp_1", 0, json!({"name": "shell"}));
        let item = item_of(&stored(&r, protocol::output_item_done(done))).unwrap();
        assert_eq!((item.status.as_str(), item.response_id.as_deref()), ("action_required", Some("resp_1")));
        assert_eq!(item.data, json!({"name": "shell"}), "the common fields are columns, not data");
        assert!(item_of(&stored(&r, protocol::title(&r.id, None))).is_none());
        let comment = json!({"id": "c1", "path": "a.rs", "body": "hm"});
        let created = stored(&r, protocol::comment(&r.id, CommentChangeKind::Created, &comment));
        assert!(matches!(comment_change_of(&created), Some(CommentChange::Upsert { ref path, .. }) if path == "a.rs"));
        let deleted = stored(&r, protocol::comment(&r.id, CommentChangeKind::Deleted, &comment));
        assert_eq!(comment_change_of(&deleted), Some(CommentChange::Delete { id: "c1".into() }));
    }
}
