//! The web UI: the built app in `host/ui/dist` (committed; `cd host/ui && npm run build` rebuilds it), embedded in
//! the binary so it works offline and `cargo build` never needs node. Debug builds read the folder from disk, so an
//! edited and rebuilt UI shows on reload without recompiling the server.
//!
//! Every path that is not the API (`/v1/…`, `/openapi.json`, `/health`) is the app: a file of `dist` when one has
//! that name, else `index.html`, whose router draws the page (`/c/<id>`, `/approve/<sid>/<eid>`, `/inbox`, …), so a
//! deep link survives a refresh. The assets are public (they hold no data); the API behind them keeps its token.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::error::{ApiError, ErrorCode};

#[derive(RustEmbed)]
#[folder = "ui/dist"]
struct Assets;

/// Model output is shown in this page: no script but ours, no inline script, no plugins, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// Why there is no page: a debug build reads the files from its source tree when it runs; a release build embeds
/// them.
#[cfg(debug_assertions)]
const MISSING: &str = concat!(
    "no web UI files in ",
    env!("CARGO_MANIFEST_DIR"),
    "/ui/dist: a debug build reads them from the checkout it was built from (build with --release to embed them)"
);
#[cfg(not(debug_assertions))]
const MISSING: &str = "this omnigent was built without its web UI (host/ui/dist was empty)";

/// The fallback of every route: the app for a browser's GET, the API's JSON 404 / 405 for the rest.
pub async fn serve(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if is_api(path) {
        return ApiError::not_found(format!("no route for {method} {path}")).into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {path}"))
            .into_response();
    }
    let name = path.trim_start_matches('/');
    // Only names inside the app's folder (a debug build reads it from disk): no `..`, no empty segment.
    let plain = !name.is_empty() && name.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if let Some(file) = plain.then(|| Assets::get(name)).flatten() {
        // esbuild names every asset by its content hash: it never changes under that name.
        let cache = if name.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
        return respond(file, cache, false);
    }
    if name.starts_with("assets/") {
        // An asset of an older build: say so plainly rather than hand back the page.
        return (StatusCode::NOT_FOUND, "no such asset (the UI was rebuilt: reload the page)").into_response();
    }
    match Assets::get("index.html") {
        Some(page) => respond(page, "no-cache", true),
        None => (StatusCode::NOT_FOUND, MISSING).into_response(),
    }
}

fn is_api(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/") || path == "/openapi.json" || path == "/health"
}

fn respond(file: rust_embed::EmbeddedFile, cache: &'static str, page: bool) -> Response {
    let mime = file.metadata.mimetype().to_string();
    let mut response = Response::new(Body::from(file.data.into_owned()));
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&mime) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if page {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    }
    response
}
