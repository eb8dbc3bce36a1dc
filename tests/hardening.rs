//! Defects found by attacking the server (issue: hardening), each fixed and kept fixed: numbers from configs that
//! would overflow a deadline, paths that are FIFOs or devices, files without end.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use omnigent::server::{Server, ServerOptions};
use omnigent::store::Store;
use omnigent_testkit::{Api, Sse, TestDb, databases, sqlite_db};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct TestServer {
    api: Api,
    shutdown: CancellationToken,
    _db: TestDb,
}

async fn server() -> TestServer {
    server_on(sqlite_db()).await
}

async fn server_on(db: TestDb) -> TestServer {
    server_with(db, ServerOptions::default()).await
}

async fn server_with(db: TestDb, options: ServerOptions) -> TestServer {
    let store = Store::connect(&db.url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let server = Server::new(store, listener, options, shutdown.clone()).await.unwrap();
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
        let request = srv.api.post("/v1/sessions", json!({"config": config(scripted(), policies)}));
        let (status, body) = tokio::time::timeout(Duration::from_secs(10), request).await.expect("an answer");
        assert_eq!(status, 400, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("is not a regular file"), "{body}");

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

#[tokio::test]
async fn the_cli_refuses_a_config_that_is_not_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = mkfifo(dir.path(), "session.yaml");
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnigent"))
            .args(["run", "-f", path.to_str().unwrap(), "-p", "hi"])
            .env("OMNIGENT_DATA_DIR", dir.path())
            .env("OMNIGENT_SERVER", "http://127.0.0.1:9")
            .kill_on_drop(true)
            .output();
        // Before, it waited for a writer (FIFO) or read forever (/dev/zero).
        let out = tokio::time::timeout(Duration::from_secs(10), run).await.expect("the CLI answers").unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }
}

/// A NUL (which Postgres cannot store) or an oversized name in any text that lands in a column is a 400 on both
/// databases, never a 500 on one of them.
#[tokio::test]
async fn nul_and_oversized_texts_are_refused_alike_on_both_databases() {
    for db in databases().await {
        let label = db.label;
        let srv = server_on(db).await;
        let api = &srv.api;
        let id = api.create(json!({"title": "ok"})).await;
        let nul = "a\u{0}b";
        let bodies = [
            ("POST", "/v1/sessions".to_string(), json!({"title": nul})),
            ("PATCH", format!("/v1/sessions/{id}"), json!({"title": nul})),
            (
                "POST",
                format!("/v1/sessions/{id}/events"),
                json!({"type": "message", "data": {"content": "hi"}, "created_by": nul}),
            ),
            ("POST", format!("/v1/sessions/{id}/comments"), json!({"path": nul, "body": "b"})),
            (
                "POST",
                format!("/v1/sessions/{id}/comments"),
                json!({"path": "p", "body": "b", "start_index": 5, "end_index": 2}),
            ),
            ("POST", format!("/v1/sessions/{id}/comments"), json!({"path": "p", "body": "b", "start_index": -1})),
            (
                "POST",
                "/v1/agents".to_string(),
                json!({"config": config(scripted(), json!({})).as_object().map(|c| { let mut c = c.clone(); c.insert("name".into(), nul.into()); c })}),
            ),
            (
                "POST",
                "/v1/agents".to_string(),
                json!({"config": config(scripted(), json!({})).as_object().map(|c| { let mut c = c.clone(); c.insert("name".into(), "n".repeat(1 << 20).into()); c })}),
            ),
        ];
        for (method, path, body) in bodies {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let (status, answer) = api.call(method, &path, Some(body)).await;
            assert_eq!(status, 400, "{label} {path}: {answer}");
        }
        for path in [
            format!("/v1/sessions/{id}/resources/files/file%00x"),
            format!("/v1/sessions/{id}/comments/cmt%00"),
            format!("/v1/sessions/{id}/items?after=x%00"),
            "/v1/sessions?agent_id=a%00".to_string(),
            "/v1/agents/a%00".to_string(),
            format!("/v1/sessions/{id}/elicitations/e%00"),
        ] {
            let (status, answer) = api.get(&path).await;
            assert_eq!(status, 400, "{label} {path}: {answer}");
        }
        // The session took none of it.
        let (_, items) = api.get(&format!("/v1/sessions/{id}/items")).await;
        assert_eq!(items["data"], json!([]), "{label}");
    }
}

/// Inputs queued together commit together; one bad input among them must not fail the others.
#[tokio::test]
async fn one_clients_bad_input_does_not_fail_the_others_queued_with_it() {
    for db in databases().await {
        let label = db.label;
        let srv = server_on(db).await;
        let id = srv.api.create(json!({"title": "busy"})).await;
        let mut posts = Vec::new();
        for i in 0..200 {
            let api = srv.api.clone();
            let path = format!("/v1/sessions/{id}/events");
            let author = if i == 100 { "bad\u{0}author".to_string() } else { format!("client-{i}") };
            let body = json!({"type": "message", "data": {"content": format!("m{i}")}, "created_by": author});
            posts.push(tokio::spawn(async move { api.post(&path, body).await.0 }));
        }
        let mut statuses = Vec::new();
        for p in posts {
            statuses.push(p.await.unwrap());
        }
        assert_eq!(statuses[100], 400, "{label}");
        let accepted = statuses.iter().filter(|s| **s == 202).count();
        assert_eq!(accepted, 199, "{label}: every other post went through: {statuses:?}");
        let (_, items) = srv.api.get(&format!("/v1/sessions/{id}/items?limit=1000")).await;
        assert_eq!(items["data"].as_array().unwrap().len(), 199, "{label}");
    }
}

#[tokio::test]
async fn a_tool_output_without_a_waiting_call_or_a_message_with_an_unknown_file_is_refused() {
    let srv = server().await;
    let id = srv.api.create(json!({"title": "t"})).await;
    let orphan = json!({"type": "function_call_output", "data": {"call_id": "call_nobody", "output": "x"}});
    let (status, body) = srv.api.post(&format!("/v1/sessions/{id}/events"), orphan).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("call_nobody"), "{body}");
    let file = json!({"type": "message", "data": {"content": [{"type": "input_file", "file_id": "file_nope"}]}});
    let (status, body) = srv.api.post(&format!("/v1/sessions/{id}/events"), file).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("file_nope"), "{body}");
    let (_, items) = srv.api.get(&format!("/v1/sessions/{id}/items")).await;
    assert_eq!(items["data"], json!([]), "nothing of either reached the transcript");
    let missing = omnigent::ids::SessionId::new();
    let (status, _) = srv
        .api
        .post(
            &format!("/v1/sessions/{missing}/events"),
            json!({"type": "function_call_output", "data": {"call_id": "c", "output": "x"}}),
        )
        .await;
    assert_eq!(status, 404);
}

/// `POST /v1/responses` with `stream: true` to a reader too slow for the live channel: every event still arrives,
/// refilled from the log.
#[tokio::test]
async fn a_slow_reader_of_a_streamed_response_misses_nothing() {
    let srv = server().await;
    // The hostile fixture's `flood`: 1,000 events of 32 KB, far more than the socket buffers and the live channel hold.
    let hostile = format!("{}/hostile.wasm", omnigent_runtime::GUEST_DIR);
    let executor = json!({"harness": hostile, "provider": "scripted", "script": [{"text": "unused"}]});
    let agent = json!({"name": "flood", "executor": executor});
    let (status, body) = srv.api.post("/v1/agents", json!({"config": agent})).await;
    assert_eq!(status, 201, "{body}");
    let response = omnigent_testkit::http()
        .post(format!("{}/v1/responses", srv.api.base))
        .json(&json!({"model": "flood", "input": "flood", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Read nothing until the turn is over.
    let started = Instant::now();
    let session = loop {
        let (_, list) = srv.api.get("/v1/sessions?agent_name=flood").await;
        let first = list["data"].as_array().and_then(|d| d.first()).cloned().unwrap_or_default();
        if first["status"] == "idle" || first["status"] == "failed" {
            assert_eq!(first["status"], "idle", "{first}");
            break first["id"].as_str().unwrap().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the turn ends: {first}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stream = Sse::from_response(response);
    let (mut deltas, mut completed) = (Vec::new(), false);
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.unwrap() {
        if frame.is_done() {
            break;
        }
        match frame.event.as_deref() {
            Some("response.reasoning_text.delta") => deltas.push(frame.json()["n"].as_i64().unwrap()),
            Some("response.completed") => completed = true,
            _ => {}
        }
    }
    assert!(completed, "the stream ends with the response ({session})");
    assert_eq!(deltas, (0..1000).collect::<Vec<_>>(), "every event, in order");
}

#[tokio::test]
async fn agents_are_shown_without_their_api_keys() {
    let srv = server().await;
    let executor = json!({"harness": "agent", "provider": "scripted", "script": [{"text": "hi"}],
        "auth": {"type": "api_key", "api_key": "sk-live-SECRET"}});
    let (status, created) =
        srv.api.post("/v1/agents", json!({"config": config(executor, json!({"name": "keyed"}))})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["config"]["executor"]["auth"]["api_key"], "[redacted]");
    let agent = created["id"].as_str().unwrap();
    for path in ["/v1/agents".to_string(), format!("/v1/agents/{agent}"), "/v1/agents/keyed".to_string()] {
        let (status, body) = srv.api.get(&path).await;
        assert_eq!(status, 200);
        assert!(!body.to_string().contains("sk-live-SECRET"), "{path}: {body}");
    }
    // The key is still there for the agent's sessions.
    let id = srv.api.create(json!({"agent_id": agent})).await;
    let mut stream = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.api.base), &[]).await;
    srv.api.message(&id, "hi").await;
    let statuses = tokio::time::timeout(Duration::from_secs(10), stream.statuses_until_settled()).await.unwrap();
    assert_eq!(statuses.last().map(String::as_str), Some("idle"), "{statuses:?}");
}

#[tokio::test]
async fn the_data_dir_and_the_database_are_private_and_the_token_can_come_from_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").unwrap();
    let db = format!("sqlite://{}", data.join("omnigent.db").display());
    let port = omnigent_testkit::free_port();
    let bin = Path::new(env!("CARGO_BIN_EXE_omnigent"));
    let server = omnigent_testkit::ServerProcess::start(
        bin,
        &data,
        &db,
        port,
        &["--auth-token-file", token_file.to_str().unwrap()],
    )
    .await;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data dir");
    assert_eq!(mode(&data.join("omnigent.db")), 0o600, "the database");
    assert_eq!(mode(&data.join("server.pid")), 0o600, "the pid file");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains("s3cret-token"), "the token is not in the process list");
    let (status, _) = Api::new(server.url.clone()).get("/v1/sessions").await;
    assert_eq!(status, 401);
    let (status, _) = Api::new(server.url.clone()).with_token("s3cret-token").get("/v1/sessions").await;
    assert_eq!(status, 200);
}

/// Postgres cuts the server's connections in the middle of its writes while turns run (`pg_terminate_backend`, as
/// an operator or a failover would): the writes are retried, every turn completes, every log is gap-free, and the
/// transcript is whole — no tool output without its call, no completed response without its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_survive_the_database_cutting_their_connections() {
    let Some(db) = omnigent_testkit::postgres_db().await else {
        eprintln!("skipped: TEST_DATABASE_URL is not set");
        return;
    };
    let app = format!("omnigent_cut_{:08x}", rand::random::<u32>());
    let url = format!("{}&application_name={app}", db.url);
    let store = Store::connect(&url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let server = Server::new(store.clone(), listener, ServerOptions::default(), shutdown.clone()).await.unwrap();
    let api = Api::new(format!("http://{}", server.local_addr()));
    tokio::spawn(server.run());

    let turns = 6;
    let mut script = Vec::new();
    for t in 0..turns {
        let echo = json!({"name": "shell", "arguments": {"command": format!("echo turn {t}")}});
        script.push(json!({"text": format!("working on {t}"), "tool_call": echo}));
        script.push(json!({"text": format!("answer {t}")}));
    }
    let executor = json!({"harness": "agent", "provider": "scripted", "script": script});
    let session_config = config(executor, json!({"tools": {"shell": {"type": "builtin"}}}));
    let mut sessions = Vec::new();
    for _ in 0..8 {
        sessions.push(api.create(json!({"config": session_config.clone()})).await);
    }

    // The cutter, eleven times: hold a lock that makes the server's next write wait, terminate the server's
    // connection in the middle of that write, let go. Every cut hits a commit in flight.
    let base = std::env::var("TEST_DATABASE_URL").unwrap();
    let schema_url = db.url.clone();
    let cutter = tokio::spawn({
        let app = app.clone();
        async move {
            let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&base).await.unwrap();
            let mut locker = <sqlx::PgConnection as sqlx::Connection>::connect(&schema_url).await.unwrap();
            let mut cut = 0;
            for _ in 0..11 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
                sqlx::query("LOCK TABLE events IN EXCLUSIVE MODE").execute(&mut locker).await.unwrap();
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(3) {
                    let killed: Vec<(bool,)> = sqlx::query_as(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    )
                    .bind(&app)
                    .fetch_all(&mut admin)
                    .await
                    .unwrap();
                    if !killed.is_empty() {
                        cut += killed.len();
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
            }
            cut
        }
    });
    let drivers: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|id| {
            let api = api.clone();
            tokio::spawn(async move {
                for t in 0..turns {
                    // A refused post (the database down for longer than the retries) is not a lost one: retry it.
                    let started = Instant::now();
                    loop {
                        let (status, _) = api
                            .post(
                                &format!("/v1/sessions/{id}/events"),
                                json!({"type": "message", "data": {"content": format!("turn {t}")}}),
                            )
                            .await;
                        if status == 202 || started.elapsed() > Duration::from_secs(20) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    settle(&api, &id).await;
                }
            })
        })
        .collect();
    for d in drivers {
        d.await.unwrap();
    }
    let cut = cutter.await.unwrap();
    eprintln!("connections cut: {cut}");
    assert!(cut >= 5, "the cutter cut writes in flight: {cut}");

    for id in &sessions {
        let record = settle(&api, id).await;
        // Each cut was a passing failure: the writes were retried and every turn completed.
        assert_eq!(record["status"], "idle", "{id}: {}", record["last_task_error"]);
        let sid = omnigent::ids::SessionId::parse(id).unwrap();
        let events = store.events_after(&sid, 0, None, 100_000).await.unwrap();
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=record["last_seq"].as_i64().unwrap_or(seqs.len() as i64)).collect::<Vec<_>>(),
            "gap-free log of {id}"
        );
        let (_, items) = api.get(&format!("/v1/sessions/{id}/items?limit=1000")).await;
        let items = items["data"].as_array().unwrap().clone();
        for (i, item) in items.iter().enumerate().filter(|(_, i)| i["type"] == "function_call_output") {
            assert!(
                items[..i].iter().any(|c| c["type"] == "function_call" && c["call_id"] == item["call_id"]),
                "{id}: the output {item} has its call"
            );
        }
        for done in events.iter().filter(|e| e.event_type == "response.completed") {
            let response = &done.data["response"]["id"];
            assert!(
                items
                    .iter()
                    .any(|i| i["type"] == "message" && i["role"] == "assistant" && i["response_id"] == *response),
                "{id}: the completed response {response} has its answer"
            );
        }
    }
    shutdown.cancel();
}

/// Waits until a session is neither running nor paused, and returns its snapshot.
async fn settle(api: &Api, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, snapshot) = api.get(&format!("/v1/sessions/{id}?include_items=false")).await;
        if status == 200 && snapshot["status"] != "running" && snapshot["status"] != "paused" {
            return snapshot;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{id} settles: {snapshot}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Clients that hold connections without finishing their requests are cut off; an oversized body is refused from
/// its announced length, before a byte of it is read; every such answer is the API's JSON envelope.
#[tokio::test]
async fn slow_or_oversized_requests_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let options = ServerOptions { read_timeout: Duration::from_secs(1), ..ServerOptions::default() };
    let srv = server_with(sqlite_db(), options).await;
    let addr = srv.api.base.trim_start_matches("http://").to_string();
    let id = srv.api.create(json!({"title": "t"})).await;
    let exchange = |request: String| {
        let addr = addr.clone();
        async move {
            let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
            conn.write_all(request.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            // A connection the server holds open fails here.
            let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await.expect("closed");
            String::from_utf8_lossy(&answer).to_string()
        }
    };
    // Headers that never end: the connection is closed after the read timeout.
    let answer = exchange(format!("GET /v1/sessions/{id} HTTP/1.1\r\nHost: x\r\n")).await;
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
    // A body announced larger than the limit (and never sent): 413 without waiting for it — waiting would end in
    // the read timeout's 408 — in the envelope.
    let answer = exchange(format!(
        "POST /v1/sessions/{id}/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 104857600\r\n\r\n"
    ))
    .await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("payload_too_large"), "{answer}");
    // A body that never comes: 408 after the read timeout.
    let answer = exchange(format!(
        "POST /v1/sessions/{id}/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{{\"ty"
    ))
    .await;
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("request_timeout"), "{answer}");
    // Headers too large: 431 in the envelope.
    let answer = exchange(format!(
        "GET /v1/sessions/{id} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(100 * 1024)
    ))
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 431") && answer.contains("headers_too_large"),
        "{}",
        &answer[..200.min(answer.len())]
    );
    // An upload that is not multipart: the envelope, not a bare text.
    let (status, body) = srv.api.post(&format!("/v1/sessions/{id}/resources/files"), json!({"file": "x"})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_input", "{body}");
}

/// A file name with a quote is stored whole when it is escaped (curl's `\"`; a browser's `%22` is kept as sent), and
/// refused when it is not — never cut short.
#[tokio::test]
async fn an_upload_keeps_its_whole_name() {
    let srv = server().await;
    let id = srv.api.create(json!({"title": "t"})).await;
    for (sent, stored) in [
        (r#"a\"b.txt"#, Some(r#"a"b.txt"#)),
        ("a%22b.txt", Some("a%22b.txt")),
        ("plain.txt", Some("plain.txt")),
        (r#"a"b.txt"#, None),
    ] {
        let body = format!(
            "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{sent}\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n"
        );
        let response = omnigent_testkit::http()
            .post(format!("{}/v1/sessions/{id}/resources/files", srv.api.base))
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let file: Value = response.json().await.unwrap();
        match stored {
            Some(stored) => {
                assert_eq!(status, 201, "{file}");
                assert_eq!(file["name"], stored, "{sent}");
            }
            None => {
                assert_eq!(status, 400, "{sent}: {file}");
                assert!(file["error"]["message"].as_str().unwrap().contains("unescaped"), "{file}");
            }
        }
    }
}
