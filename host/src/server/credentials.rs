//! `/v1/credentials`: which model keys this server can use, and whether a session config's turns will find one —
//! names and sources only, never a key. The keys themselves are set on the server's machine (`omnigent auth`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::ApiJson;
use crate::config::{SessionConfig, ToolKind};
use crate::credentials::{ANTHROPIC, Credentials, Missing, OPENAI};

/// `GET /v1/credentials`
#[derive(Serialize, ToSchema)]
pub struct CredentialList {
    /// The credentials file this server reads (None: none).
    pub file: Option<String>,
    /// Whether turns also take keys from the server's environment.
    pub reads_environment: bool,
    /// The stored credentials, by name.
    pub credentials: Vec<StoredCredential>,
    /// The vendors' usual variables in the server's environment: set or not (empty when it is not read).
    pub environment: Vec<EnvironmentKey>,
    /// Why the file cannot be used, if it cannot.
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct StoredCredential {
    pub name: String,
    pub base_url: Option<String>,
    pub updated_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnvironmentKey {
    pub variable: String,
    pub set: bool,
}

/// The stored credentials' names and what the server's environment offers; never a key.
#[utoipa::path(get, path = "/v1/credentials", responses((status = 200, body = CredentialList)))]
pub async fn list(State(state): State<AppState>) -> Json<CredentialList> {
    let creds = &state.credentials;
    let (credentials, error) = match creds.stored() {
        Ok(file) => (
            file.credentials
                .iter()
                .map(|(name, s)| StoredCredential {
                    name: name.clone(),
                    base_url: s.base_url.clone(),
                    updated_at: s.updated_at.clone(),
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e)),
    };
    let environment = if creds.reads_environment() {
        [OPENAI, ANTHROPIC]
            .iter()
            .map(|v| EnvironmentKey {
                variable: v.key_var.into(),
                set: std::env::var(v.key_var).is_ok_and(|k| !k.is_empty()),
            })
            .collect()
    } else {
        Vec::new()
    };
    Json(CredentialList {
        file: creds.file().map(|p| p.display().to_string()),
        reads_environment: creds.reads_environment(),
        credentials,
        environment,
        error,
    })
}

/// `POST /v1/credentials/check`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// A session config (as `POST /v1/sessions` takes it).
    #[schema(value_type = Object)]
    pub config: Value,
}

/// Whether every executor of a config (its own, its sub-agents') finds a key. `omnigent run` reads it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CredentialCheck {
    pub ok: bool,
    pub file: Option<String>,
    pub reads_environment: bool,
    pub executors: Vec<ExecutorCheck>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ExecutorCheck {
    /// Where in the config: `executor`, `tools.reviewer.executor`, …
    pub path: String,
    pub harness: String,
    /// Where the key comes from, in words (None when missing).
    pub source: Option<String>,
    pub missing: Option<Missing>,
}

/// Says, before a session exists, whether its turns will find their model keys (and how to fix it if not).
#[utoipa::path(post, path = "/v1/credentials/check", request_body = CheckRequest,
    responses((status = 200, body = CredentialCheck), (status = 400, body = ErrorEnvelope)))]
pub async fn check(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CheckRequest>,
) -> Result<Json<CredentialCheck>, ApiError> {
    let config = SessionConfig::from_json(req.config).map_err(|e| ApiError::invalid(format!("config: {e}")))?;
    let creds = &state.credentials;
    let mut executors = Vec::new();
    check_executors(creds, &config, "executor", &mut executors);
    Ok(Json(CredentialCheck {
        ok: executors.iter().all(|e| e.missing.is_none()),
        file: creds.file().map(|p| p.display().to_string()),
        reads_environment: creds.reads_environment(),
        executors,
    }))
}

/// Checks `config`'s executor and, depth first, its sub-agents'.
fn check_executors(creds: &Credentials, config: &SessionConfig, path: &str, out: &mut Vec<ExecutorCheck>) {
    let (source, missing) = match creds.for_config(config) {
        Ok(Some(found)) => (Some(found.source.describe()), None),
        Ok(None) if config.executor.is_native() => (Some("the CLI's own login".to_string()), None),
        Ok(None) => (Some("none needed".to_string()), None),
        Err(missing) => (None, Some(missing)),
    };
    out.push(ExecutorCheck { path: path.into(), harness: config.executor.harness.clone(), source, missing });
    for (name, tool) in config.tools.iter().filter(|(_, t)| t.kind == ToolKind::Agent) {
        let child = config.sub_agent(name, tool);
        check_executors(creds, &child, &format!("tools.{name}.executor"), out);
    }
}
