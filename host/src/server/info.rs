//! `GET /v1/info` and `GET /v1/me`: what Omnigent's clients probe before anything else (the web app at boot, the
//! CLI's `diagnose` and login flows). A single-user server: no accounts, no login, every caller is `local`.

use axum::Json;
use serde_json::{Value, json};

/// The user every request acts as on a single-user server (Omnigent's reserved local user).
const LOCAL_USER: &str = "local";

/// Capabilities, in Omnigent's `ServerInfoResponse` shape.
#[utoipa::path(get, path = "/v1/info", responses((status = 200, description = "Server capabilities", body = Object)))]
pub async fn info() -> Json<Value> {
    Json(json!({
        "accounts_enabled": false,
        "single_user": true,
        "login_url": null,
        "needs_setup": false,
        "databricks_features": false,
        "managed_sandboxes_enabled": false,
        "durable_initial_input": true,
        "sandbox_provider": null,
        "sandbox_providers": [],
        "sandbox_provider_capabilities": {},
        "enabled_connections": [],
        "sharing_mode": "off",
        "public_sharing_enabled": false,
        "public_sharing_max_level": "read",
        "server_version": env!("CARGO_PKG_VERSION"),
        "server_implementation": "omnigent-rs",
        "smart_routing_enabled": false,
        "smart_routing_sources": {"external": false, "oss": false},
        "features": {},
        "harness_install_enabled": false,
        "installable_harnesses": [],
        "dictation_available": false,
        "archive_worktree_cleanup": false,
        "request_managed_sandbox_host_id": false,
        "agent_install": false,
        "agent_detail": true,
        "agent_config_edit": false,
        "branding": {"app_name": null, "heading": null, "logos": {"main": null, "loading": null, "favicon": null},
                     "powered_by": false},
    }))
}

/// Who the caller is: always the local user here (a bearer token, when set, admits without naming anyone).
#[utoipa::path(get, path = "/v1/me", responses((status = 200, description = "The caller", body = Object)))]
pub async fn me() -> Json<Value> {
    Json(json!({"user_id": LOCAL_USER, "is_admin": true}))
}
