//! `/v1/sessions/{id}/resources/files`: upload (multipart), list, get, content, delete.

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ErrorCode, ErrorEnvelope};
use super::extract::{self, ApiQuery, ListItemsQuery, ListResponse, page, session_id};
use crate::files::{self, FileError, MAX_FILE_BYTES};
use crate::protocol::object;
use crate::session::SessionError;

impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::TooLarge(_) => ApiError::new(ErrorCode::PayloadTooLarge, e.to_string()),
            FileError::Refused(_) => ApiError::new(ErrorCode::UnsupportedMediaType, e.to_string()),
            FileError::BadName => ApiError::invalid(e.to_string()),
            FileError::Session(s) => s.into(),
        }
    }
}

/// Upload a file (multipart/form-data, part `file`).
#[utoipa::path(post, path = "/v1/sessions/{id}/resources/files", params(("id" = String, Path)),
    request_body(content_type = "multipart/form-data", content = String, description = "a part named `file`"),
    responses((status = 201, body = Object), (status = 400, body = ErrorEnvelope), (status = 413, body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope)))]
pub async fn upload(
    State(state): State<AppState>,
    Path(id): Path<String>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = session_id(&id)?;
    let mut form =
        form.map_err(|e| ApiError::invalid(format!("an upload is a multipart/form-data body: {}", e.body_text())))?;
    loop {
        let field = form.next_field().await.map_err(|e| multipart_error(&e))?;
        let Some(field) = field else {
            return Err(ApiError::invalid("the form has no part named 'file'"));
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = field
            .file_name()
            .map(str::to_string)
            .ok_or_else(|| ApiError::invalid("the 'file' part needs a filename"))?;
        let disposition = field.headers().get(axum::http::header::CONTENT_DISPOSITION).and_then(|v| v.to_str().ok());
        if disposition.is_some_and(|d| name_cut_short(d, &name)) {
            return Err(ApiError::invalid(
                "the file name has an unescaped '\"' (send it as \\\" or %22): it cannot be read whole",
            ));
        }
        let content_type = field.content_type().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| multipart_error(&e))?;
        let meta = files::upload(&state.sessions, &id, &name, content_type.as_deref(), bytes.to_vec()).await?;
        return Ok((StatusCode::CREATED, Json(files::resource(&id, &meta))));
    }
}

/// Whether the quoted `filename` of a Content-Disposition header goes on past where the parser ended `name` (an
/// unescaped quote inside it), so the name would be stored cut short.
fn name_cut_short(disposition: &str, name: &str) -> bool {
    let Some(at) = disposition.find("filename=\"") else { return false };
    let raw = &disposition[at + "filename=\"".len()..];
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    for quoted in [escaped.as_str(), name] {
        if let Some(rest) = raw.strip_prefix(quoted).and_then(|r| r.strip_prefix('"')) {
            return !(rest.is_empty() || rest.starts_with(';') || rest.starts_with(char::is_whitespace));
        }
    }
    false
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorCode::PayloadTooLarge, format!("the upload is larger than {MAX_FILE_BYTES} bytes"));
    }
    ApiError::invalid(format!("invalid multipart body: {}", e.body_text()))
}

/// A session's files, newest first.
#[utoipa::path(get, path = "/v1/sessions/{id}/resources/files", params(("id" = String, Path), ListItemsQuery),
    responses((status = 200, body = ListResponse<Object>), (status = 404, body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListItemsQuery>,
) -> Result<Json<ListResponse<Value>>, ApiError> {
    let id = session_id(&id)?;
    let page = page(q.limit, 20, q.after, q.before, q.order, true)?;
    state.sessions.get(&id).await?;
    let (metas, has_more) = state.sessions.store().list_files(&id, &page).await.map_err(SessionError::from)?;
    let data: Vec<Value> = metas.iter().map(|m| files::resource(&id, m)).collect();
    Ok(Json(extract::list(data, has_more, |v| v["id"].as_str().unwrap_or_default().to_string())))
}

async fn meta(
    state: &AppState,
    id: &str,
    fid: &str,
) -> Result<(crate::ids::SessionId, crate::store::FileMeta), ApiError> {
    let id = session_id(id)?;
    state.sessions.get(&id).await?;
    let meta = state.sessions.store().get_file(&id, fid).await.map_err(SessionError::from)?;
    let meta = meta
        .ok_or_else(|| ApiError::not_found(format!("no file '{}' in session {id}", crate::ids::truncate(fid, 80))))?;
    Ok((id, meta))
}

/// One file's metadata.
#[utoipa::path(get, path = "/v1/sessions/{id}/resources/files/{fid}", params(("id" = String, Path), ("fid" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Path((id, fid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (id, meta) = meta(&state, &id, &fid).await?;
    Ok(Json(files::resource(&id, &meta)))
}

/// A file's bytes, with its media type.
#[utoipa::path(get, path = "/v1/sessions/{id}/resources/files/{fid}/content", params(("id" = String, Path), ("fid" = String, Path)),
    responses((status = 200, description = "The file's bytes"), (status = 404, body = ErrorEnvelope)))]
pub async fn content(
    State(state): State<AppState>,
    Path((id, fid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (id, meta) = meta(&state, &id, &fid).await?;
    let bytes = state.sessions.store().file_content(&id, &meta.id).await.map_err(SessionError::from)?;
    let bytes = bytes.ok_or_else(|| ApiError::not_found(format!("no file '{fid}' in session {id}")))?;
    let disposition = format!("attachment; filename=\"{}\"", meta.name.replace(['"', '\\'], "_"));
    // Served as a download and never sniffed: an uploaded HTML file must not run as a page of this origin.
    let headers = [
        (header::CONTENT_TYPE, meta.content_type),
        (header::CONTENT_DISPOSITION, disposition),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
    ];
    Ok((headers, bytes).into_response())
}

/// Delete a file.
#[utoipa::path(delete, path = "/v1/sessions/{id}/resources/files/{fid}", params(("id" = String, Path), ("fid" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Path((id, fid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    if !state.sessions.delete_file(&id, &fid).await? {
        return Err(ApiError::not_found(format!("no file '{}' in session {id}", crate::ids::truncate(&fid, 80))));
    }
    Ok(Json(json!({"id": fid, "object": object::SESSION_RESOURCE_DELETED, "deleted": true})))
}

#[cfg(test)]
mod tests {
    use super::name_cut_short;

    #[test]
    fn a_name_cut_at_an_unescaped_quote_is_noticed() {
        let header = |name: &str| format!("form-data; name=\"file\"; filename=\"{name}\"");
        assert!(!name_cut_short(&header("plain.txt"), "plain.txt"));
        assert!(!name_cut_short(&header(r#"a\"b.txt"#), r#"a"b.txt"#));
        assert!(!name_cut_short(&format!("{}; size=3", header("x")), "x"));
        assert!(name_cut_short(&header(r#"a"b.txt"#), "a"));
    }
}
