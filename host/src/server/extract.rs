//! What every handler shares: extractors whose rejections render as the API's error envelope, path ids, paging
//! parameters and Omnigent's list envelope.

use axum::extract::{FromRequest, FromRequestParts};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use crate::ids::SessionId;
use crate::store::Page;

/// JSON body whose rejections render as the API's error envelope.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Query string whose rejections render as the API's error envelope.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Whether a request body is a multipart form (a file upload or an agent bundle).
pub(super) fn is_multipart(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
}

pub(crate) fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw)
        .map_err(|e| ApiError::not_found(format!("no session '{}': {e}", crate::ids::truncate(raw, 80))))
}

/// Omnigent's paginated list envelope.
#[derive(Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub object: &'static str,
    pub data: Vec<T>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DeletedResponse {
    pub id: String,
    pub object: &'static str,
    pub deleted: bool,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListItemsQuery {
    /// 1..1000, default 100.
    pub limit: Option<u32>,
    /// Item id cursor.
    pub after: Option<String>,
    /// Item id cursor.
    pub before: Option<String>,
    /// `asc` (log order, default) or `desc`.
    pub order: Option<String>,
}

pub(crate) fn page(
    limit: Option<u32>,
    default_limit: u32,
    after: Option<String>,
    before: Option<String>,
    order: Option<String>,
    default_desc: bool,
) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(default_limit);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid(format!("limit must be between 1 and 1000, got {limit}")));
    }
    if after.is_some() && before.is_some() {
        return Err(ApiError::invalid("give either 'after' or 'before', not both"));
    }
    let descending = match order.as_deref() {
        None => default_desc,
        Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "order must be 'asc' or 'desc', got '{}'",
                crate::ids::truncate(other, 40)
            )));
        }
    };
    Ok(Page { limit, after, before, descending })
}

pub(crate) fn list<T>(data: Vec<T>, has_more: bool, id_of: impl Fn(&T) -> String) -> ListResponse<T> {
    ListResponse {
        object: "list",
        first_id: data.first().map(&id_of),
        last_id: data.last().map(&id_of),
        data,
        has_more,
    }
}
