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
    pub code: ErrorCode,
    pub message: String,
}

/// Every error code the API answers with; each has one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidInput,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    AlreadyExists,
    PayloadTooLarge,
    RequestTimeout,
    HeadersTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    Unavailable,
    InternalError,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict | ErrorCode::AlreadyExists => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "this server requires a bearer token: send 'Authorization: Bearer <token>'")
    }

    fn internal(context: &str, error: &dyn std::fmt::Display) -> Self {
        // The cause goes to the log; the client gets a generic message.
        tracing::error!(error = %error, "{context}");
        Self::new(ErrorCode::InternalError, "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope { error: ErrorBody { code: self.code, message: self.message } };
        (self.code.status(), Json(body)).into_response()
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match &e {
            SessionError::NotFound(_) | SessionError::NoSuchElicitation(_) | SessionError::NoPendingCall(_) => {
                ApiError::not_found(e.to_string())
            }
            SessionError::Invalid(m) => ApiError::invalid(m.clone()),
            SessionError::Conflict(_) => ApiError::new(ErrorCode::Conflict, e.to_string()),
            SessionError::AlreadyExists(m) => ApiError::new(ErrorCode::AlreadyExists, m.clone()),
            SessionError::ShuttingDown | SessionError::Elsewhere { .. } => {
                ApiError::new(ErrorCode::Unavailable, e.to_string())
            }
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
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON with 'Content-Type: application/json'",
            ),
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                ErrorCode::PayloadTooLarge,
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
