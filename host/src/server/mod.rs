//! The HTTP server: routes, auth, limits, OpenAPI, graceful shutdown.

mod agents;
mod bundles;
mod comments;
mod credentials;
pub mod error;
mod extract;
mod feed;
mod files;
mod forward;
mod guards;
mod info;
mod login;
mod native;
mod placement;
pub mod policies;
mod responses;
mod runners;
mod sessions;
mod settings;
mod sse;
mod stages;
mod ui;
mod usage;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, Uri};
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

pub use credentials::{CredentialCheck, ExecutorCheck};

use crate::credentials::Credentials;
use crate::mcp::McpHub;
use crate::native::{Natives, Runners};
use crate::policy::PolicyEnv;
use crate::remote::RunnerHub;
use crate::sandbox::Sandbox;
use crate::session::Sessions;
use crate::store::Store;
use crate::turn::TurnEnv;
use error::{ApiError, ErrorCode};

/// hyper's read buffer: requests with headers beyond it get hyper's own bare 431 (below it, `guards` answers).
const HYPER_BUFFER: usize = 1 << 20;
/// How long requests in flight may go on after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Bearer token every request (but `/health`) must carry; required for a non-loopback bind.
    pub auth_token: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Idle keep-alive period on streams.
    pub heartbeat: Duration,
    /// Where compiled WASM components are cached across restarts (None: compile on every start).
    pub cache_dir: Option<std::path::PathBuf>,
    /// Server-wide default policies, judged after each session's own and its config's.
    pub policies: crate::policy::PolicyMap,
    /// Longest a client may take to send a request's headers, and again its body; then it is cut off.
    pub read_timeout: Duration,
    /// Where native sessions keep their CLI's folder (`<data-dir>/native`; None: a folder under the system's
    /// temporary dir).
    pub native_dir: Option<std::path::PathBuf>,
    /// The credentials file turns read their model keys from (`<data-dir>/credentials.json`; None: none).
    pub credentials_file: Option<std::path::PathBuf>,
    /// Whether turns may take keys from this process's environment (`OPENAI_API_KEY`, `${VAR}` references).
    pub keys_from_environment: bool,
    /// How sessions' builtin tools are confined: the paths they never see (the cache, native and credentials
    /// paths above are added), the workspace root.
    pub sandbox: crate::sandbox::SandboxOptions,
    /// On Postgres, the address other replicas reach this one at to forward a session's writes (default:
    /// `http://` + the listening address, with 127.0.0.1 for an unspecified one).
    pub advertise_url: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            auth_token: None,
            max_body_bytes: 4 * 1024 * 1024,
            heartbeat: crate::stream::HEARTBEAT,
            cache_dir: None,
            policies: Default::default(),
            read_timeout: Duration::from_secs(30),
            native_dir: None,
            credentials_file: None,
            keys_from_environment: true,
            sandbox: Default::default(),
            advertise_url: None,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub sessions: Sessions,
    /// Policy components and the server-wide defaults (checks of declarations made over REST).
    pub policies: Arc<PolicyEnv>,
    pub heartbeat: Duration,
    /// The native CLI bridges (hooks and terminals).
    pub natives: Arc<Natives>,
    /// The model keys turns use (listed and checked over the API, never shown).
    pub credentials: Arc<Credentials>,
    /// The sessions' MCP servers (stopped with their session).
    pub mcp: Arc<McpHub>,
    /// The runners connected to this server.
    pub runners: Arc<RunnerHub>,
    auth_token: Option<Arc<str>>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "refusing to listen on {0} without an auth token: anyone who can reach that address could drive your \
         agents. Set --auth-token (or OMNIGENT_AUTH_TOKEN), or bind to 127.0.0.1"
    )]
    NeedsToken(SocketAddr),
    #[error("the auth token is empty")]
    EmptyToken,
    #[error("cannot start the WebAssembly runtime: {0}")]
    Runtime(String),
    #[error("cannot recover sessions interrupted by the last shutdown: {0}")]
    Recover(String),
    #[error("the server-wide policies: {0}")]
    Policies(String),
    #[error("{0}")]
    Sandbox(String),
    #[error("cannot join the other replicas on this database: {0}")]
    Cluster(String),
}

#[derive(OpenApi)]
#[openapi(
    info(title = "omnigent", description = "Agent sessions: durable history, live SSE streams with replay."),
    paths(
        health,
        sessions::create_session,
        sessions::list_sessions,
        feed::feed,
        sessions::get_session,
        sessions::update_session,
        sessions::delete_session,
        sessions::list_items,
        sessions::post_event,
        sse::stream,
        sessions::fork_session,
        sessions::child_sessions,
        files::upload,
        files::list,
        files::get,
        files::content,
        files::delete,
        comments::create,
        comments::list,
        comments::update,
        comments::delete,
        comments::send,
        responses::create,
        agents::create_agent,
        runners::create,
        runners::list_runners,
        agents::list_agents,
        agents::get_agent,
        credentials::list,
        credentials::check,
        info::info,
        login::login,
        login::logout,
        info::me,
        usage::usage,
        stages::get,
        stages::reset,
        agents::session_agent,
        policies::resolve,
        policies::get_elicitation,
        policies::list_policies,
        policies::create_policy,
        policies::get_policy,
        policies::update_policy,
        policies::delete_policy,
        policies::registry,
        policies::server_policies,
    ),
    components(schemas(crate::session::EventInput, crate::session::Ack, error::ErrorEnvelope)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Checks the bind/token combination before anything listens.
pub fn check_exposure(addr: SocketAddr, options: &ServerOptions) -> Result<(), StartError> {
    match options.auth_token.as_deref() {
        Some("") => Err(StartError::EmptyToken),
        None if !addr.ip().is_loopback() => Err(StartError::NeedsToken(addr)),
        _ => Ok(()),
    }
}

pub fn router(
    sessions: Sessions,
    policies: Arc<PolicyEnv>,
    natives: Arc<Natives>,
    credentials: Arc<Credentials>,
    mcp: Arc<McpHub>,
    runners: Arc<RunnerHub>,
    options: &ServerOptions,
) -> Router {
    let state = AppState {
        sessions,
        policies,
        natives,
        credentials,
        mcp,
        runners,
        heartbeat: options.heartbeat,
        auth_token: options.auth_token.as_deref().map(Arc::from),
    };
    let v1 = Router::new()
        .route(
            "/sessions",
            get(sessions::list_sessions)
                // JSON, or an agent bundle upload (multipart: bodies up to the upload limit).
                .post(bundles::create_session)
                .layer(DefaultBodyLimit::max(guards::UPLOAD_LIMIT)),
        )
        .route("/sessions/feed", get(feed::feed))
        .route(
            "/sessions/{id}",
            get(sessions::get_session).patch(sessions::update_session).delete(sessions::delete_session),
        )
        .route("/sessions/{id}/items", get(sessions::list_items))
        .route("/sessions/{id}/events", axum::routing::post(sessions::post_event))
        .route("/sessions/{id}/stream", get(sse::stream))
        .route("/sessions/{id}/fork", axum::routing::post(sessions::fork_session))
        .route("/sessions/{id}/child_sessions", get(sessions::child_sessions))
        .route(
            "/sessions/{id}/resources/files",
            get(files::list)
                .post(files::upload)
                // Uploads may be larger than other bodies (the file limit plus multipart framing).
                .layer(DefaultBodyLimit::max(guards::UPLOAD_LIMIT)),
        )
        .route("/sessions/{id}/resources/files/{fid}", get(files::get).delete(files::delete))
        .route("/sessions/{id}/comments", get(comments::list).post(comments::create))
        .route("/sessions/{id}/comments/send", axum::routing::post(comments::send))
        .route("/sessions/{id}/comments/{cid}", axum::routing::patch(comments::update).delete(comments::delete))
        .route("/sessions/{id}/resources/files/{fid}/content", get(files::content))
        .route("/sessions/{id}/elicitations/{eid}", get(policies::get_elicitation))
        .route("/sessions/{id}/elicitations/{eid}/resolve", axum::routing::post(policies::resolve))
        .route("/sessions/{id}/policies", get(policies::list_policies).post(policies::create_policy))
        .route(
            "/sessions/{id}/policies/{pid}",
            get(policies::get_policy).patch(policies::update_policy).delete(policies::delete_policy),
        )
        .route("/policy-registry", get(policies::registry))
        .route("/policies", get(policies::server_policies))
        .route(
            "/agents",
            get(agents::list_agents).post(bundles::create_agent).layer(DefaultBodyLimit::max(guards::UPLOAD_LIMIT)),
        )
        .route("/responses", axum::routing::post(responses::create))
        .route("/runners", get(runners::list_runners).post(runners::create))
        .route("/runners/{id}/calls", axum::routing::post(runners::relay))
        .route("/agents/{id}", get(agents::get_agent))
        .route("/credentials", get(credentials::list))
        .route("/info", get(info::info))
        .route("/me", get(info::me))
        .route("/usage", get(usage::usage))
        .route("/debug/stages", get(stages::get).delete(stages::reset))
        .route("/sessions/{id}/agent", get(agents::session_agent))
        .route("/credentials/check", axum::routing::post(credentials::check))
        .route("/sessions/{id}/native/hooks/{event}", axum::routing::post(native::hook))
        .route("/sessions/{id}/resources/terminals", get(native::list_terminals).post(native::ensure_terminal))
        .route("/sessions/{id}/resources/terminals/{tid}", get(native::get_terminal).delete(native::delete_terminal))
        .route("/sessions/{id}/resources/terminals/{tid}/screen", get(native::screen))
        .route("/sessions/{id}/resources/terminals/{tid}/attach", get(native::attach))
        // With other replicas, a session's writes go to the one that writes it (after the token is checked).
        .route_layer(middleware::from_fn_with_state(state.clone(), forward::to_owner));
    let guarded = Router::new()
        .nest("/v1", v1)
        .route("/openapi.json", get(openapi))
        .route_layer(middleware::from_fn_with_state(state.clone(), guards::require_token));
    Router::new()
        .route("/health", get(health))
        // Authorized by the runner's own token, not the server's.
        .route("/v1/runners/{id}/tunnel", get(runners::tunnel))
        .route("/v1/auth/cookie", axum::routing::post(login::login).delete(login::logout))
        .merge(guarded)
        .fallback(ui::serve)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            guards::BodyLimits { max_bytes: options.max_body_bytes, read_timeout: options.read_timeout },
            guards::guard_body,
        ))
        .layer(middleware::from_fn(guards::refuse_nul_in_url))
        .layer(middleware::from_fn(guards::refuse_large_headers))
        .layer(middleware::from_fn(stages::time_inputs))
        .with_state(state)
}

/// Liveness and basic facts about this server.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "The server is up", body = Object)))]
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "database": match state.sessions.store().kind() {
            crate::store::BackendKind::Sqlite => "sqlite",
            crate::store::BackendKind::Postgres => "postgres",
        },
        "live_sessions": state.sessions.live_count(),
        "replica": state.sessions.cluster().map(|c| c.id()),
    }))
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {}", uri.path()))
}

/// A server bound to a listener, ready to run.
pub struct Server {
    pub sessions: Sessions,
    pub policies: Arc<PolicyEnv>,
    pub natives: Arc<Natives>,
    pub credentials: Arc<Credentials>,
    pub mcp: Arc<McpHub>,
    pub runners: Arc<RunnerHub>,
    pub listener: TcpListener,
    pub options: ServerOptions,
    pub shutdown: CancellationToken,
}

impl Server {
    /// Opens the store and prepares the server on an already-bound listener (tests bind 127.0.0.1:0).
    pub async fn new(
        store: Store,
        listener: TcpListener,
        options: ServerOptions,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        check_exposure(listener.local_addr().expect("bound listener has an address"), &options)?;
        let credentials = Arc::new(Credentials::new(options.credentials_file.clone(), options.keys_from_environment));
        let mut sandbox = options.sandbox.clone();
        let server_paths = [&options.cache_dir, &options.native_dir, &options.credentials_file];
        sandbox.private_paths.extend(server_paths.into_iter().flatten().cloned());
        let sandbox = Arc::new(Sandbox::start(sandbox).await.map_err(StartError::Sandbox)?);
        let mut turns = TurnEnv::new(options.cache_dir.clone(), options.policies.clone(), credentials.clone(), sandbox)
            .map_err(|e| StartError::Runtime(format!("{e:#}")))?;
        turns.policies.check(&options.policies).await.map_err(StartError::Policies)?;
        let policies = turns.policies.clone();
        let addr = listener.local_addr().expect("bound listener has an address");
        // Hooks of native CLIs call back on loopback, whatever address the server listens on.
        let hook_addr = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
        let native_dir = options
            .native_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("omnigent-native-{}", addr.port())));
        let natives = Arc::new(Natives::new(
            native_dir,
            format!("http://{hook_addr}"),
            options.auth_token.clone(),
            policies.clone(),
            credentials.clone(),
        ));
        let mcp = turns.mcp.clone();
        // On Postgres this server is one replica among any others on the same database.
        let cluster = match store.postgres() {
            Some((pool, name)) => {
                let url = options.advertise_url.clone().unwrap_or_else(|| format!("http://{hook_addr}"));
                if options.advertise_url.is_none() && !addr.ip().is_loopback() {
                    tracing::warn!(
                        url = %url,
                        "no --advertise-url: other replicas will forward this server's sessions' writes to {url}, \
                         which only works from this machine; set --advertise-url when replicas run on other machines"
                    );
                }
                let cluster = crate::cluster::Cluster::join(pool.clone(), name.to_string(), url, shutdown.clone())
                    .await
                    .map_err(|e| StartError::Cluster(e.to_string()))?;
                Some(Arc::new(cluster))
            }
            None => None,
        };
        let remote = Arc::new(RunnerHub::new(store.clone(), cluster.clone(), options.auth_token.clone()));
        turns.runners = Some(remote.clone());
        let runners = Runners { wasm: Arc::new(turns), natives: natives.clone() };
        let sessions = Sessions::with_cluster(store, shutdown.clone(), Arc::new(runners), cluster);
        let recovered = sessions.recover_interrupted().await.map_err(|e| StartError::Recover(e.to_string()))?;
        if recovered > 0 {
            tracing::warn!(
                sessions = recovered,
                "found sessions whose turn was cut short by the last shutdown: resuming them (or failing them with a reason)"
            );
        }
        Ok(Server { sessions, policies, natives, credentials, mcp, runners: remote, listener, options, shutdown })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled; open streams then end with `[DONE]`.
    pub async fn run(self) -> std::io::Result<()> {
        let app = router(
            self.sessions.clone(),
            self.policies.clone(),
            self.natives.clone(),
            self.credentials.clone(),
            self.mcp.clone(),
            self.runners.clone(),
            &self.options,
        );
        // MCP servers a session has not used for a while stop (a later turn starts them again).
        let (mcp, stopping) = (self.mcp.clone(), self.shutdown.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => mcp.stop_idle(crate::mcp::IDLE_STOP).await,
                    _ = stopping.cancelled() => break,
                }
            }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        // A client that dribbles its headers (or sends none) is cut off instead of holding a connection forever.
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.options.read_timeout)
            // Room for headers past our own limit, so `refuse_large_headers` answers in the API's envelope.
            .max_buf_size(HYPER_BUFFER);
        let connections = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = self.shutdown.cancelled() => break,
            };
            // Small writes (an SSE frame, an ack) go out at once rather than waiting to be coalesced.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            let connection = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
            let connection = connections.watch(connection.into_owned());
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "a connection ended with an error");
                }
            });
        }
        // Open streams end with [DONE] on shutdown; requests in flight get a moment to finish.
        if tokio::time::timeout(SHUTDOWN_GRACE, connections.shutdown()).await.is_err() {
            tracing::warn!("some connections were still open {SHUTDOWN_GRACE:?} after shutdown began; closing them");
        }
        if let Some(cluster) = self.sessions.cluster() {
            cluster.leave().await;
        }
        self.sessions.store().close().await;
        Ok(())
    }
}
