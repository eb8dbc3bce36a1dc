//! What a request must pass before any handler sees it: a URL without NUL, headers and a body of bounded size that
//! arrive in bounded time, and the bearer token when the server has one. Each refusal is the API's error envelope.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{ApiError, ErrorCode};

/// Most header bytes a request may carry.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest upload body: the file limit plus what multipart framing adds.
pub(super) const UPLOAD_LIMIT: usize = crate::files::MAX_FILE_BYTES + 64 * 1024;

/// How much a body may hold and how long it may take to arrive.
#[derive(Clone, Copy)]
pub(super) struct BodyLimits {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

/// How much of an oversized body is read and thrown away before the 413 goes out: a client still sending (the
/// Python SDK streams uploads) then reads the answer instead of a reset connection. Past this, or once the body
/// stops flowing for [`DISCARD_IDLE`], the 413 goes out at once.
const MAX_DISCARD_BYTES: u64 = 1 << 30;
const DISCARD_IDLE: Duration = Duration::from_millis(250);

/// Why a body was not taken.
enum Refused {
    TooLarge,
    Broken,
    /// It did not arrive within the read timeout.
    Late,
}

/// A body larger than the route accepts is refused (413) — after what the client is still sending is read and
/// discarded, so it can read the answer; a body that does not arrive within the read timeout is refused (408)
/// instead of holding the connection.
pub(super) async fn guard_body(State(limits): State<BodyLimits>, request: Request, next: Next) -> Response {
    let BodyLimits { max_bytes: max_body_bytes, read_timeout } = limits;
    // File uploads and agent bundles (multipart) may be larger than other bodies.
    let upload = request.method() == Method::POST && super::extract::is_multipart(request.headers());
    let limit = if upload { UPLOAD_LIMIT } else { max_body_bytes };
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = request.into_parts();
    let deadline = tokio::time::Instant::now() + read_timeout;
    let too_large = announced.is_some_and(|n| n > limit as u64);
    let bytes = match read_body(body, limit, too_large, deadline).await {
        Ok(bytes) => bytes,
        Err(Refused::TooLarge) => {
            let what = if upload { "the upload" } else { "the request body" };
            let message = format!("{what} is larger than this server accepts ({limit} bytes)");
            return ApiError::new(ErrorCode::PayloadTooLarge, message).into_response();
        }
        Err(Refused::Broken) => return ApiError::invalid("the request body could not be read").into_response(),
        Err(Refused::Late) => {
            let message = format!("the request body did not arrive within {}s", read_timeout.as_secs_f64());
            return ApiError::new(ErrorCode::RequestTimeout, message).into_response();
        }
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

/// Reads a body whole by `deadline`. One over `limit` (or announced so: `too_large`) is read on and discarded while
/// it flows (see [`MAX_DISCARD_BYTES`]), then refused.
async fn read_body(
    body: axum::body::Body,
    limit: usize,
    mut too_large: bool,
    deadline: tokio::time::Instant,
) -> Result<bytes::Bytes, Refused> {
    let mut chunks = body.into_data_stream();
    let (mut kept, mut seen) = (Vec::new(), 0u64);
    loop {
        // Discarding waits only while the body flows; reading it whole waits until the deadline.
        let wait = if too_large { deadline.min(tokio::time::Instant::now() + DISCARD_IDLE) } else { deadline };
        let chunk = match tokio::time::timeout_at(wait, futures::StreamExt::next(&mut chunks)).await {
            Ok(Some(chunk)) => chunk.map_err(|_| Refused::Broken)?,
            Ok(None) => break,
            Err(_) if too_large => return Err(Refused::TooLarge),
            Err(_) => return Err(Refused::Late),
        };
        seen += chunk.len() as u64;
        too_large |= seen > limit as u64;
        if seen > limit as u64 + MAX_DISCARD_BYTES {
            break;
        }
        if !too_large {
            kept.extend_from_slice(&chunk);
        }
    }
    if too_large { Err(Refused::TooLarge) } else { Ok(kept.into()) }
}

/// Headers larger than `MAX_HEADER_BYTES` are refused (431) in the API's envelope.
pub(super) async fn refuse_large_headers(request: Request, next: Next) -> Response {
    let bytes: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if bytes > MAX_HEADER_BYTES {
        let message = format!("the request headers are {bytes} bytes; the limit is {MAX_HEADER_BYTES}");
        return ApiError::new(ErrorCode::HeadersTooLarge, message).into_response();
    }
    next.run(request).await
}

/// A NUL (`%00`) in a path or query cannot be an id or a cursor, and Postgres cannot compare against it: refused
/// before any handler, the same on both databases.
pub(super) async fn refuse_nul_in_url(request: Request, next: Next) -> Response {
    let uri = request.uri();
    let nul = |s: &str| s.to_ascii_lowercase().contains("%00");
    if nul(uri.path()) || uri.query().is_some_and(nul) {
        return ApiError::invalid("the URL contains a NUL character (%00)").into_response();
    }
    next.run(request).await
}

/// The cookie a browser holds instead of a bearer header (EventSource, WebSocket and download links cannot send
/// one): set by `POST /v1/auth/cookie` with the token, HttpOnly and SameSite=Strict.
pub(super) const AUTH_COOKIE: &str = "omnigent_token";

pub(super) async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(expected) = &state.auth_token {
        let header = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // A browser cannot set headers on a WebSocket: the terminal's attach route also takes `?token=`.
        let query = request
            .uri()
            .path()
            .ends_with("/attach")
            .then(|| request.uri().query())
            .flatten()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
        let cookie = cookie(request.headers(), AUTH_COOKIE);
        let presented = header.or(query).or(cookie.as_deref()).unwrap_or("");
        if !token_matches(presented, expected) {
            return ApiError::unauthorized().into_response();
        }
        // A cookie rides along on any request the browser makes, so a request that only the cookie authorizes
        // must come from a page of this server (SameSite=Strict already keeps other sites' requests out).
        if header.is_none() && query.is_none() && !same_origin(&request) {
            return ApiError::new(ErrorCode::Forbidden, "this request came from another site's page (its Origin)")
                .into_response();
        }
    }
    next.run(request).await
}

/// Compared in constant time: the comparison must not reveal how much of a guess was right.
pub(super) fn token_matches(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The value of one cookie of the request.
fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// Writes (anything but GET/HEAD) and WebSocket upgrades must name this server as their Origin; a GET without an
/// Origin (a navigation, an EventSource) is fine.
fn same_origin(request: &Request) -> bool {
    let headers = request.headers();
    let origin = headers.get(axum::http::header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok());
    match origin {
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, rest)| rest);
            origin_host.is_some() && origin_host == host
        }
        None => matches!(*request.method(), Method::GET | Method::HEAD),
    }
}
