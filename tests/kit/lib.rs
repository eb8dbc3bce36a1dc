//! Test support: a fresh database on each backend, an SSE client that reads frames as a browser would, and
//! helpers to run the real `omnigent` binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod browser;
pub mod mock_llm;
pub mod tls;

use futures::StreamExt;
use serde_json::Value;

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A fresh, empty database.
pub struct TestDb {
    pub label: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// A fresh SQLite database always, and a fresh Postgres schema when `TEST_DATABASE_URL` names a server.
pub async fn databases() -> Vec<TestDb> {
    let mut out = vec![sqlite_db()];
    if let Some(db) = postgres_db().await {
        out.push(db);
    }
    out
}

pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("omnigent.db").display());
    TestDb { label: "sqlite", url, _dir: Some(dir) }
}

/// A new schema in the `TEST_DATABASE_URL` database, selected through the connection's search_path.
pub async fn postgres_db() -> Option<TestDb> {
    let base = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
    let schema = format!("t_{:016x}", rand::random::<u64>());
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("TEST_DATABASE_URL={base} is set but unusable: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
    Some(TestDb { label: "postgres", url, _dir: None })
}

/// One Server-Sent Events frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl Frame {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("frame data is not JSON ({e}): {}", self.data))
    }

    pub fn seq(&self) -> Option<i64> {
        self.id.as_deref().map(|id| id.parse().expect("numeric id"))
    }

    pub fn is_done(&self) -> bool {
        self.data == "[DONE]"
    }
}

/// A client reading an SSE response frame by frame.
pub struct Sse {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
    ended: bool,
}

impl Sse {
    /// Opens `url` with the given extra headers; panics unless the server answers 200 with an event stream.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Sse {
        let response = Self::request(url, headers).await;
        let status = response.status();
        if !status.is_success() {
            panic!("stream {url} answered {status}: {}", response.text().await.unwrap_or_default());
        }
        Sse::from_response(response)
    }

    pub async fn request(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = http().get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("stream request")
    }

    pub fn from_response(response: reqwest::Response) -> Sse {
        Sse { body: response.bytes_stream().boxed(), buf: String::new(), ended: false }
    }

    /// The next frame, or None when the server ended the response. Panics after `WAIT`.
    pub async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(WAIT, self.next_inner()).await.expect("timed out waiting for an SSE frame")
    }

    /// The next frame within `wait`, or Err(()) if none came in time.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Frame>, ()> {
        tokio::time::timeout(wait, self.next_inner()).await.map_err(|_| ())
    }

    async fn next_inner(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut frame = Frame::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        frame.id = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        frame.event = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if data.is_empty() && frame.event.is_none() {
                    continue; // a comment-only block
                }
                frame.data = data.join("\n");
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Some(Err(_)) | None => self.ended = true,
            }
        }
    }

    /// Reads until the session settles (a `session.status` other than `running`); returns every status seen.
    pub async fn statuses_until_settled(&mut self) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT * 3;
        loop {
            // Heartbeats alone must not keep a test waiting past its deadline.
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(frame) = tokio::time::timeout(left, self.next_event()).await else {
                panic!("the session did not settle within {:?}; statuses {seen:?}", WAIT * 3);
            };
            let frame = frame.expect("stream ended before the session settled");
            if frame.event.as_deref() == Some("session.status") {
                let status = frame.json()["status"].as_str().unwrap_or_default().to_string();
                seen.push(status.clone());
                if status != "running" {
                    return seen;
                }
            }
        }
    }

    /// Reads events until one of type `event_type` arrives, returning every event read (it included).
    pub async fn until(&mut self, event_type: &str) -> Vec<Frame> {
        let mut seen: Vec<Frame> = Vec::new();
        // Heartbeats keep each read alive, so bound the whole wait.
        let deadline = Instant::now() + WAIT * 3;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(frame) = tokio::time::timeout(left, self.next_event()).await else {
                let types: Vec<_> = seen.iter().map(|f| f.event.clone().unwrap_or_default()).collect();
                panic!("no {event_type} within {:?}; saw {types:?}", WAIT * 3);
            };
            let frame = frame.unwrap_or_else(|| panic!("stream ended before {event_type}"));
            let done = frame.event.as_deref() == Some(event_type);
            seen.push(frame);
            if done {
                return seen;
            }
        }
    }

    /// The next frame that is not a heartbeat.
    pub async fn next_event(&mut self) -> Option<Frame> {
        loop {
            let frame = self.next().await?;
            if frame.event.as_deref() != Some("session.heartbeat") {
                return Some(frame);
            }
        }
    }
}

/// An HTTP client (with the TLS crypto provider the build uses installed).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The `omnigent` binary run as a server process.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
}

/// The `output` of each `function_call_output` item among a turn's events, in order.
pub fn tool_outputs(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|f| f["type"] == "response.output_item.done" && f["item"]["type"] == "function_call_output")
        .map(|f| f["item"]["output"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A server's data dir inside a session's working directory `work`: the session's tools never see it (a working
/// directory inside the data dir would be refused).
pub fn data_dir_in(work: &Path) -> PathBuf {
    let dir = work.join(".omnigent-data");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl ServerProcess {
    /// Runs `omnigent server --bind 127.0.0.1:<port> --data-dir <dir> --database-url <db>` and waits for /health.
    pub async fn start(bin: &Path, data_dir: &Path, database_url: &str, port: u16, extra: &[&str]) -> ServerProcess {
        let log = std::fs::File::create(data_dir.join(format!("test-server-{port}.log"))).unwrap();
        let child = Command::new(bin)
            .args(["server", "--bind", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .args(["--database-url", database_url])
            .args(extra)
            .env_remove("OMNIGENT_AUTH_TOKEN")
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn omnigent server");
        let url = format!("http://127.0.0.1:{port}");
        let mut server = ServerProcess { child, url };
        server.wait_healthy(data_dir, port).await;
        server
    }

    async fn wait_healthy(&mut self, data_dir: &Path, port: u16) {
        let deadline = Instant::now() + WAIT;
        let client = http();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(data_dir.join(format!("test-server-{port}.log"))).unwrap_or_default();
                panic!("omnigent server exited early ({status}):\n{log}");
            }
            if client.get(format!("{}/health", self.url)).send().await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "omnigent server did not become healthy");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `omnigent` CLI as a child process of the test, talking to `server`, with its stdio piped (and killed if the
/// test ends first). Add arguments, then `spawn()`.
pub fn cli(bin: &Path, server: &str, data_dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(bin);
    command
        .env("OMNIGENT_SERVER", server)
        .env("OMNIGENT_DATA_DIR", data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Small JSON-over-HTTP client for tests.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api { base: base.into(), http: http(), token: None }
    }

    pub fn with_token(mut self, token: &str) -> Api {
        self.token = Some(token.to_string());
        self
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends and returns (status, JSON body).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Creates a session and returns its id.
    pub async fn create(&self, body: Value) -> String {
        let (status, v) = self.post("/v1/sessions", body).await;
        assert_eq!(status, 201, "create: {v}");
        v["id"].as_str().unwrap().to_string()
    }

    /// Posts a user message and returns the ack.
    pub async fn message(&self, id: &str, text: &str) -> Value {
        let (status, v) = self
            .post(
                &format!("/v1/sessions/{id}/events"),
                serde_json::json!({"type": "message", "data": {"role": "user", "content": text}}),
            )
            .await;
        assert_eq!(status, 202, "message: {v}");
        v
    }
}
