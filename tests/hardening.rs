//! Defects found by attacking the server (issue: hardening), each fixed and kept fixed: numbers from configs that
//! would overflow a deadline, paths that are FIFOs or devices, files without end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use omnigent::server::{Server, ServerOptions};
use omnigent::store::Store;
use omnigent_testkit::{Api, Sse, TestDb, sqlite_db};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct TestServer {
    api: Api,
    shutdown: CancellationToken,
    _db: TestDb,
}

async fn server() -> TestServer {
    let db = sqlite_db();
    let store = Store::connect(&db.url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let server = Server::new(store, listener, ServerOptions::default(), shutdown.clone()).await.unwrap();
    let api = Api::new(format!("http://{}", server.local_addr()));
    tokio::spawn(server.run());
    TestServer { api, shutdown, _db: db }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn config(executor: Value, extra: Value) -> Value {
    let mut config = json!({"name": "h", "executor": executor});
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    config
}

fn scripted() -> Value {
    json!({"harness": "agent", "provider": "scripted", "script": [{"text": "hi"}]})
}

#[tokio::test]
async fn numbers_that_become_durations_are_bounded_and_named() {
    let srv = server().await;
    let mut executor = scripted();
    executor["turn_timeout_s"] = json!(u64::MAX);
    let cases = [
        (config(executor, json!({})), "executor.turn_timeout_s must be between 1 and 604800 seconds"),
        (
            config(scripted(), json!({"tools": {"shell": {"type": "builtin", "timeout_s": 0}}})),
            "tools.shell.timeout_s must be between 1 and 86400 seconds",
        ),
        (
            config(
                scripted(),
                json!({"policies": {"ask": {"handler": "ask_on_os_tools", "ask_timeout": 10_000_000_000_000_000_000u64}}}),
            ),
            "policies.ask.ask_timeout must be between 1 and 2592000 seconds",
        ),
    ];
    for (config, expected) in cases {
        let (status, body) = srv.api.post("/v1/sessions", json!({"config": config})).await;
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
    }
    // Over REST, too.
    let id = srv.api.create(json!({"config": config(scripted(), json!({}))})).await;
    let policy = json!({"name": "ask", "handler": "ask_on_os_tools", "ask_timeout": 10_000_000_000_000_000_000u64});
    let (status, body) = srv.api.post(&format!("/v1/sessions/{id}/policies"), policy).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("ask_timeout must be between 1 and"), "{body}");
}

fn mkfifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
    path
}

#[tokio::test]
async fn a_fifo_or_a_device_as_a_component_is_refused_at_once() {
    let srv = server().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path(), "policy.wasm");
    let zero = dir.path().join("zero.wasm");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    for path in [&fifo, &zero] {
        // A policy: the session is refused where it is declared, without waiting for a writer or reading forever.
        let policies = json!({"policies": {"p": {"component": path.display().to_string()}}});
        let started = Instant::now();
        let request = srv.api.post("/v1/sessions", json!({"config": config(scripted(), policies)}));
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), request).await.expect("an answer");
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("is not a regular file"), "{body}");
        assert!(started.elapsed() < Duration::from_secs(5));

        // A harness: the turn fails with a reason instead of running forever.
        let executor =
            json!({"harness": path.display().to_string(), "provider": "scripted", "script": [{"text": "x"}]});
        let id = srv.api.create(json!({"config": config(executor, json!({}))})).await;
        let mut stream = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.api.base), &[]).await;
        srv.api.message(&id, "hi").await;
        let statuses = tokio::time::timeout(Duration::from_secs(10), stream.statuses_until_settled()).await.unwrap();
        assert_eq!(statuses.last().map(String::as_str), Some("failed"), "{statuses:?}");
        let (_, snapshot) = srv.api.get(&format!("/v1/sessions/{id}")).await;
        let error = &snapshot["last_task_error"];
        assert_eq!(error["code"], "harness_invalid", "{snapshot}");
        assert!(error["message"].as_str().unwrap().contains("not a regular file"), "{error}");
    }
}

#[test]
fn the_cli_refuses_a_config_that_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path(), "session.yaml");
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigent"))
            .args(["run", "-f", path.to_str().unwrap(), "-p", "hi"])
            .env("OMNIGENT_DATA_DIR", dir.path())
            .env("OMNIGENT_SERVER", "http://127.0.0.1:9")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(5), "answered at once");
    }
}
