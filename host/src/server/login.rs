//! The browser's way in on a server with `--auth-token`: the web UI trades the token once for an HttpOnly,
//! SameSite=Strict cookie that `guards::require_token` accepts (with an Origin check on writes), since EventSource,
//! WebSocket and download links cannot carry a bearer header. Without a token there is nothing to log in to.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};
use super::guards::{AUTH_COOKIE, token_matches};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The server's auth token (`--auth-token` / `OMNIGENT_AUTH_TOKEN`).
    pub token: String,
}

/// Checks the token and sets the browser's cookie (204); a wrong token is a 401 and sets nothing.
#[utoipa::path(post, path = "/v1/auth/cookie", request_body = Login,
    responses((status = 204, description = "The cookie is set"), (status = 401, body = ErrorEnvelope)))]
pub async fn login(State(state): State<AppState>, Json(login): Json<Login>) -> Result<Response, ApiError> {
    let Some(expected) = &state.auth_token else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if !token_matches(&login.token, expected) {
        return Err(ApiError::new(super::error::ErrorCode::Unauthorized, "that is not this server's auth token"));
    }
    // A token that could break the header (it came from the operator, but still) is refused rather than mangled.
    let value = HeaderValue::from_str(&format!(
        "{AUTH_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000",
        login.token
    ))
    .map_err(|_| ApiError::invalid("this auth token cannot be kept in a cookie; use the Authorization header"))?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, value)]).into_response())
}

/// Forgets the browser's cookie (204).
#[utoipa::path(delete, path = "/v1/auth/cookie", responses((status = 204, description = "The cookie is cleared")))]
pub async fn logout() -> Response {
    let value = format!("{AUTH_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, HeaderValue::from_str(&value).expect("ascii"))]).into_response()
}
