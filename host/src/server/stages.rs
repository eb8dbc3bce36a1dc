//! `GET /v1/debug/stages`: how long each stage of the turn path took since the last reset (`DELETE` resets), when
//! the server keeps stage times (`omnigent server --stage-times`).

use axum::Json;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::stages::Stage;

const OFF: &str = "stage times are off: start the server with --stage-times (or OMNIGENT_STAGE_TIMES=1)";

/// Each stage's count and p50/p90/p99/mean in microseconds, in the order of the turn path.
#[utoipa::path(get, path = "/v1/debug/stages",
    responses((status = 200, description = "Stage times", body = Object), (status = 404, description = "Stage times are off")))]
pub async fn get() -> Result<Json<Value>, ApiError> {
    let stages = crate::stages::summary().ok_or_else(|| ApiError::not_found(OFF))?;
    Ok(Json(json!({"object": "stage_times", "unit": "us", "data": stages})))
}

/// Forgets the kept times.
#[utoipa::path(delete, path = "/v1/debug/stages",
    responses((status = 204, description = "Reset"), (status = 404, description = "Stage times are off")))]
pub async fn reset() -> Result<StatusCode, ApiError> {
    if crate::stages::reset() { Ok(StatusCode::NO_CONTENT) } else { Err(ApiError::not_found(OFF)) }
}

/// The outermost layer: times each input's whole request inside the server (stage `request`), so what the `ack`
/// stage does not see — the guards, forwarding, the body read — shows as the difference between the two.
pub async fn time_inputs(request: Request, next: Next) -> Response {
    if request.method() == Method::POST && request.uri().path().ends_with("/events") {
        tracing::Instrument::instrument(next.run(request), Stage::Request.span()).await
    } else {
        next.run(request).await
    }
}
