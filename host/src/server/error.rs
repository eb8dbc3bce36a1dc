//! The one error type of the HTTP API, rendered as Omnigent's envelope `{"error": {"code", "message"}}`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::session::SessionError;
use crate::store::StoreError;
use crate::stream::FollowError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// `invalid_input`, `unauthorized`, `not_found`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `method_not_allowed`, `unavailable` or `internal_error`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server requires a bearer token: send 'Authorization: Bearer <token>'",
        )
    }

    fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        // The cause goes to the log; the client gets a generic message.
        tracing::error!(error = %error, "{context}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope { error: ErrorBody { code: self.code.to_string(), message: self.message } };
        (self.status, Json(body)).into_response()
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match &e {
            SessionError::NotFound(_) | SessionError::NoSuchElicitation(_) => ApiError::not_found(e.to_string()),
            SessionError::Invalid(m) => ApiError::invalid(m.clone()),
            SessionError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
            SessionError::AlreadyExists(m) => ApiError::new(StatusCode::CONFLICT, "already_exists", m.clone()),
            SessionError::ShuttingDown => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string()),
            SessionError::Store(StoreError::UnknownCursor(c)) => {
                ApiError::invalid(format!("unknown pagination cursor '{}'", crate::ids::truncate(c, 80)))
            }
            SessionError::Store(inner) => ApiError::internal("storage error", inner),
            SessionError::Internal(m) => ApiError::internal("storage error", m),
        }
    }
}

impl From<FollowError> for ApiError {
    fn from(e: FollowError) -> Self {
        match e {
            FollowError::Session(s) => s.into(),
            cursor @ FollowError::CursorAhead { .. } => ApiError::invalid(cursor.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with 'Content-Type: application/json'",
            ),
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this server accepts (--max-body-bytes)",
            ),
            other => ApiError::invalid(format!("invalid JSON body: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::invalid(format!("invalid query string: {}", r.body_text()))
    }
}
