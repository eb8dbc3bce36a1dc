//! Review comments: `/v1/sessions/{id}/comments`. Every change is a `session.comment.*` event; the comments table
//! is its fold.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{ApiJson, ApiQuery, session_id};
use crate::ids::{SessionId, prefixed, truncate};
use crate::protocol::{self, CommentChangeKind};
use crate::record::{now_us, secs};
use crate::session::SessionError;

const MAX_BODY_CHARS: usize = 16 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    /// What the comment is about: an item id, a file path, …
    pub path: String,
    pub body: String,
    #[serde(default)]
    pub start_index: Option<i64>,
    #[serde(default)]
    pub end_index: Option<i64>,
    /// The text the comment was anchored to.
    #[serde(default)]
    pub anchor_content: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentPatch {
    /// `draft` or `addressed`.
    pub status: Option<String>,
    pub body: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendComments {
    pub comment_ids: Vec<String>,
    /// Opening line of the message (default: "Please address these review comments:").
    pub instruction: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CommentsQuery {
    /// Only comments on this path.
    pub path: Option<String>,
}

fn check_body(body: &str) -> Result<(), ApiError> {
    if body.trim().is_empty() || body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::invalid(format!("body must be 1 to {MAX_BODY_CHARS} characters")));
    }
    Ok(())
}

/// A comment's anchor: offsets from 0, the start not after the end.
fn check_range(start: Option<i64>, end: Option<i64>) -> Result<(), ApiError> {
    if start.is_some_and(|s| s < 0) || end.is_some_and(|e| e < 0) {
        return Err(ApiError::invalid("start_index and end_index must not be negative"));
    }
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(ApiError::invalid(format!("start_index ({s}) must not be after end_index ({e})")));
    }
    Ok(())
}

async fn emit(state: &AppState, id: &SessionId, change: CommentChangeKind, comment: &Value) -> Result<(), ApiError> {
    Ok(state.sessions.emit(id, vec![protocol::comment(id, change, comment)], Vec::new()).await?)
}

async fn existing(state: &AppState, id: &SessionId, cid: &str) -> Result<Value, ApiError> {
    state.sessions.get(id).await?;
    let found = state.sessions.store().get_comment(id, cid).await.map_err(SessionError::from)?;
    found.ok_or_else(|| ApiError::not_found(format!("no comment '{}' in session {id}", truncate(cid, 80))))
}

/// Add a comment.
#[utoipa::path(post, path = "/v1/sessions/{id}/comments", params(("id" = String, Path)), request_body = NewComment,
    responses((status = 200, body = Object), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<NewComment>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    check_body(&req.body)?;
    if req.path.is_empty() || req.path.len() > 1024 {
        return Err(ApiError::invalid("path must be 1 to 1024 bytes"));
    }
    crate::ids::check_short_text("path", &req.path, 1024).map_err(ApiError::invalid)?;
    if let Some(by) = &req.created_by {
        crate::ids::check_short_text("created_by", by, 256).map_err(ApiError::invalid)?;
    }
    check_range(req.start_index, req.end_index)?;
    state.sessions.get(&id).await?;
    let now = now_us();
    let comment = json!({
        "id": prefixed("cmt"), "conversation_id": id.as_str(), "path": req.path,
        "start_index": req.start_index, "end_index": req.end_index, "body": req.body, "status": "draft",
        "created_at": secs(now), "updated_at": now, "anchor_content": req.anchor_content, "created_by": req.created_by,
    });
    emit(&state, &id, CommentChangeKind::Created, &comment).await?;
    Ok(Json(comment))
}

/// A session's comments, oldest first.
#[utoipa::path(get, path = "/v1/sessions/{id}/comments", params(("id" = String, Path), CommentsQuery),
    responses((status = 200, body = Vec<Object>), (status = 404, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<CommentsQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let id = session_id(&id)?;
    state.sessions.get(&id).await?;
    Ok(Json(state.sessions.store().list_comments(&id, q.path.as_deref()).await.map_err(SessionError::from)?))
}

/// Change a comment's body or status.
#[utoipa::path(patch, path = "/v1/sessions/{id}/comments/{cid}", params(("id" = String, Path), ("cid" = String, Path)),
    request_body = CommentPatch, responses((status = 200, body = Object), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Path((id, cid)): Path<(String, String)>,
    ApiJson(req): ApiJson<CommentPatch>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    let mut comment = existing(&state, &id, &cid).await?;
    if let Some(status) = req.status {
        if status != "draft" && status != "addressed" {
            return Err(ApiError::invalid(format!(
                "status must be 'draft' or 'addressed', got '{}'",
                truncate(&status, 40)
            )));
        }
        comment["status"] = status.into();
    }
    if let Some(body) = req.body {
        check_body(&body)?;
        comment["body"] = body.into();
    }
    comment["updated_at"] = now_us().into();
    emit(&state, &id, CommentChangeKind::Updated, &comment).await?;
    Ok(Json(comment))
}

/// Delete a comment.
#[utoipa::path(delete, path = "/v1/sessions/{id}/comments/{cid}", params(("id" = String, Path), ("cid" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    let comment = existing(&state, &id, &cid).await?;
    emit(&state, &id, CommentChangeKind::Deleted, &comment).await?;
    Ok(Json(json!({"deleted": true})))
}

/// Turn comments into one message text (the client posts it); the comments become `addressed`.
#[utoipa::path(post, path = "/v1/sessions/{id}/comments/send", params(("id" = String, Path)), request_body = SendComments,
    responses((status = 200, body = Object), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn send(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SendComments>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    if req.comment_ids.is_empty() {
        return Err(ApiError::invalid("comment_ids must name at least one comment"));
    }
    let mut comments = Vec::new();
    for cid in &req.comment_ids {
        comments.push(existing(&state, &id, cid).await?);
    }
    let mut text = req.instruction.unwrap_or_else(|| "Please address these review comments:".into());
    for (n, c) in comments.iter().enumerate() {
        text.push_str(&format!("\n\n{}. On {}", n + 1, c["path"].as_str().unwrap_or("?")));
        if let (Some(a), Some(b)) = (c["start_index"].as_i64(), c["end_index"].as_i64()) {
            text.push_str(&format!(" [{a}–{b}]"));
        }
        if let Some(anchor) = c["anchor_content"].as_str() {
            text.push_str(&format!(": \"{anchor}\""));
        }
        text.push_str(&format!("\n{}", c["body"].as_str().unwrap_or("")));
    }
    for mut c in comments {
        c["status"] = "addressed".into();
        c["updated_at"] = now_us().into();
        emit(&state, &id, CommentChangeKind::Updated, &c).await?;
    }
    Ok(Json(json!({"formatted_message": text, "sent_comment_ids": req.comment_ids})))
}
