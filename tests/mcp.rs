//! MCP servers as a session's tools, end to end: the real binary, the `agent` harness, a mock model that asks for
//! the calls, and a real MCP server — `tests/fixtures/mcp_server.py` on the official Python SDK (FastMCP, in the
//! venv scripts/test makes) — over stdio (in the session's sandbox) and over Streamable HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, ServerProcess, Sse, free_port};
use serde_json::{Value, json};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnigent"))
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mcp_server.py").canonicalize().unwrap()
}

/// The venv's Python, which has the MCP SDK; None skips (OMNIGENT_REQUIRE_SDK=1: fails).
fn python() -> Option<PathBuf> {
    let python = std::env::var("OMNIGENT_SDK_PYTHON").ok().filter(|p| !p.is_empty());
    if python.is_none() {
        assert_ne!(std::env::var("OMNIGENT_REQUIRE_SDK").as_deref(), Ok("1"), "OMNIGENT_SDK_PYTHON is not set");
        eprintln!("SKIPPED: the MCP tests need OMNIGENT_SDK_PYTHON (scripts/test creates the venv)");
    }
    python.map(PathBuf::from)
}

/// The rmcp-written fixture (`tests/fixtures/mcp_fixture.rs`), built next to the tests by scripts/test; None skips
/// (OMNIGENT_MCP_TESTS=1: fails).
fn rust_fixture() -> Option<PathBuf> {
    let exe = std::env::current_exe().unwrap();
    let fixture = exe.parent().and_then(Path::parent).map(|d| d.join("mcp-fixture")).filter(|f| f.is_file());
    if fixture.is_none() {
        let hint = "cargo build -p omnigent-testkit --bin mcp-fixture (scripts/test does)";
        assert_ne!(std::env::var("OMNIGENT_MCP_TESTS").as_deref(), Ok("1"), "no mcp-fixture next to the tests: {hint}");
        eprintln!("SKIPPED: no mcp-fixture next to the tests: {hint}");
    }
    fixture
}

/// The venv folder (granted to the sandbox so a stdio server can run from it).
fn venv(python: &Path) -> PathBuf {
    python.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Waits (20 s at most) until an HTTP fixture listens on `port`.
async fn listening(port: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the HTTP fixture did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The fixture over Streamable HTTP on a free loopback port; killed when dropped.
struct HttpFixture {
    child: std::process::Child,
    url: String,
}

impl HttpFixture {
    /// `mode`: `http` (Streamable HTTP, at /mcp) or `sse` (the older transport, at /sse).
    async fn start(python: &Path, mode: &str) -> HttpFixture {
        let port = free_port();
        let child = std::process::Command::new(python)
            .arg(fixture())
            .args([mode, &port.to_string()])
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        listening(port).await;
        let path = if mode == "sse" { "sse" } else { "mcp" };
        HttpFixture { child, url: format!("http://127.0.0.1:{port}/{path}") }
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Setup {
    work: tempfile::TempDir,
    data: PathBuf,
    _db: omnigent_testkit::TestDb,
    mock: MockLlm,
    srv: ServerProcess,
    api: Api,
}

impl Setup {
    async fn new() -> Setup {
        let work = tempfile::tempdir().unwrap();
        let data = omnigent_testkit::data_dir_in(work.path());
        let mock = MockLlm::start(Vec::new()).await;
        let db = omnigent_testkit::sqlite_db();
        let srv = ServerProcess::start(&bin(), &data, &db.url, free_port(), &[]).await;
        let api = Api::new(srv.url.clone());
        Setup { work, data, _db: db, mock, srv, api }
    }

    /// A session config with `tools`, the Python fixture readable in the sandbox.
    fn config(&self, python: &Path, tools: Value, policies: Value) -> Value {
        self.config_granting(&[venv(python), fixture().parent().unwrap().to_path_buf()], tools, policies)
    }

    /// A session config with `tools`, `grants` readable in the sandbox.
    fn config_granting(&self, grants: &[PathBuf], tools: Value, policies: Value) -> Value {
        json!({
            "name": "mcp-user",
            "executor": {"harness": "agent", "model": "gpt-test", "provider": "openai",
                "auth": {"type": "api_key", "api_key": "test-key", "base_url": self.mock.openai_base()}},
            "tools": tools,
            "policies": policies,
            "os_env": {"cwd": self.work.path(), "sandbox": {"write_paths": ["."], "read_paths": grants}},
        })
    }

    /// The stdio fixture as a `type: mcp` tool; `marker` finds its process.
    fn stdio(&self, python: &Path, marker: &str, extra: Value) -> Value {
        let mut server = json!({"type": "mcp", "command": python, "args": [fixture(), "stdio", marker],
            "env": {"FIXTURE_SECRET": "s3", "FIXTURE_PROBE": self.server_file()}});
        for (k, v) in extra.as_object().unwrap() {
            server[k] = v.clone();
        }
        server
    }

    /// A file of the server's data dir (its log): no tool may see it.
    fn server_file(&self) -> PathBuf {
        std::fs::read_dir(&self.data).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_file()).unwrap()
    }

    /// One turn in which the model makes `calls`; the tools' outputs in order, and the turn's frames.
    async fn turn(&self, id: &str, calls: Vec<(&str, Value)>) -> (Vec<String>, Vec<Value>) {
        let calls = calls.into_iter().map(|(n, a)| (n.to_string(), a)).collect();
        self.mock.push(Reply::Tools { text: String::new(), calls });
        self.mock.push(Reply::text("done"));
        let mut sse = self.send(id, "go").await;
        let frames: Vec<Value> = sse.until("response.completed").await.iter().map(|f| f.json()).collect();
        (omnigent_testkit::tool_outputs(&frames), frames)
    }

    /// Sends a message once the session's stream is open (so nothing of its turn is missed); the stream.
    async fn send(&self, id: &str, text: &str) -> Sse {
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", self.srv.url), &[]).await;
        sse.next().await.unwrap();
        self.api.message(id, text).await;
        sse
    }
}

/// The `servers` of each `session.mcp_startup` of a turn.
fn startups(frames: &[Value]) -> Vec<Value> {
    frames.iter().filter(|f| f["type"] == "session.mcp_startup").map(|f| f["servers"].clone()).collect()
}

fn processes_with(marker: &str) -> usize {
    let out = std::process::Command::new("pgrep").args(["-f", marker]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_tools_are_offered_judged_called_and_bounded_over_stdio_and_http() {
    let Some(python) = python() else { return };
    let http = HttpFixture::start(&python, "http").await;
    let t = Setup::new().await;
    let tools = json!({
        "fx": t.stdio(&python, "mcp-marker-one", json!({"timeout_s": 3, "max_output_bytes": 1000})),
        "web": {"type": "mcp", "url": http.url, "headers": {"X-Test": "yes"}, "tool_name": "echo"},
    });
    let policies = json!({"no-add": {"handler": "tool_filter", "factory_params": {"deny": ["fx__add"]}}});
    let (status, v) = t.api.post("/v1/sessions", json!({"config": t.config(&python, tools, policies)})).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let calls = vec![
        ("fx__echo", json!({"text": "hi"})),
        ("web__echo", json!({"text": "there"})),
        ("fx__add", json!({"a": 1, "b": 2})),
        ("fx__where", json!({})),
        ("fx__big", json!({"size": 100000})),
        ("fx__fail", json!({})),
        ("fx__slow", json!({"seconds": 10})),
    ];
    let (out, frames) = t.turn(id, calls).await;
    // Both servers started for the turn, and said so: starting, then ready.
    let said = startups(&frames);
    assert_eq!(said.len(), 2, "{said:?}");
    assert_eq!(said[0], json!({"fx": {"status": "starting"}, "web": {"status": "starting"}}));
    assert_eq!(said[1], json!({"fx": {"status": "ready"}, "web": {"status": "ready"}}));
    // The model saw the servers' tools under their prefixes; `tool_name` offered one of the HTTP server's.
    let offered: Vec<String> = t.mock.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(offered.contains(&"fx__echo".to_string()) && offered.contains(&"web__echo".to_string()), "{offered:?}");
    assert!(!offered.iter().any(|n| n == "web__add"), "{offered:?}");
    let echo_schema = t.mock.requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "fx__echo")
        .unwrap()["function"]["parameters"]
        .clone();
    assert_eq!(echo_schema["required"], json!(["text"]), "the server's schema: {echo_schema}");
    assert_eq!(out[0], "echo: hi");
    assert_eq!(out[1], "echo: there");
    // A policy judges an MCP call like any other.
    assert!(out[2].contains("denied") || out[2].contains("deny"), "{}", out[2]);
    // The stdio server runs in the session's sandbox: its working dir, not the server's data dir; its own env.
    let cwd = std::fs::canonicalize(t.work.path()).unwrap();
    assert!(out[3].contains(&format!("cwd={}", cwd.display())), "{}", out[3]);
    assert!(out[3].contains("sees=[]") && out[3].contains("secret=s3"), "{}", out[3]);
    // Bounded: a huge answer is capped, an error is the model's to read, a slow call ends at the server's limit.
    assert!(out[4].len() < 1200 && out[4].contains("truncated"), "{}", out[4].len());
    assert!(out[5].contains("failed on purpose"), "{}", out[5]);
    assert!(out[6].contains("did not answer within 3s"), "{}", out[6]);
    // Deleting the session stops its stdio server.
    assert!(processes_with("mcp-marker-one") > 0, "the server runs (bubblewrap and the program)");
    let (status, _) = t.api.call(reqwest::Method::DELETE, &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(status, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while processes_with("mcp-marker-one") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the stdio server outlived its session");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_dies_starts_again_and_one_that_cannot_start_is_a_tool_error() {
    let Some(python) = python() else { return };
    let t = Setup::new().await;
    let tools = json!({
        "fx": t.stdio(&python, "mcp-marker-two", json!({})),
        "broken": {"type": "mcp", "command": "/nonexistent/mcp-server"},
    });
    let (status, v) = t.api.post("/v1/sessions", json!({"config": t.config(&python, tools, json!({}))})).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let (out, frames) = t.turn(id, vec![("fx__crash", json!({})), ("broken__anything", json!({}))]).await;
    let startup = startups(&frames).pop().unwrap();
    assert_eq!(startup["fx"]["status"], "ready", "{startup}");
    assert_eq!(startup["broken"]["status"], "failed", "{startup}");
    assert!(startup["broken"]["error"].as_str().unwrap().contains("/nonexistent/mcp-server"), "{startup}");
    assert!(out[0].contains("failed the call"), "{}", out[0]);
    assert!(out[1].contains("could not start") && out[1].contains("/nonexistent/mcp-server"), "{}", out[1]);
    // The next turn starts the dead server again; the session never failed.
    let (out, frames) = t.turn(id, vec![("fx__echo", json!({"text": "back"}))]).await;
    assert_eq!(out[0], "echo: back");
    // Only the servers that were not running start (the broken one is tried again).
    let said = startups(&frames);
    assert_eq!(said[0], json!({"broken": {"status": "starting"}, "fx": {"status": "starting"}}), "{said:?}");
    assert_eq!(said.last().unwrap()["fx"]["status"], "ready");
    // A running server is shared by the session's next turn: only the broken one is tried again.
    let (out, frames) = t.turn(id, vec![("fx__echo", json!({"text": "still"}))]).await;
    assert_eq!(out[0], "echo: still");
    assert_eq!(startups(&frames)[0], json!({"broken": {"status": "starting"}}));
    let (_, snap) = t.api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["status"], "idle", "{snap}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_mcp_servers_question_is_asked_of_the_user_and_the_answer_goes_back() {
    let Some(python) = python() else { return };
    let t = Setup::new().await;
    // A 2 s time limit: the calls below wait longer than that for a human, which must not count.
    let tools = json!({"fx": t.stdio(&python, "mcp-marker-ask", json!({"timeout_s": 2}))});
    let (status, v) = t.api.post("/v1/sessions", json!({"config": t.config(&python, tools, json!({}))})).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let calls = vec![
        ("fx__deploy", json!({"service": "api"})),
        ("fx__deploy", json!({"service": "db"})),
        ("fx__deploy", json!({"service": "web"})),
        ("fx__wipe", json!({})),
    ];
    let calls = calls.into_iter().map(|(n, a)| (n.to_string(), a)).collect();
    t.mock.push(Reply::Tools { text: String::new(), calls });
    t.mock.push(Reply::text("done"));
    let mut sse = t.send(id, "go").await;
    // Each question: what the server asked, in MCP's form, for the call it belongs to; the session waits.
    let answers = [
        json!({"action": "accept", "content": {"env": "prod", "replicas": 3}}),
        json!({"action": "decline"}),
        json!({"action": "accept", "content": {"env": 7}}), // does not fit the schema: declined for the human
        json!({"action": "accept"}),                        // a yes/no question: accepted as yes
    ];
    let mut frames = Vec::new();
    for (n, answer) in answers.into_iter().enumerate() {
        let seen = sse.until("response.elicitation_request").await;
        let request = seen.last().unwrap().json();
        frames.extend(seen.iter().map(|f| f.json()));
        let params = &request["params"];
        assert_eq!(params["mode"], "form", "{request}");
        assert_eq!(params["mcp_server"], "fx", "{request}");
        assert_eq!(params["phase"], "mcp_elicitation", "{request}");
        if n < 3 {
            assert!(params["message"].as_str().unwrap().starts_with("Deploy "), "{request}");
            assert_eq!(params["tool_name"], "fx__deploy", "{request}");
            assert_eq!(params["requestedSchema"]["properties"]["env"]["type"], "string", "{request}");
            assert_eq!(params["requestedSchema"]["required"], json!(["env"]), "{request}");
        } else {
            assert_eq!(params["requestedSchema"]["properties"]["confirm"]["type"], "boolean", "{request}");
        }
        let (_, snap) = t.api.get(&format!("/v1/sessions/{id}")).await;
        assert_eq!(snap["status"], "paused", "{snap}");
        if n == 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let eid = request["elicitation_id"].as_str().unwrap();
        let path = format!("/v1/sessions/{id}/elicitations/{eid}/resolve");
        let (status, v) = t.api.post(&path, answer).await;
        assert!(status < 300, "{status} {v}");
    }
    frames.extend(sse.until("response.completed").await.iter().map(|f| f.json()));
    let out = omnigent_testkit::tool_outputs(&frames);
    assert_eq!(out, ["deploying api to prod x3", "deploy decline", "deploy decline", "wiped=True"]);
    let resolved: Vec<&Value> = frames.iter().filter(|f| f["type"] == "response.elicitation_resolved").collect();
    assert_eq!(resolved.len(), 4, "{resolved:?}");
    assert_eq!(resolved[0]["content"], json!({"env": "prod", "replicas": 3}));
    let (_, snap) = t.api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["status"], "idle", "{snap}");
    assert_eq!(snap["pending_elicitations"], json!([]), "{snap}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupt_while_an_mcp_server_waits_for_an_answer_ends_the_turn_and_the_question() {
    let Some(python) = python() else { return };
    let t = Setup::new().await;
    let tools = json!({"fx": t.stdio(&python, "mcp-marker-interrupt", json!({}))});
    let (status, v) = t.api.post("/v1/sessions", json!({"config": t.config(&python, tools, json!({}))})).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    t.mock.push(Reply::Tools { text: String::new(), calls: vec![("fx__wipe".into(), json!({}))] });
    let mut sse = t.send(id, "wipe it").await;
    sse.until("response.elicitation_request").await;
    let (status, _) = t.api.post(&format!("/v1/sessions/{id}/events"), json!({"type": "interrupt"})).await;
    assert!(status < 300);
    sse.until("response.incomplete").await;
    let (_, snap) = t.api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["status"], "idle", "{snap}");
    assert_eq!(snap["pending_elicitations"], json!([]), "{snap}");
    // The server was told and is fine: the next turn's call answers.
    let (out, _) = t.turn(id, vec![("fx__echo", json!({"text": "after"}))]).await;
    assert_eq!(out, ["echo: after"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_on_the_older_sse_transport_works_questions_included() {
    let Some(python) = python() else { return };
    let old = HttpFixture::start(&python, "sse").await;
    let t = Setup::new().await;
    let tools = json!({"old": {"type": "mcp", "url": old.url, "headers": {"X-Test": "yes"}}});
    let (status, v) = t.api.post("/v1/sessions", json!({"config": t.config(&python, tools, json!({}))})).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let (out, frames) =
        t.turn(id, vec![("old__echo", json!({"text": "sse"})), ("old__add", json!({"a": 2, "b": 3}))]).await;
    assert_eq!(startups(&frames).last().unwrap()["old"]["status"], "ready");
    assert_eq!(out, ["echo: sse", "5"]);
    // A question from the server travels over the event stream, its answer back by POST.
    t.mock.push(Reply::Tools { text: String::new(), calls: vec![("old__wipe".into(), json!({}))] });
    t.mock.push(Reply::text("done"));
    let mut sse = t.send(id, "wipe").await;
    let request = sse.until("response.elicitation_request").await.last().unwrap().json();
    assert_eq!(request["params"]["mcp_server"], "old", "{request}");
    let eid = request["elicitation_id"].as_str().unwrap();
    let (status, _) =
        t.api.post(&format!("/v1/sessions/{id}/elicitations/{eid}/resolve"), json!({"action": "accept"})).await;
    assert!(status < 300);
    let frames: Vec<Value> = sse.until("response.completed").await.iter().map(|f| f.json()).collect();
    assert_eq!(omnigent_testkit::tool_outputs(&frames), ["wiped=True"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_rmcp_server_that_lies_hangs_floods_and_crashes_costs_only_tool_errors() {
    let Some(fixture) = rust_fixture() else { return };
    let port = free_port();
    let mut http = std::process::Command::new(&fixture).args(["http", &port.to_string()]).spawn().unwrap();
    let t = Setup::new().await;
    let tools = json!({
        "rs": {"type": "mcp", "command": fixture, "args": ["stdio"], "timeout_s": 2},
        "rh": {"type": "mcp", "url": format!("http://127.0.0.1:{port}/mcp"), "tools": ["echo", "big"]},
    });
    let config = t.config_granting(&[fixture.parent().unwrap().to_path_buf()], tools, json!({}));
    listening(port).await;
    let (status, v) = t.api.post("/v1/sessions", json!({"config": config})).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let calls = vec![
        ("rs__echo", json!({"text": "hi"})),
        ("rs__add", json!({"a": 2, "b": 40})),
        ("rs__big", json!({"size": 10_000_000})),
        ("rs__slow", json!({"seconds": 30})),
        ("rs__fail", json!({})),
        ("rh__echo", json!({"text": "over http"})),
        ("rh__big", json!({"size": 10_000_000})),
        ("rs__liar", json!({})),
        ("rs__crash", json!({})),
    ];
    let (out, frames) = t.turn(id, calls).await;
    // The tool with a schema a model API would refuse is left out (the others are offered), and the start says so.
    let ready = startups(&frames).pop().unwrap();
    assert_eq!(ready["rs"]["skipped_tools"], json!(["liar: its input schema is not an object"]), "{ready}");
    let offered = t.mock.requests()[0].body["tools"].to_string();
    assert!(offered.contains("rs__echo") && !offered.contains("rs__liar"), "{offered}");
    assert_eq!(out[0], "echo: hi");
    assert_eq!(out[1], "42");
    // 10 MB comes back capped; a hung call ends at its limit; an error result is the model's to read.
    assert!(out[2].len() < 70_000 && out[2].contains("truncated"), "{}", out[2].len());
    assert!(out[3].contains("did not answer within 2s"), "{}", out[3]);
    assert!(out[4].contains("failed on purpose"), "{}", out[4]);
    assert_eq!(out[5], "echo: over http");
    assert!(out[6].len() < 70_000 && out[6].contains("truncated"), "{}", out[6].len());
    assert!(out[7].contains("no tool named") || out[7].contains("rs__liar"), "{}", out[7]);
    assert!(out[8].contains("failed the call"), "{}", out[8]);
    // The session is fine, and the crashed server serves the next turn.
    let (out, _) = t.turn(id, vec![("rs__echo", json!({"text": "again"}))]).await;
    assert_eq!(out[0], "echo: again");
    let (_, snap) = t.api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["status"], "idle", "{snap}");
    let _ = http.kill();
    let _ = http.wait();
}

/// The reference filesystem server from npm (scripts/test installs it); None skips (OMNIGENT_MCP_TESTS=1: fails).
fn reference_fs_server() -> Option<PathBuf> {
    let path = std::env::var("OMNIGENT_TEST_MCP_FS").ok().filter(|p| !p.is_empty());
    if path.is_none() {
        assert_ne!(std::env::var("OMNIGENT_MCP_TESTS").as_deref(), Ok("1"), "OMNIGENT_TEST_MCP_FS is not set");
        eprintln!(
            "SKIPPED: needs OMNIGENT_TEST_MCP_FS, the npm reference filesystem server (scripts/test installs it)"
        );
    }
    path.map(PathBuf::from)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_npm_reference_filesystem_server_works_in_the_sandbox_and_sees_only_its_roots() {
    let Some(server) = reference_fs_server() else { return };
    // Its package folder is granted to the sandbox; node itself is a system program.
    let package = server.parent().and_then(Path::parent).and_then(Path::parent).and_then(Path::parent).unwrap();
    let t = Setup::new().await;
    std::fs::write(t.work.path().join("notes.txt"), "from the work dir\n").unwrap();
    let tools = json!({"fs": {"type": "mcp", "command": "node", "args": [server, "."],
        "tools": ["list_directory", "read_text_file", "write_file"]}});
    let config = json!({
        "name": "fs-user",
        "executor": {"harness": "agent", "model": "gpt-test", "provider": "openai",
            "auth": {"type": "api_key", "api_key": "test-key", "base_url": t.mock.openai_base()}},
        "tools": tools,
        "os_env": {"cwd": t.work.path(), "sandbox": {"write_paths": ["."], "read_paths": [package]}},
    });
    let (status, v) = t.api.post("/v1/sessions", json!({"config": config})).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let work = std::fs::canonicalize(t.work.path()).unwrap();
    let calls = vec![
        ("fs__list_directory", json!({"path": work})),
        ("fs__read_text_file", json!({"path": work.join("notes.txt")})),
        ("fs__write_file", json!({"path": work.join("made.txt"), "content": "by MCP"})),
        ("fs__read_text_file", json!({"path": "/etc/passwd"})),
        ("fs__list_directory", json!({"path": work.join(".omnigent-data")})),
    ];
    let (out, frames) = t.turn(id, calls).await;
    assert_eq!(startups(&frames).last().unwrap()["fs"]["status"], "ready", "{:?}", startups(&frames));
    let offered = t.mock.requests()[0].body["tools"].as_array().unwrap().len();
    assert_eq!(offered, 3, "the allowlist keeps three of its tools");
    assert!(out[0].contains("notes.txt"), "{}", out[0]);
    assert_eq!(out[1].trim(), "from the work dir");
    assert_eq!(std::fs::read_to_string(t.work.path().join("made.txt")).unwrap(), "by MCP", "{}", out[2]);
    // Outside its allowed directory: the server itself refuses.
    assert!(out[3].to_lowercase().contains("denied") || out[3].contains("outside"), "{}", out[3]);
    // The server's data dir inside the working directory is an empty folder to it.
    assert!(!out[4].contains("test-server") && !out[4].contains("[FILE]"), "{}", out[4]);
}
