//! Harness turns end to end: the real binary, real HTTP, the real `agent` harness component, and a mock LLM
//! vendor speaking OpenAI and Anthropic wire formats on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, ServerProcess, Sse, TestDb, databases, free_port};
use serde_json::{Value, json};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnigent"))
}

/// A work dir with a marker file the shell tool will list.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("marker-7f3a.txt"), "hello").unwrap();
    dir
}

fn yaml(provider: &str, base_url: &str, cwd: &Path, extra_executor: &str, tools: &str) -> String {
    let model = if provider == "anthropic" { "claude-test" } else { "gpt-test" };
    format!(
        "name: tester\nprompt: You are terse.\nexecutor:\n  harness: agent\n  model: {model}\n  provider: {provider}\n  \
         auth: {{type: api_key, api_key: test-key, base_url: \"{base_url}\"}}\n{extra_executor}tools:\n{tools}os_env:\n  cwd: {}\n",
        cwd.display()
    )
}

const SHELL: &str = "  shell: {type: builtin}\n";

async fn server(db: &TestDb, work: &Path) -> ServerProcess {
    ServerProcess::start(&bin(), &omnigent_testkit::data_dir_in(work), &db.url, free_port(), &[]).await
}

/// Creates a session from YAML text through the API (the CLI path is tested separately).
async fn create_from_yaml(api: &Api, text: &str, dir: &Path) -> String {
    let path = dir.join(format!("s-{}.yaml", rand_suffix()));
    std::fs::write(&path, text).unwrap();
    let config = omnigent::config::SessionConfig::from_file(&path).unwrap();
    api.create(json!({"config": config.to_json()})).await
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn types(frames: &[omnigent_testkit::Frame]) -> Vec<String> {
    frames.iter().map(|f| f.event.clone().unwrap_or_default()).collect()
}

#[tokio::test]
async fn a_turn_calls_the_shell_tool_and_answers_on_every_wire_format_and_backend() {
    for db in databases().await {
        for provider in ["openai", "openai-responses", "anthropic"] {
            let work = workdir();
            let mock = MockLlm::start(vec![
                Reply::Tools { text: "Looking.".into(), calls: vec![("shell".into(), json!({"command": "ls"}))] },
                Reply::text("There is one marker file."),
            ])
            .await;
            let base = if provider == "anthropic" { mock.url.clone() } else { mock.openai_base() };
            let srv = server(&db, work.path()).await;
            let api = Api::new(srv.url.clone());
            let id = create_from_yaml(&api, &yaml(provider, &base, work.path(), "", SHELL), work.path()).await;
            let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
            sse.next().await.unwrap();
            api.message(&id, "what files are here?").await;
            let frames = sse.until("response.completed").await;
            let seen = types(&frames);
            let label = format!("{} / {provider}", db.label);
            // Omnigent's sequence (reference §2.4).
            let order = [
                "session.input.consumed",
                "session.status",
                "response.created",
                "response.in_progress",
                "response.output_text.delta",
                "response.output_item.done",
                "response.completed",
            ];
            let mut at = 0;
            for t in &seen {
                if at < order.len() && t == order[at] {
                    at += 1;
                }
            }
            assert_eq!(at, order.len(), "{label}: events out of order: {seen:?}");
            let items: Vec<Value> = frames
                .iter()
                .filter(|f| f.event.as_deref() == Some("response.output_item.done"))
                .map(|f| f.json()["item"].clone())
                .collect();
            let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
            assert_eq!(kinds, vec!["message", "function_call", "function_call_output", "message"], "{label}");
            assert_eq!(items[1]["name"], "shell");
            assert!(items[2]["output"].as_str().unwrap().contains("marker-7f3a.txt"), "{label}: {}", items[2]);
            assert_eq!(items[3]["content"][0]["text"], "There is one marker file.");
            let deltas: String = frames
                .iter()
                .filter(|f| f.event.as_deref() == Some("response.output_text.delta"))
                .map(|f| f.json()["delta"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(deltas, "Looking.There is one marker file.", "{label}");
            let completed = frames.last().unwrap().json();
            assert!(completed["response"]["usage"]["input_tokens"].as_u64().unwrap() > 0, "{label}: {completed}");
            let settle = sse.statuses_until_settled().await;
            assert_eq!(settle, vec!["idle"], "{label}");

            // The same transcript in /items, in order, flat.
            let (_, list) = api.get(&format!("/v1/sessions/{id}/items")).await;
            let stored: Vec<&str> =
                list["data"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
            assert_eq!(
                stored,
                vec!["message", "message", "function_call", "function_call_output", "message"],
                "{label}"
            );

            // What the vendor received: the system prompt, the tools, then the tool result in its wire format.
            let reqs = mock.requests();
            assert_eq!(reqs.len(), 2, "{label}");
            let second = &reqs[1].body;
            assert_eq!(second["stream"], true);
            if provider == "openai" {
                assert!(reqs[0].path.starts_with("/v1/chat/completions"));
                assert_eq!(reqs[0].headers["authorization"], "Bearer test-key");
                assert_eq!(second["messages"][0], json!({"role": "system", "content": "You are terse."}));
                assert_eq!(second["tools"][0]["function"]["name"], "shell");
                let tool_msg = second["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap();
                assert_eq!(tool_msg["tool_call_id"], "call_mock_0");
                assert!(tool_msg["content"].as_str().unwrap().contains("marker-7f3a.txt"));
            } else if provider == "openai-responses" {
                assert!(reqs[0].path.starts_with("/v1/responses"), "{}", reqs[0].path);
                assert_eq!(reqs[0].headers["authorization"], "Bearer test-key");
                assert_eq!(second["instructions"], "You are terse.");
                assert_eq!(second["tools"][0]["name"], "shell");
                let input = second["input"].as_array().unwrap();
                let call = input.iter().find(|i| i["type"] == "function_call").unwrap();
                assert_eq!((&call["name"], &call["call_id"]), (&json!("shell"), &json!("call_mock_0_0")));
                let output = input.iter().find(|i| i["type"] == "function_call_output").unwrap();
                assert_eq!(output["call_id"], "call_mock_0_0");
                assert!(output["output"].as_str().unwrap().contains("marker-7f3a.txt"));
            } else {
                assert!(reqs[0].path.starts_with("/v1/messages"));
                assert_eq!(reqs[0].headers["x-api-key"], "test-key");
                assert_eq!(second["system"], "You are terse.");
                assert_eq!(second["tools"][0]["input_schema"]["required"][0], "command");
                let last = second["messages"].as_array().unwrap().last().unwrap();
                assert_eq!(last["role"], "user");
                assert_eq!(last["content"][0]["type"], "tool_result");
                assert_eq!(last["content"][0]["tool_use_id"], "toolu_mock_0_0");
            }
        }
    }
}

// Multi-threaded: the CLI runs as a blocking child process while the mock vendor answers on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omnigent_run_prints_the_conversation_and_exits_by_outcome() {
    let work = workdir();
    let mock = MockLlm::start(vec![
        Reply::tool("shell", json!({"command": "ls"})),
        Reply::text("Found the marker."),
        Reply::Error(400, "model `gpt-test` does not exist".into()),
    ])
    .await;
    let file = work.path().join("session.yaml");
    std::fs::write(&file, yaml("openai", &mock.openai_base(), work.path(), "", SHELL)).unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = format!("http://127.0.0.1:{}", free_port());
    let run = |prompt: &str| {
        Command::new(bin())
            .args(["run", "-f"])
            .arg(&file)
            .args(["-p", prompt])
            .env("OMNIGENT_SERVER", &server)
            .env("OMNIGENT_DATA_DIR", data.path())
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let out = run("look around");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("→ shell({\"command\":\"ls\"})"), "{stdout}");
    assert!(stdout.contains("marker-7f3a.txt"), "{stdout}");
    assert!(stdout.contains("Found the marker."), "{stdout}");
    assert!(stderr.contains("session conv_"), "{stderr}");

    // A turn the vendor refuses fails: non-zero exit and the reason in plain words.
    let out = run("again");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("turn failed: llm_error") && stderr.contains("does not exist"), "{stderr}");
    let stop = Command::new(bin()).args(["server", "stop"]).env("OMNIGENT_DATA_DIR", data.path()).output().unwrap();
    assert!(stop.status.success());
}

#[tokio::test]
async fn a_bad_yaml_file_reports_file_line_column_and_starts_nothing() {
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let cases = [
        (
            "name: x\nexecutor:\n  harness: agent\n  modle: gpt\n",
            ":4:3: executor: unknown field `modle`, expected one of `harness`, `model`",
        ),
        ("name: x\nexecutor: [\n", ":2:11: executor: invalid type: sequence, expected struct Executor"),
        ("name: x\n  bad indent: [\n", ":2:"),
        (
            "name: x\nexecutor:\n  harness: agent\n  model: ${OMNIGENT_NOT_SET_ANYWHERE}\n",
            ":4:10: environment variable OMNIGENT_NOT_SET_ANYWHERE is not set",
        ),
        ("name: x\nexecutor:\n  harness: agent\n  provider: scripted\n", "needs executor.script"),
    ];
    let port = free_port();
    for (text, needle) in cases {
        let file = work.path().join("bad.yaml");
        std::fs::write(&file, text).unwrap();
        let out = Command::new(bin())
            .args(["run", "-f"])
            .arg(&file)
            .args(["-p", "hi"])
            .env("OMNIGENT_SERVER", format!("http://127.0.0.1:{port}"))
            .env("OMNIGENT_DATA_DIR", data.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{}{needle}", file.display()))
                || (needle.starts_with("needs") && stderr.contains(needle)),
            "{needle}: {stderr}"
        );
    }
    assert!(!data.path().join("server.pid").exists(), "nothing was started");
}

#[tokio::test]
async fn rate_limits_are_retried_and_a_vendor_outage_fails_the_turn_with_a_reason() {
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let mock = MockLlm::start(vec![Reply::RateLimited(0.2), Reply::text("ok after a retry")]).await;
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let id = create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), "", ""), work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "hi").await;
    let frames = sse.until("response.completed").await;
    let retry =
        frames.iter().find(|f| f.event.as_deref() == Some("response.retry")).expect("a response.retry event").json();
    assert_eq!(retry["attempt"], 1);
    assert_eq!(retry["error"]["code"], "rate_limited");
    assert!((retry["delay_seconds"].as_f64().unwrap() - 0.2).abs() < 0.01, "retry-after honoured: {retry}");
    assert_eq!(sse.statuses_until_settled().await, vec!["idle"]);

    // Every attempt fails: bounded retries, then `failed` with last_task_error.
    for _ in 0..omnigent::llm::MAX_ATTEMPTS {
        mock.push(Reply::Error(503, "overloaded".into()));
    }
    api.message(&id, "again").await;
    let statuses = sse.statuses_until_settled().await;
    assert_eq!(statuses, vec!["running", "failed"]);
    let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["last_task_error"]["code"], "llm_unavailable");
    assert!(snap["last_task_error"]["message"].as_str().unwrap().contains("503"), "{snap}");
    assert_eq!(mock.requests().len(), 2 + omnigent::llm::MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn interrupt_cancels_a_running_turn() {
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let slow = Reply::Slow { chunks: (0..100).map(|i| format!("w{i} ")).collect(), delay: Duration::from_millis(100) };
    let mock = MockLlm::start(vec![slow, Reply::text("fresh turn")]).await;
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let id = create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), "", ""), work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "write a lot").await;
    let started = sse.until("response.output_text.delta").await;
    let response_id =
        started.iter().find(|f| f.event.as_deref() == Some("response.created")).unwrap().json()["response"]["id"]
            .clone();
    let (_, running) = api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(running["status"], "running");
    assert_eq!(running["active_response_id"], response_id, "the snapshot names the turn in progress");
    let (status, ack) = api.post(&format!("/v1/sessions/{id}/events"), json!({"type": "interrupt"})).await;
    assert_eq!((status, ack), (202, json!({"queued": false})));
    let frames = sse.until("session.status").await;
    let seen = types(&frames);
    assert!(
        seen.contains(&"response.incomplete".to_string()) && seen.contains(&"session.interrupted".to_string()),
        "{seen:?}"
    );
    let incomplete = frames.iter().find(|f| f.event.as_deref() == Some("response.incomplete")).unwrap().json();
    assert_eq!(incomplete["response"]["incomplete_details"]["reason"], "user_interrupt");
    assert_eq!(frames.last().unwrap().json()["status"], "idle");
    // The session takes the next message normally.
    api.message(&id, "hello again").await;
    let frames = sse.until("response.completed").await;
    assert!(types(&frames).contains(&"response.output_text.delta".to_string()));
}

#[tokio::test]
async fn client_tools_wait_for_the_clients_output() {
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let mock =
        MockLlm::start(vec![Reply::tool("open_in_editor", json!({"path": "a.rs"})), Reply::text("Opened.")]).await;
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let tools = "  open_in_editor:\n    type: function\n    runtime: client\n    description: Open a file.\n    parameters: {type: object, properties: {path: {type: string}}}\n";
    let id = create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), "", tools), work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "open a.rs").await;
    let call = loop {
        let f = sse.next_event().await.unwrap();
        if f.event.as_deref() == Some("response.output_item.done") && f.json()["item"]["type"] == "function_call" {
            break f.json()["item"].clone();
        }
    };
    assert_eq!(call["status"], "action_required");
    let (status, _) = api
        .post(&format!("/v1/sessions/{id}/events"), json!({"type": "function_call_output", "data": {"call_id": call["call_id"], "output": "opened a.rs at line 1"}}))
        .await;
    assert_eq!(status, 202);
    let frames = sse.until("response.completed").await;
    let done_call = frames
        .iter()
        .find(|f| {
            f.event.as_deref() == Some("response.output_item.done") && f.json()["item"]["type"] == "function_call"
        })
        .unwrap();
    assert_eq!(done_call.json()["item"]["status"], "completed");
    let reqs = mock.requests();
    let tool_msg = reqs[1].body["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").cloned().unwrap();
    assert_eq!(tool_msg["content"], "opened a.rs at line 1");
}

#[tokio::test]
async fn hostile_harnesses_fail_their_own_turn_and_other_sessions_carry_on() {
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let hostile = format!("{}/hostile.wasm", omnigent_runtime::GUEST_DIR);
    let mock = MockLlm::start(vec![Reply::text("still here")]).await;
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let hostile_yaml = format!(
        "name: hostile\nexecutor:\n  harness: {hostile}\n  provider: scripted\n  script: [{{text: unused}}]\n  turn_timeout_s: 2\n  memory_mb: 64\n"
    );
    let mut bad = Vec::new();
    for ask in ["loop", "alloc", "trap"] {
        let id = create_from_yaml(&api, &hostile_yaml, work.path()).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
        sse.next().await.unwrap();
        api.message(&id, ask).await;
        bad.push((ask, id, sse));
    }
    // A normal session works while the hostile ones misbehave.
    let good = create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), "", ""), work.path()).await;
    let mut good_sse = Sse::open(&format!("{}/v1/sessions/{good}/stream", srv.url), &[]).await;
    good_sse.next().await.unwrap();
    api.message(&good, "are you there?").await;
    assert_eq!(good_sse.statuses_until_settled().await, vec!["running", "idle"]);
    for (ask, id, mut sse) in bad {
        assert_eq!(sse.statuses_until_settled().await, vec!["running", "failed"], "{ask}");
        let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
        let code = snap["last_task_error"]["code"].as_str().unwrap().to_string();
        let expected = match ask {
            "loop" => "harness_timeout",
            "alloc" => "harness_out_of_memory",
            _ => "harness_trap",
        };
        assert_eq!(code, expected, "{ask}: {}", snap["last_task_error"]);
    }
    assert_eq!(api.get("/health").await.0, 200, "the server is fine");

    // A harness may publish its own `harness.*` events, but not forge the host's.
    let id = create_from_yaml(&api, &hostile_yaml, work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream?extensions=true", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "emit").await;
    let frames = sse.until("response.completed").await;
    let custom = frames.iter().find(|f| f.event.as_deref() == Some("harness.progress")).expect("the custom event");
    assert_eq!(custom.json()["pct"], 50);
    assert!(custom.seq().is_some(), "persisted like every event");
    let statuses: Vec<_> = frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("session.status"))
        .map(|f| f.json()["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("running")], "no forged status");

    // A harness writes a file artifact: announced on the stream, listed and downloadable.
    api.message(&id, "file").await;
    let frames = sse.until("response.completed").await;
    let done = frames
        .iter()
        .find(|f| f.event.as_deref() == Some("response.output_file.done"))
        .expect("the artifact event")
        .json();
    assert_eq!(done["filename"], "report.txt");
    assert_eq!(done["content_type"], "text/plain");
    let fid = done["file_id"].as_str().unwrap();
    let content = omnigent_testkit::http()
        .get(format!("{}/v1/sessions/{id}/resources/files/{fid}/content", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(content.text().await.unwrap(), "the harness wrote this");
    let (_, list) = api.get(&format!("/v1/sessions/{id}/resources/files")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "the refused name stored nothing");
}

#[tokio::test]
async fn a_turn_that_cannot_be_resumed_after_a_restart_fails_with_a_reason_not_stuck_running() {
    // The turn runs a harness from a file; the file is gone when the server comes back, so the turn cannot be
    // replayed (resuming turns is tested in policies.rs).
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let harness = work.path().join("copy-of-agent.wasm");
    std::fs::write(&harness, omnigent_runtime::AGENT_HARNESS).unwrap();
    let slow = Reply::Slow { chunks: (0..200).map(|i| format!("w{i} ")).collect(), delay: Duration::from_millis(100) };
    let mock = MockLlm::start(vec![slow]).await;
    let mut srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let text = yaml("openai", &mock.openai_base(), work.path(), "", "")
        .replace("harness: agent", &format!("harness: {}", harness.display()));
    let id = create_from_yaml(&api, &text, work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "go").await;
    sse.until("response.output_text.delta").await;
    srv.kill9();
    std::fs::remove_file(&harness).unwrap();
    let srv = server(&db, work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream?after=0", srv.url), &[]).await;
    let failed = sse.until("response.failed").await.last().unwrap().json();
    assert_eq!(failed["source"], "harness", "{failed}");
    let (_, snap) = Api::new(srv.url.clone()).get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["status"], "failed");
    assert_eq!(snap["last_task_error"]["code"], "harness_not_found", "{snap}");
    assert_eq!(snap["active_response_id"], Value::Null);
}

// Multi-threaded: the CLI runs as a blocking child process while the mock vendor answers on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_start_and_interactive_mode_work_without_a_yaml_file() {
    let mock = MockLlm::start(vec![Reply::text("first answer"), Reply::text("second answer")]).await;
    let data = tempfile::tempdir().unwrap();
    let server = format!("http://127.0.0.1:{}", free_port());
    // The README's quick start: `omnigent auth set openai`, then `omnigent run agent --model M`, fed two lines on
    // stdin, then end of input (Ctrl-D). The key is stored before any server runs.
    let set = Command::new(bin())
        .args(["auth", "set", "openai", "--from-env", "OPENAI_API_KEY", "--base-url", &mock.openai_base()])
        .env("OMNIGENT_DATA_DIR", data.path())
        .env("OPENAI_API_KEY", "quick-key")
        .output()
        .unwrap();
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let mut child = Command::new(bin())
        .args(["run", "agent", "--model", "gpt-quick"])
        .env("OMNIGENT_SERVER", &server)
        .env("OMNIGENT_DATA_DIR", data.path())
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("DATABASE_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"hello\nand again\n").unwrap();
    }
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("first answer") && stdout.contains("second answer"), "{stdout}");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body["model"], "gpt-quick");
    assert_eq!(reqs[0].headers["authorization"], "Bearer quick-key");
    // The second turn carries the first exchange.
    let roles: Vec<&str> =
        reqs[1].body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, vec!["user", "assistant", "user"]);
    Command::new(bin()).args(["server", "stop"]).env("OMNIGENT_DATA_DIR", data.path()).output().unwrap();
}

#[tokio::test]
async fn a_stream_cut_short_is_retried_and_its_partial_text_keeps_its_own_message_id() {
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    for provider in ["openai", "anthropic"] {
        let mock = MockLlm::start(vec![Reply::Cut("Partial answ".into()), Reply::text("Full answer.")]).await;
        let base = if provider == "openai" { mock.openai_base() } else { mock.url.clone() };
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let id = create_from_yaml(&api, &yaml(provider, &base, work.path(), "", ""), work.path()).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
        sse.next().await.unwrap();
        api.message(&id, "answer").await;
        let frames = sse.until("response.completed").await;
        let mut by_message: Vec<(String, String)> = Vec::new();
        for f in frames.iter().filter(|f| f.event.as_deref() == Some("response.output_text.delta")) {
            let d = f.json();
            let mid = d["message_id"].as_str().unwrap().to_string();
            match by_message.last_mut() {
                Some((m, text)) if *m == mid => text.push_str(d["delta"].as_str().unwrap()),
                _ => by_message.push((mid, d["delta"].as_str().unwrap().to_string())),
            }
        }
        assert_eq!(by_message.len(), 2, "{provider}: {by_message:?}");
        assert_eq!(by_message[0].1, "Partial answ");
        assert_eq!(by_message[1].1, "Full answer.");
        let retry = frames.iter().find(|f| f.event.as_deref() == Some("response.retry")).expect("a retry").json();
        assert_eq!(retry["error"]["code"], "llm_unavailable", "{provider}");
        let item =
            frames.iter().rev().find(|f| f.event.as_deref() == Some("response.output_item.done")).unwrap().json();
        assert_eq!(item["item"]["id"].as_str().unwrap(), by_message[1].0, "the final message is the retried one");
        assert_eq!(item["item"]["content"][0]["text"], "Full answer.");
    }
}

// Multi-threaded: the CLI runs as a blocking child process while the mock vendor answers on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forks_copy_history_whole_or_through_a_response_and_stay_independent() {
    for db in databases().await {
        let work = workdir();
        let mock = MockLlm::start(vec![Reply::text("Answer one."), Reply::text("Answer two.")]).await;
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let source =
            create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), "", ""), work.path()).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{source}/stream", srv.url), &[]).await;
        sse.next().await.unwrap();
        let mut responses = Vec::new();
        for q in ["first", "second"] {
            api.message(&source, q).await;
            let done = sse.until("response.completed").await;
            responses.push(done.last().unwrap().json()["response"]["id"].as_str().unwrap().to_string());
            sse.statuses_until_settled().await;
        }
        let texts = |snap: &Value| -> Vec<String> {
            snap["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["data"]["content"][0]["text"].as_str().unwrap_or("").to_string())
                .collect()
        };
        let (_, src_snap) = api.get(&format!("/v1/sessions/{source}")).await;
        let label = db.label;
        // The snapshot folds usage across turns (the mock reports 11 + 7 tokens per call) and has no active turn.
        assert_eq!(
            src_snap["usage_by_model"]["gpt-test"]["total_tokens"], 36,
            "{label}: {}",
            src_snap["usage_by_model"]
        );
        assert_eq!(src_snap["active_response_id"], Value::Null);

        // Whole history.
        let (status, whole) = api.post(&format!("/v1/sessions/{source}/fork"), json!({})).await;
        assert_eq!(status, 201, "{label}: {whole}");
        assert_ne!(whole["id"], src_snap["id"]);
        assert_eq!(whole["status"], "idle");
        assert_eq!(texts(&whole), texts(&src_snap), "{label}");
        assert_eq!(whole["title"], format!("Fork of {source}"));
        // Through the first response only.
        let (status, early) = api
            .post(
                &format!("/v1/sessions/{source}/fork"),
                json!({"title": "try again", "up_to_response_id": responses[0]}),
            )
            .await;
        assert_eq!(status, 201, "{early}");
        assert_eq!(texts(&early), vec!["first", "Answer one."], "{label}");
        assert_eq!(early["title"], "try again");
        assert_eq!(early["llm_model"], "gpt-test", "the fork has the source's config");

        // Continue the early fork from the terminal: its model sees only the copied history.
        mock.push(Reply::text("Answer three."));
        let early_id = early["id"].as_str().unwrap().to_string();
        let out = Command::new(bin())
            .args(["run", "--fork", &early_id, "-p", "third"])
            .env("OMNIGENT_SERVER", &srv.url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Answer three."));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("forked {early_id} → session conv_")));
        let last = mock.requests().last().unwrap().body.clone();
        let contents: Vec<&str> =
            last["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
        assert_eq!(contents, vec!["You are terse.", "first", "Answer one.", "third"], "{label}");

        // Writing to a fork changes neither the source nor the other fork, and the reverse.
        mock.push(Reply::text("Answer four."));
        let whole_id = whole["id"].as_str().unwrap().to_string();
        let mut wsse = Sse::open(&format!("{}/v1/sessions/{whole_id}/stream", srv.url), &[]).await;
        wsse.next().await.unwrap();
        api.message(&whole_id, "fourth").await;
        assert_eq!(wsse.statuses_until_settled().await, vec!["running", "idle"]);
        let (_, src_after) = api.get(&format!("/v1/sessions/{source}")).await;
        assert_eq!(texts(&src_after), texts(&src_snap), "{label}: the source is untouched");
        let (_, early_after) = api.get(&format!("/v1/sessions/{early_id}")).await;
        assert_eq!(texts(&early_after), vec!["first", "Answer one."], "{label}");
        api.call(reqwest::Method::DELETE, &format!("/v1/sessions/{source}"), None).await;
        let (status, whole_after) = api.get(&format!("/v1/sessions/{whole_id}")).await;
        assert_eq!(status, 200);
        assert_eq!(texts(&whole_after).len(), 6, "{label}: deleting the source leaves the fork");

        // Bad forks are refused with a reason.
        let (status, err) =
            api.post(&format!("/v1/sessions/{whole_id}/fork"), json!({"up_to_response_id": "resp_nope"})).await;
        assert_eq!(status, 400);
        assert!(err["error"]["message"].as_str().unwrap().contains("has no response 'resp_nope'"), "{err}");
        let (status, _) = api.post(&format!("/v1/sessions/{source}/fork"), json!({})).await;
        assert_eq!(status, 404);
        let (status, err) = api.post(&format!("/v1/sessions/{whole_id}/fork"), json!({"titel": "x"})).await;
        assert_eq!(status, 400);
        assert!(err["error"]["message"].as_str().unwrap().contains("unknown field `titel`"), "{err}");
    }
}

/// Reads a child's stdout lines until one contains `needle` (or fails after the kit's wait).
async fn read_until(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    needle: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(omnigent_testkit::WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(found, Ok(true)), "never saw '{needle}' in: {seen:?}");
    seen
}

#[tokio::test]
async fn attach_co_drives_a_live_session_and_fails_loudly_when_there_is_nothing_to_join() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let mock = MockLlm::start(vec![Reply::text("Reply to the teammate."), Reply::text("Reply to the attacher.")]).await;
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let id = create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), "", ""), work.path()).await;
    let data = tempfile::tempdir().unwrap();
    let mut child = omnigent_testkit::cli(&bin(), &srv.url, data.path()).args(["attach", &id]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut errs = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    // Wait until attach is live (it says so on stderr) before driving the session from elsewhere.
    tokio::time::timeout(omnigent_testkit::WAIT, async {
        while let Ok(Some(line)) = errs.next_line().await {
            if line.starts_with("live:") {
                break;
            }
        }
    })
    .await
    .unwrap();
    // A teammate drives the session through the API; the attached terminal sees it all.
    api.message(&id, "from the teammate").await;
    read_until(&mut lines, "user: from the teammate").await;
    read_until(&mut lines, "Reply to the teammate.").await;
    // What the attached user types goes to the same session.
    stdin.write_all(b"from the attacher\n").await.unwrap();
    read_until(&mut lines, "Reply to the attacher.").await;
    drop(stdin); // Ctrl-D
    let status = tokio::time::timeout(omnigent_testkit::WAIT, child.wait()).await.unwrap().unwrap();
    assert!(status.success());
    let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["items"].as_array().unwrap().len(), 4);

    // Nothing to join: one clear line, non-zero, and never a server of its own.
    let out = Command::new(bin())
        .args(["attach", "conv_00000000000000000000000000000000"])
        .env("OMNIGENT_SERVER", &srv.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no session conv_00000000000000000000000000000000"), "{stderr}");
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(bin())
        .args(["attach", &id])
        .env("OMNIGENT_SERVER", &nowhere)
        .env("OMNIGENT_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no omnigent server answers"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data.path().join("server.pid").exists(), "attach started nothing");
}

// Multi-threaded: the CLI runs as a blocking child process while the mock vendor answers on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_reopens_a_stored_session_after_a_restart() {
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let mock = MockLlm::start(vec![Reply::text("Before the restart."), Reply::text("After the restart.")]).await;
    let data = tempfile::tempdir().unwrap();
    let mut srv = ServerProcess::start(&bin(), data.path(), &db.url, free_port(), &[]).await;
    let api = Api::new(srv.url.clone());
    let id = create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), "", ""), work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "hello").await;
    sse.statuses_until_settled().await;
    assert!(srv.terminate().success());

    // `omnigent run -r` starts a server on the same data (none runs now) and continues the conversation.
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = Command::new(bin())
        .args(["run", "-r", &id, "-p", "still there?"])
        .env("OMNIGENT_SERVER", &url)
        .env("OMNIGENT_DATA_DIR", data.path())
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("assistant: Before the restart."), "history first: {stdout}");
    assert!(stdout.contains("After the restart."), "{stdout}");
    let roles: Vec<String> = mock.requests()[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, vec!["system", "user", "assistant", "user"]);
    Command::new(bin()).args(["server", "stop"]).env("OMNIGENT_DATA_DIR", data.path()).output().unwrap();
}

#[tokio::test]
async fn sub_agents_run_as_child_sessions_in_parallel_and_report_back_exactly_once() {
    for db in databases().await {
        let work = workdir();
        let mock = MockLlm::start(vec![
            Reply::Tools {
                text: String::new(),
                calls: vec![("alpha".into(), json!({"task": "task A"})), ("beta".into(), json!({"task": "task B"}))],
            },
            Reply::text("Both done."),
            Reply::tool("broken", json!({"task": "task C"})),
            Reply::text("The broken one failed."),
        ])
        .await;
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let child = |name: &str, harness: &str| {
            format!(
                "  {name}:\n    type: agent\n    description: The {name} worker.\n    prompt: You are {name}.\n    executor:\n      harness: {harness}\n      provider: scripted\n      script: [{{text: \"{name} says: done\"}}]\n"
            )
        };
        let tools = format!(
            "{}{}{}",
            child("alpha", "agent"),
            child("beta", "agent"),
            child("broken", "/nonexistent/broken.wasm")
        );
        let id =
            create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), "", &tools), work.path()).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
        sse.next().await.unwrap();
        api.message(&id, "delegate").await;
        let frames = sse.until("response.completed").await;
        let label = db.label;
        let created: Vec<String> = frames
            .iter()
            .filter(|f| f.event.as_deref() == Some("session.created"))
            .map(|f| f.json()["child_session_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(created.len(), 2, "{label}");
        for child_id in &created {
            let settled = frames.iter().any(|f| {
                f.event.as_deref() == Some("session.child_session.updated")
                    && f.json()["child_session_id"] == child_id.as_str()
                    && f.json()["child"]["current_task_status"] == "completed"
                    && f.json()["child"]["busy"] == false
            });
            assert!(settled, "{label}: the parent saw {child_id} finish");
        }
        let outputs: Vec<String> = frames
            .iter()
            .filter(|f| {
                f.event.as_deref() == Some("response.output_item.done")
                    && f.json()["item"]["type"] == "function_call_output"
            })
            .map(|f| f.json()["item"]["output"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(outputs, vec!["alpha says: done", "beta says: done"], "{label}: each result once");
        let tool_msgs: Vec<String> = mock.requests()[1].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(tool_msgs, outputs, "{label}");

        let (_, children) = api.get(&format!("/v1/sessions/{id}/child_sessions")).await;
        let rows = children["data"].as_array().unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|c| c["kind"] == "sub_agent" && c["parent_session_id"] == id.as_str()), "{children}");
        // The user's list shows the parent only, as Omnigent's does; `kind=any` shows the children too.
        let (_, listed) = api.get("/v1/sessions").await;
        let ids: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [id.as_str()], "{label}");
        let (_, all) = api.get("/v1/sessions?kind=any").await;
        assert_eq!(all["data"].as_array().unwrap().len(), 3, "{label}");
        let (_, child) = api.get(&format!("/v1/sessions/{}", created[0])).await;
        assert_eq!(child["parent_session_id"], id.as_str());
        assert_eq!(child["kind"], "sub_agent");
        let texts: Vec<&str> = child["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["data"]["content"][0]["text"].as_str().unwrap())
            .collect();
        assert!(texts[0].starts_with("task ") && texts[1].ends_with("says: done"), "{texts:?}");
        sse.statuses_until_settled().await;

        // A child that fails reports the failure to the parent's model; the parent carries on.
        api.message(&id, "delegate again").await;
        let frames = sse.until("response.completed").await;
        let output = frames
            .iter()
            .find(|f| {
                f.event.as_deref() == Some("response.output_item.done")
                    && f.json()["item"]["type"] == "function_call_output"
            })
            .unwrap()
            .json();
        assert!(output["item"]["output"].as_str().unwrap().contains("failed: harness_not_found"), "{label}: {output}");
        assert_eq!(sse.statuses_until_settled().await, vec!["idle"]);
        let (_, children) = api.get(&format!("/v1/sessions/{id}/child_sessions")).await;
        assert_eq!(children["data"][0]["current_task_status"], "failed");
    }
}

#[tokio::test]
async fn a_model_override_and_a_reasoning_effort_reach_the_next_turns_model_calls() {
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let mock = MockLlm::start(vec![Reply::text("one"), Reply::text("two")]).await;
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let id = create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), "", ""), work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "first").await;
    sse.until("response.completed").await;
    let body = json!({"model_override": "gpt-override", "reasoning_effort": "low"});
    let (status, snap) = api.call(reqwest::Method::PATCH, &format!("/v1/sessions/{id}"), Some(body)).await;
    assert_eq!(status, 200, "{snap}");
    api.message(&id, "second").await;
    let frames = sse.until("response.completed").await;
    // As Omnigent: the response's `model` is the agent's name (the LLM in `llm_model`), and a completed response
    // carries its output items.
    let completed = frames.last().unwrap().json();
    let response = &completed["response"];
    assert_eq!((&response["model"], &response["llm_model"]), (&json!("tester"), &json!("gpt-override")), "{completed}");
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.len(), 1, "{completed}");
    assert_eq!(output[0]["content"][0]["text"], "two");
    assert_eq!((&output[0]["model"], &output[0]["llm_model"]), (&json!("tester"), &json!("gpt-override")));
    let reqs = mock.requests();
    assert_eq!((&reqs[0].body["model"], &reqs[0].body["reasoning_effort"]), (&json!("gpt-test"), &Value::Null));
    assert_eq!((&reqs[1].body["model"], &reqs[1].body["reasoning_effort"]), (&json!("gpt-override"), &json!("low")));
}

#[tokio::test]
async fn an_imported_transcript_becomes_the_history_without_a_turn_and_the_model_reads_it() {
    for db in databases().await {
        let work = workdir();
        let mock = MockLlm::start(vec![Reply::text("6")]).await;
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let path = work.path().join("import.yaml");
        std::fs::write(&path, yaml("openai", &mock.openai_base(), work.path(), "", SHELL)).unwrap();
        let config = omnigent::config::SessionConfig::from_file(&path).unwrap().to_json();
        // As `omnigent session import` sends an export: ids, times and `model` of the old server included.
        let history = json!([
            {"type": "message", "data": {"role": "user", "content": [{"type": "input_text", "text": "What is 2+2?"}]}},
            {"type": "message", "data": {"id": "msg_old", "role": "assistant", "model": "helper",
                "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]}},
            {"type": "function_call", "data": {"call_id": "call_1", "name": "shell", "arguments": "{\"command\":\"echo 4\"}"}},
            {"type": "function_call_output", "data": {"call_id": "call_1", "output": "4"}},
            {"type": "message", "data": {"role": "assistant", "content": "It is 4."}},
        ]);
        let (status, created) = api
            .post("/v1/sessions", json!({"config": config, "initial_items": history, "host_type": "external"}))
            .await;
        assert_eq!(status, 201, "{}: {created}", db.label);
        assert_eq!(created["status"], "idle", "no turn ran");
        let items = created["items"].as_array().unwrap();
        assert_eq!(items.len(), 5, "{created}");
        assert!(items.iter().all(|i| i["created_by"] == "import" && i["id"] != "msg_old"), "{created}");
        assert!(mock.requests().is_empty(), "the import called no model");
        // The next message continues that conversation.
        let id = created["id"].as_str().unwrap();
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
        sse.next().await.unwrap();
        api.message(id, "and 3+3?").await;
        sse.until("response.completed").await;
        let roles: Vec<String> = mock.requests()[0].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant", "user"], "{}", db.label);
        // A malformed history is refused whole: no session is left behind.
        let (_, before) = api.get("/v1/sessions?kind=any").await;
        let bad = json!([{"type": "message", "data": {"role": "assistant", "content": "hi"}},
            {"type": "function_call", "data": {"name": "shell"}}]);
        let (status, err) = api.post("/v1/sessions", json!({"config": config, "initial_items": bad})).await;
        assert_eq!(status, 400);
        assert!(err["error"]["message"].as_str().unwrap().contains("initial_items[1]"), "{err}");
        let (_, after) = api.get("/v1/sessions?kind=any").await;
        assert_eq!(before["data"].as_array().unwrap().len(), after["data"].as_array().unwrap().len());
    }
}

#[tokio::test]
async fn usage_reports_what_turns_cost_per_day_and_per_session_and_a_fork_adds_nothing() {
    for db in databases().await {
        let work = workdir();
        let mock = MockLlm::start(vec![Reply::text("one"), Reply::text("two")]).await;
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        // A price of a dollar a token makes the cost the token count.
        let pricing = "  pricing: {input_usd_per_mtok: 1000000, output_usd_per_mtok: 1000000}\n";
        let id =
            create_from_yaml(&api, &yaml("openai", &mock.openai_base(), work.path(), pricing, ""), work.path()).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
        sse.next().await.unwrap();
        for text in ["first", "second"] {
            api.message(&id, text).await;
            sse.until("response.completed").await;
        }
        let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
        let spent: f64 =
            snap["usage_by_model"].as_object().unwrap().values().map(|m| m["total_cost_usd"].as_f64().unwrap()).sum();
        assert!(spent > 0.0, "{snap}");
        // A fork copies the log (and its usage), not the spend.
        let (status, _) = api.post(&format!("/v1/sessions/{id}/fork"), json!({})).await;
        assert_eq!(status, 201);
        let (status, report) = api.get("/v1/usage").await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["object"], "usage_report");
        for key in ["cost_today", "cost_last_7d", "cost_last_30d", "total_cost_usd"] {
            assert_eq!(report[key].as_f64(), Some(spent), "{}: {key}: {report}", db.label);
        }
        assert_eq!(report["daily_costs"].as_array().unwrap().len(), 1, "{report}");
        let line = report["sessions"].as_array().unwrap().iter().find(|s| s["id"] == id.as_str()).unwrap().clone();
        assert_eq!(line["cost_usd"].as_f64(), Some(spent), "{line}");
        assert_eq!(
            (&line["harness"], &line["llm_model"], &line["agent_name"]),
            (&json!("agent"), &json!("gpt-test"), &json!("tester"))
        );
        // Kept across a restart.
        drop(srv);
        let srv = server(&db, work.path()).await;
        let (_, again) = Api::new(srv.url.clone()).get("/v1/usage").await;
        assert_eq!(again["total_cost_usd"].as_f64(), Some(spent));
    }
}

/// A session that keeps one exchange when it compacts, after two exchanges (about alpha, then beta); its stream.
async fn two_exchanges_to_compact(
    srv: &ServerProcess,
    api: &Api,
    mock: &MockLlm,
    work: &Path,
    label: &str,
) -> (String, Sse) {
    let text = yaml("openai", &mock.openai_base(), work, "", SHELL) + "compaction: {recent_window: 1}\n";
    let id = create_from_yaml(api, &text, work).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    for question in ["first question about alpha", "second question about beta"] {
        api.message(&id, question).await;
        assert_eq!(sse.statuses_until_settled().await, vec!["running", "idle"], "{label}");
    }
    (id, sse)
}

/// `compact` summarizes the older conversation with the session's model into a `compaction` item; the next turns'
/// model calls read the summary and the newest exchange instead of everything, while the transcript keeps it all.
/// Automatically too, when the conversation fills the configured share of the context window.
#[tokio::test]
async fn compaction_summarizes_the_older_conversation_on_request_and_when_the_context_fills() {
    for db in databases().await {
        let work = workdir();
        let mock = MockLlm::start(vec![
            Reply::text("Answer one."),
            Reply::text("Answer two."),
            Reply::text("SUMMARY: the user asked about alpha."),
            Reply::text("Answer three."),
        ])
        .await;
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let (id, mut sse) = two_exchanges_to_compact(&srv, &api, &mock, work.path(), db.label).await;
        // Asked for: a turn that only compacts.
        let (status, ack) = api.post(&format!("/v1/sessions/{id}/events"), json!({"type": "compact"})).await;
        assert_eq!(status, 202, "{}: {ack}", db.label);
        let frames = sse.until("response.completed").await;
        let seen = types(&frames);
        assert!(seen.contains(&"response.compaction.in_progress".to_string()), "{}: {seen:?}", db.label);
        let done = frames.iter().find(|f| f.event.as_deref() == Some("response.compaction.completed")).unwrap().json();
        assert_eq!(done["summary"], "SUMMARY: the user asked about alpha.");
        assert_eq!(done["compacted_messages"], 2, "the first exchange: {done}");
        assert_eq!(sse.statuses_until_settled().await, vec!["idle"], "{}", db.label);
        let reqs = mock.requests();
        assert_eq!(reqs.len(), 3, "{}: one summary call, no harness run", db.label);
        let summary_call = reqs[2].body.to_string();
        assert!(summary_call.contains("first question about alpha") && !summary_call.contains("second question"));
        assert!(reqs[2].body.get("tools").is_none_or(|t| t.as_array().is_some_and(|t| t.is_empty())));
        // The next turn's model reads the summary and the newest exchange, not the first one.
        api.message(&id, "third question about gamma").await;
        assert_eq!(sse.statuses_until_settled().await, vec!["running", "idle"], "{}", db.label);
        let reqs = mock.requests();
        let next = reqs[3].body["messages"].to_string();
        assert!(next.contains("SUMMARY: the user asked about alpha."), "{}: {next}", db.label);
        assert!(next.contains("second question about beta") && next.contains("third question about gamma"));
        assert!(!next.contains("first question about alpha"), "{}: {next}", db.label);
        // The transcript keeps everything, the request and the compaction as items of their own.
        let (_, list) = api.get(&format!("/v1/sessions/{id}/items")).await;
        let kinds: Vec<&str> = list["data"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            vec!["message", "message", "message", "message", "compaction_request", "compaction", "message", "message"],
            "{}",
            db.label
        );

        // Automatically: a tiny context window fills on the second turn, which compacts before its model call.
        let mock =
            MockLlm::start(vec![Reply::text("Answer one."), Reply::text("AUTO SUMMARY."), Reply::text("Answer two.")])
                .await;
        let text = yaml("openai", &mock.openai_base(), work.path(), "  context_window: 40\n", SHELL)
            + "compaction: {trigger_threshold: 0.5, recent_window: 1}\n";
        let id = create_from_yaml(&api, &text, work.path()).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
        sse.next().await.unwrap();
        api.message(&id, "a first question that is long enough to fill a forty-token window by itself").await;
        assert_eq!(sse.statuses_until_settled().await, vec!["running", "idle"], "{}", db.label);
        api.message(&id, "and a second one").await;
        assert_eq!(sse.statuses_until_settled().await, vec!["running", "idle"], "{}", db.label);
        let reqs = mock.requests();
        assert_eq!(reqs.len(), 3, "{}: the turn, then a summary and the turn", db.label);
        assert!(reqs[1].body.to_string().contains("a first question that is long enough"));
        let last = reqs[2].body["messages"].to_string();
        assert!(last.contains("AUTO SUMMARY.") && last.contains("and a second one"), "{}: {last}", db.label);
        assert!(!last.contains("a first question that is long enough"), "{}: {last}", db.label);
        // Nothing older than the kept exchange now: said plainly, the session stays usable.
        let (status, _) = api.post(&format!("/v1/sessions/{id}/events"), json!({"type": "compact"})).await;
        assert_eq!(status, 202);
        let frames = sse.until("response.completed").await;
        let error = frames.iter().find(|f| f.event.as_deref() == Some("response.error")).unwrap().json();
        assert_eq!(error["error"]["code"], "nothing_to_compact", "{}: {error}", db.label);
        assert_eq!(sse.statuses_until_settled().await, vec!["idle"], "{}", db.label);
        assert_eq!(mock.requests().len(), 3, "{}: no model call for it", db.label);
    }
}

/// A server killed while a compaction's summary streams: after the restart the compaction turn finishes once —
/// one request item, one compaction item, the conversation whole — and the next turn reads the summary.
#[tokio::test]
async fn a_compaction_cut_by_sigkill_finishes_once_after_the_restart() {
    for db in databases().await {
        let work = workdir();
        let slow =
            Reply::Slow { chunks: (0..200).map(|i| format!("s{i} ")).collect(), delay: Duration::from_millis(50) };
        let mock = MockLlm::start(vec![
            Reply::text("Answer one."),
            Reply::text("Answer two."),
            slow,
            Reply::text("SUMMARY AFTER THE RESTART."),
            Reply::text("Answer three."),
        ])
        .await;
        let mut srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let (id, mut sse) = two_exchanges_to_compact(&srv, &api, &mock, work.path(), db.label).await;
        let (status, _) = api.post(&format!("/v1/sessions/{id}/events"), json!({"type": "compact"})).await;
        assert_eq!(status, 202);
        sse.until("response.compaction.in_progress").await;
        // The summary call is on the wire (10 s of slow chunks) when the server dies.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while mock.requests().len() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "{}: the summary call never came", db.label);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        srv.kill9();

        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream?after=0", srv.url), &[]).await;
        sse.until("response.compaction.completed").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let snap = loop {
            let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
            if snap["status"] != "running" {
                break snap;
            }
            assert!(tokio::time::Instant::now() < deadline, "{}: the resumed compaction never ended", db.label);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The whole log, once: every event up to the newest.
        let last = snap["last_seq"].as_i64().unwrap().to_string();
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream?after=0", srv.url), &[]).await;
        let mut frames = Vec::new();
        while let Some(frame) = sse.next().await {
            let end = frame.id.as_deref() == Some(last.as_str());
            frames.push(frame);
            if end {
                break;
            }
        }
        let done: Vec<Value> = frames
            .iter()
            .filter(|f| f.event.as_deref() == Some("response.compaction.completed"))
            .map(|f| f.json())
            .collect();
        assert_eq!(done.len(), 1, "{}: {done:?}", db.label);
        assert_eq!(done[0]["summary"], "SUMMARY AFTER THE RESTART.", "{}", db.label);
        assert_eq!(snap["status"], "idle", "{}: {snap}", db.label);
        let (_, list) = api.get(&format!("/v1/sessions/{id}/items")).await;
        let kinds: Vec<&str> = list["data"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            vec!["message", "message", "message", "message", "compaction_request", "compaction"],
            "{}: nothing lost, nothing doubled",
            db.label
        );
        // The cut summary call was made again (its answer never arrived), and only that one.
        assert_eq!(mock.requests().len(), 4, "{}", db.label);
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
        sse.next().await.unwrap();
        api.message(&id, "third question about gamma").await;
        assert_eq!(sse.statuses_until_settled().await, vec!["running", "idle"], "{}", db.label);
        let next = mock.requests()[4].body["messages"].to_string();
        assert!(next.contains("SUMMARY AFTER THE RESTART.") && !next.contains("first question about alpha"), "{next}");
    }
}

#[tokio::test]
async fn skills_are_listed_in_the_instructions_and_loaded_on_demand() {
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let skill_dir = work.path().join("skills/code-review");
    std::fs::create_dir_all(&skill_dir).unwrap();
    std::fs::write(
        skill_dir.join("SKILL.md"),
        "---\nname: code-review\ndescription: How this team reviews a change.\n---\nREVIEW BODY: read the diff twice.\n",
    )
    .unwrap();
    std::fs::create_dir_all(skill_dir.join("references")).unwrap();
    std::fs::write(skill_dir.join("references/style.md"), "STYLE: short names.").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("SKILL.md"), "---\nname: leak\ndescription: d\n---\nSECRET\n").unwrap();
    std::os::unix::fs::symlink(outside.path().join("SKILL.md"), skill_dir.join("escape.md")).unwrap();
    let read = |name: &str, path: &str| ("read_skill_file".to_string(), json!({"skill_name": name, "path": path}));
    let calls = vec![
        ("load_skill".into(), json!({"name": "code-review"})),
        read("code-review", "references/style.md"),
        read("code-review", "../../SKILL.md"),
        read("code-review", "escape.md"),
        read("sql_style", "x.md"),
    ];
    let mock =
        MockLlm::start(vec![Reply::Tools { text: String::new(), calls }, Reply::text("Reviewed as the skill says.")])
            .await;
    let skills = format!(
        "  review: {{type: skill, path: skills/code-review}}\n  sql_style: {{type: skill, description: House SQL \
         style., content: \"Uppercase keywords.\"}}\n  leaky: {{type: skill, path: {}}}\n  hidden: {{type: skill, \
         content: \"---\\nname: not-offered\\ndescription: filtered out\\n---\\nx\"}}\n",
        outside.path().display()
    );
    let text = yaml("openai", &mock.openai_base(), work.path(), "", &skills) + "skills: [review, sql_style, leaky]\n";
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let id = create_from_yaml(&api, &text, work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "review my change").await;
    let frames = sse.until("response.completed").await;
    let reqs = mock.requests();
    // The model reads each offered skill's name and description, and has one tool to load them.
    let system = reqs[0].body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.starts_with("You are terse."), "{system}");
    assert!(system.contains("- code-review: How this team reviews a change."), "{system}");
    assert!(system.contains("- sql_style: House SQL style."), "{system}");
    assert!(!system.contains("not-offered") && !system.contains("leak"), "{system}");
    let tools: Vec<&str> =
        reqs[0].body["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(tools, ["load_skill", "read_skill_file"], "skills are not tools of their own");
    // The body arrives when the model asks for it; so do the files in its folder, and only those.
    let frames_json: Vec<Value> = frames.iter().map(|f| f.json()).collect();
    let out = omnigent_testkit::tool_outputs(&frames_json);
    assert_eq!(out[0], "REVIEW BODY: read the diff twice.");
    assert_eq!(out[1], "STYLE: short names.");
    assert!(out[2].contains("must be a relative path inside"), "{}", out[2]);
    assert!(out[3].contains("outside"), "{}", out[3]);
    assert!(out[4].contains("no folder"), "{}", out[4]);
    // A skill outside what the session's tools may read is left out, and said.
    let error = frames.iter().find(|f| f.event.as_deref() == Some("response.error")).unwrap().json();
    assert_eq!(error["error"]["code"], "skill_unavailable", "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("leaky"), "{error}");
    assert!(!reqs[1].body.to_string().contains("SECRET"));
}

#[tokio::test]
async fn a_reasoning_models_summary_streams_and_stays_in_the_transcript() {
    let db = omnigent_testkit::sqlite_db();
    let work = workdir();
    let summary = vec!["Weighing the ".to_string(), "options.".to_string()];
    let mock = MockLlm::start(vec![Reply::Reasoned { summary, text: "Option B.".into() }]).await;
    // A reasoning model on the Responses wire asks for a summary of its reasoning. (A tool, because the mock takes
    // tool-less Responses calls for the CLIs' title requests.)
    let text = yaml("openai-responses", &mock.openai_base(), work.path(), "", SHELL).replace("gpt-test", "o3-pro");
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let id = create_from_yaml(&api, &text, work.path()).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "A or B?").await;
    let frames = sse.until("response.completed").await;
    assert_eq!(mock.requests()[0].body["reasoning"]["summary"], "auto");
    let seen = types(&frames);
    let started = seen.iter().position(|t| t == "response.reasoning.started").expect("reasoning started");
    let first_text = seen.iter().position(|t| t == "response.output_text.delta").unwrap();
    assert!(started < first_text, "the summary streams before the answer: {seen:?}");
    let summary: String = frames
        .iter()
        .filter(|f| f.event.as_deref() == Some("response.reasoning_summary_text.delta"))
        .map(|f| f.json()["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(summary, "Weighing the options.");
    // The transcript keeps it as a reasoning item before the answer.
    let (_, list) = api.get(&format!("/v1/sessions/{id}/items")).await;
    let items = list["data"].as_array().unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["message", "reasoning", "message"]);
    assert_eq!(items[1]["summary"][0]["text"], "Weighing the options.");
}
