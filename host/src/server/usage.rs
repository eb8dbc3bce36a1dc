//! `GET /v1/usage`: what model calls cost — today, the last 7 and 30 UTC days, all time, per day, and per
//! top-level session (its sub-agents included) — in Omnigent's `UsageReport` shape (`omnigent usage` prints it).

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use crate::record::{SessionKind, SessionRecord, model_cost_usd, now_us, secs, utc_day};
use crate::session::SessionError;
use crate::store::{Page, SessionFilter, SessionSort, Store, StoreError};

/// Sessions in the report's detail, most recently active first.
const MAX_SESSIONS: u32 = 100;
/// Children read per session of a subtree.
const MAX_CHILDREN: u32 = 1000;
const DAY_US: i64 = 86_400_000_000;

/// The spend summary (from the per-day totals each turn's end adds to) and the per-session detail (from each
/// session's usage), as Omnigent's report has them: the two need not tie to the cent.
#[utoipa::path(get, path = "/v1/usage", responses((status = 200, description = "Omnigent's UsageReport", body = Object)))]
pub async fn usage(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.sessions.store();
    let now = now_us();
    let day = |back: i64| utc_day(now - back * DAY_US);
    let (days, total) = store.daily_spend(&day(29)).await.map_err(SessionError::from)?;
    let since =
        |first: String| days.iter().filter(|d| d.day >= first).map(|d| d.cost_usd).fold(0.0, |sum, cost| sum + cost);
    let page = Page { limit: MAX_SESSIONS, after: None, before: None, descending: true };
    let filter = SessionFilter { kind: Some(SessionKind::Default), sort: SessionSort::Updated, ..Default::default() };
    let (sessions, _) = store.list_sessions(&page, filter).await.map_err(SessionError::from)?;
    let mut detail = Vec::with_capacity(sessions.len());
    for session in sessions {
        let descendants = descendants(store, &session).await.map_err(SessionError::from)?;
        detail.push(session_usage(&session, &descendants));
    }
    Ok(Json(json!({
        "object": "usage_report",
        "cost_today": since(day(0)),
        "cost_last_7d": since(day(6)),
        "cost_last_30d": since(day(29)),
        "total_cost_usd": total,
        "daily_costs": days.iter().map(|d| json!({"day": d.day, "cost_usd": d.cost_usd})).collect::<Vec<_>>(),
        "sessions": detail,
    })))
}

/// A session's sub-agents, theirs, and so on (each sub-agent runs as a child session).
async fn descendants(store: &Store, root: &SessionRecord) -> Result<Vec<SessionRecord>, StoreError> {
    let mut found = Vec::new();
    let mut parents = vec![root.id.clone()];
    while let Some(parent) = parents.pop() {
        let children = store.list_children(&parent, MAX_CHILDREN).await?;
        parents.extend(children.iter().map(|c| c.id.clone()));
        found.extend(children);
    }
    Ok(found)
}

/// One session's line: its cost with all its sub-agents', and its own per-model costs. (Sums start at +0.0: an
/// empty `f64` sum is -0.0, which clients print as "$-0.00".)
fn session_usage(session: &SessionRecord, descendants: &[SessionRecord]) -> Value {
    let cost = |s: &SessionRecord| s.usage_by_model.values().map(model_cost_usd).fold(0.0, |sum, cost| sum + cost);
    let models: Map<String, Value> =
        session.usage_by_model.iter().map(|(model, entry)| (model.clone(), model_cost_usd(entry).into())).collect();
    let config = |pointer: &str| session.config.pointer(pointer).cloned().unwrap_or(Value::Null);
    json!({
        "id": session.id.as_str(),
        "created_at": secs(session.created_at_us),
        "updated_at": secs(session.updated_at_us),
        "title": session.title,
        "cost_usd": cost(session) + descendants.iter().map(cost).fold(0.0, |sum, cost| sum + cost),
        "models": models,
        "harness": config("/executor/harness"),
        "other_harnesses": null,
        "llm_model": config("/executor/model"),
        "agent_name": config("/name"),
    })
}
