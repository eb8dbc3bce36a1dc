//! End-to-end through the real `omnigent` binary: the CLI, background servers, restarts and SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use omnigent_testkit::{Api, ServerProcess, Sse, databases, free_port};
use serde_json::{Value, json};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnigent"))
}

/// Runs the CLI with a private data dir and server address.
fn omnigent(data_dir: &Path, server: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("OMNIGENT_DATA_DIR", data_dir)
        .env("OMNIGENT_SERVER", server)
        .env_remove("OMNIGENT_AUTH_TOKEN")
        .env_remove("DATABASE_URL")
        .env_remove("OMNIGENT_BIND")
        .output()
        .expect("run omnigent")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

#[tokio::test]
async fn client_commands_start_a_local_server_once_and_manage_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");

    let out = omnigent(dir.path(), &server, &["sessions", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("started one in the background"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(text(&out.stdout).contains("no sessions"));

    // The second command finds it running and says nothing about starting.
    let api = Api::new(server.clone());
    let id = api.create(json!({"title": "from the cli test"})).await;
    api.message(&id, "hello from the test").await;
    let out = omnigent(dir.path(), &server, &["sessions", "list"]);
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("ID") && table.contains(&id) && table.contains("failed") && table.contains("from the cli test"),
        "{table}"
    );

    let out = omnigent(dir.path(), &server, &["sessions", "list", "--json", "--status", "failed"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["data"][0]["id"], id.as_str());

    let out = omnigent(dir.path(), &server, &["sessions", "show", &id]);
    let shown = text(&out.stdout);
    assert!(shown.contains("status:   failed") && shown.contains("user: hello from the test"), "{shown}");
    assert!(shown.contains("no_harness"), "{shown}");
    let out = omnigent(dir.path(), &server, &["sessions", "show", &id, "--json"]);
    let snap: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["id"], id.as_str());

    let out = omnigent(dir.path(), &server, &["server", "status"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("running (pid"), "{}", text(&out.stdout));

    let out = omnigent(dir.path(), &server, &["sessions", "delete", &id]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains(&format!("deleted {id}")));
    let out = omnigent(dir.path(), &server, &["sessions", "show", &id]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no session"), "{}", text(&out.stderr));
    let out = omnigent(dir.path(), &server, &["sessions", "show", "garbage"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a session id"), "{}", text(&out.stderr));

    let out = omnigent(dir.path(), &server, &["server", "stop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("stopped"));
    let out = omnigent(dir.path(), &server, &["server", "status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(omnigent_testkit::http().get(format!("{server}/health")).send().await.is_err(), "the server is gone");
}

#[tokio::test]
async fn server_start_is_idempotent_and_a_remote_url_is_never_autostarted() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let start = || {
        Command::new(bin())
            .args(["server", "start", "--bind", &bind, "--data-dir"])
            .arg(dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("OMNIGENT_AUTH_TOKEN")
            .output()
            .unwrap()
    };
    let first = start();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(text(&first.stdout).contains("started (pid"), "{}", text(&first.stdout));
    let second = start();
    assert!(text(&second.stdout).contains("already running"), "{}", text(&second.stdout));
    // A foreground server on the same data dir refuses to run beside it.
    let clash = Command::new(bin())
        .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!clash.status.success());
    assert!(text(&clash.stderr).contains("another omnigent server"), "{}", text(&clash.stderr));
    let stop = Command::new(bin()).args(["server", "stop", "--data-dir"]).arg(dir.path()).output().unwrap();
    assert!(stop.status.success());

    // Nothing answers at a non-loopback address: fail loudly, start nothing.
    let out = omnigent(dir.path(), "http://192.0.2.1:9", &["sessions", "list"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no omnigent server answers at http://192.0.2.1:9"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn binding_beyond_loopback_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["server", "--bind", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("OMNIGENT_AUTH_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("refusing to listen on 0.0.0.0:0 without an auth token"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn sigkill_while_writing_leaves_every_session_readable_and_gap_free() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut server = ServerProcess::start(&bin(), dir.path(), &db.url, port, &[]).await;
        let api = Api::new(server.url.clone());
        let mut ids = Vec::new();
        for _ in 0..8 {
            ids.push(api.create(json!({})).await);
        }
        // Writers hammer every session until the server dies under them; they remember what was acknowledged.
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for (w, id) in ids.iter().cycle().take(24).enumerate() {
            let api = api.clone();
            let id = id.clone();
            let stop = stop.clone();
            writers.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"type": "message", "data": {"content": format!("w{w}-{i}")}});
                    match api.req(reqwest::Method::POST, &format!("/v1/sessions/{id}/events")).json(&body).send().await
                    {
                        Ok(r) if r.status().as_u16() == 202 => {
                            let v: Value = match r.json().await {
                                Ok(v) => v,
                                Err(_) => break,
                            };
                            acked.push((id.clone(), v["item_id"].as_str().unwrap().to_string()));
                        }
                        _ => break,
                    }
                    i += 1;
                }
                acked
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        let mut acked = Vec::new();
        for w in writers {
            acked.extend(w.await.unwrap());
        }
        assert!(acked.len() > 20, "{}: the writers should have got going ({} acks)", db.label, acked.len());

        let server = ServerProcess::start(&bin(), dir.path(), &db.url, free_port(), &[]).await;
        let api = Api::new(server.url.clone());
        for id in &ids {
            let (status, snap) = api.get(&format!("/v1/sessions/{id}?include_items=false")).await;
            assert_eq!(status, 200, "{}: {snap}", db.label);
            let head = snap["last_seq"].as_i64().unwrap();
            // Replay the whole log: 1..=head, no gap, no duplicate.
            let mut sse =
                Sse::open(&format!("{}/v1/sessions/{id}/stream", server.url), &[("Last-Event-ID", "0")]).await;
            for expect in 1..=head {
                let f = sse.next_event().await.unwrap();
                assert_eq!(f.seq(), Some(expect), "{}", db.label);
            }
            // Every consumed message produced its failed status: the fold matches the log's end.
            assert_eq!(head % 2, 0, "{}: input and its turn's status commit together", db.label);
        }
        // Every acknowledged input survived.
        for (id, item) in &acked {
            let (_, items) = api.get(&format!("/v1/sessions/{id}/items?limit=1000")).await;
            let found = items["data"].as_array().unwrap().iter().any(|i| i["id"] == item.as_str());
            assert!(found, "{}: acknowledged item {item} of {id} was lost", db.label);
        }
    }
}

#[tokio::test]
async fn sigterm_ends_open_streams_with_done_and_sessions_survive_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = omnigent_testkit::sqlite_db();
    let mut server = ServerProcess::start(&bin(), dir.path(), &db.url, free_port(), &[]).await;
    let api = Api::new(server.url.clone());
    let id = api.create(json!({"title": "durable"})).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", server.url), &[]).await;
    sse.next().await.unwrap();
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(sse.next_event().await.unwrap().is_done());
    assert!(!dir.path().join("server.pid").exists(), "the pid file is removed on a clean exit");

    let server = ServerProcess::start(&bin(), dir.path(), &db.url, free_port(), &[]).await;
    let (_, snap) = Api::new(server.url.clone()).get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["title"], "durable");
}

/// `omnigent plugin check`: a builtin policy and the builtin harness load (with what they declare); one that imports
/// the network does not; a core module, a file that is not WebAssembly and a missing file are told apart, with their
/// exit codes.
#[test]
fn plugin_check_says_what_a_wasm_file_is_and_whether_it_loads() {
    let dir = tempfile::tempdir().unwrap();
    let guests = std::path::Path::new(omnigent_runtime::GUEST_DIR);
    let check = |file: &Path| {
        let out = Command::new(bin()).args(["plugin", "check"]).arg(file).output().unwrap();
        (out.status.code(), text(&out.stdout))
    };
    let (code, said) = check(&guests.join("tool_filter.wasm"));
    assert_eq!(code, Some(0), "{said}");
    for line in ["world: omnigent:policy@0.1.0", "loads on this host: yes", "name: tool_filter", "\"deny\""] {
        assert!(said.contains(line), "{line}: {said}");
    }
    let (code, said) = check(&guests.join("agent.wasm"));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("world: omnigent:harness@0.1.0") && said.contains("omnigent:harness/llm@0.1.0"), "{said}");
    // A plugin that imports the network is refused by the loader the server uses too.
    let (code, said) = check(&guests.join("networked_policy.wasm"));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("not loadable here: it imports wasi:sockets/"), "{said}");
    // A component of another world (a WASI command).
    let (code, said) = check(&guests.join("not_a_plugin.wasm"));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("world: none of this host's") && said.contains("exports run-turn"), "{said}");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let (code, said) = check(&core);
    assert_eq!(code, Some(2));
    assert!(said.contains("a core WebAssembly module, not a component"), "{said}");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"hello").unwrap();
    assert_eq!(
        check(&junk),
        (Some(2), format!("{}: not a WebAssembly file (it does not start with \\0asm)\n", junk.display()))
    );
    let (code, said) = check(&dir.path().join("missing.wasm"));
    assert_eq!(code, Some(2));
    assert!(said.contains("cannot be read"), "{said}");
}

/// `omnigent sessions show ID --events` saves a session's log; `omnigent plugin test` runs a policy over it and
/// prints each verdict, its parameters applied; bad parameters are the policy's own refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_test_runs_a_policy_over_a_recorded_session() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let db = omnigent_testkit::sqlite_db();
    let srv =
        ServerProcess::start(&bin(), &omnigent_testkit::data_dir_in(work.path()), &db.url, free_port(), &[]).await;
    let api = Api::new(srv.url.clone());
    let config = json!({"name": "recorded", "executor": {"harness": "agent", "provider": "scripted", "script": [
            {"text": "Looking. ", "tool_call": {"name": "shell", "arguments": {"command": "echo hi"}}},
            {"text": "Done."}]},
        "tools": {"shell": {"type": "builtin"}}, "os_env": {"cwd": work.path()}});
    let id = api.create(json!({"config": config})).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "say hi").await;
    sse.until("response.completed").await;
    let out = omnigent(dir.path(), &srv.url, &["sessions", "show", &id, "--events"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, &out.stdout).unwrap();
    assert!(text(&out.stdout).lines().all(|l| serde_json::from_str::<Value>(l).is_ok()), "JSON lines");

    let policy = std::path::Path::new(omnigent_runtime::GUEST_DIR).join("tool_filter.wasm");
    let test = |params: &str| {
        let out = Command::new(bin())
            .args(["plugin", "test"])
            .arg(&policy)
            .arg("--events")
            .arg(&events)
            .args(["--params", params])
            .output()
            .unwrap();
        (out.status.code(), text(&out.stdout))
    };
    let (code, said) = test(r#"{"deny": ["shell"]}"#);
    assert_eq!(code, Some(0), "{said}");
    let lines: Vec<&str> = said.lines().collect();
    assert!(lines[0].ends_with("request → allow"), "{said}");
    assert!(lines[1].contains("tool_call:shell → deny:"), "{said}");
    assert!(lines[2].contains("tool_result:shell → allow"), "{said}");
    assert!(lines[3].ends_with("response → allow"), "{said}");
    let (code, said) = test(r#"{"deny": "shell"}"#);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("invalid parameters"), "{said}");
    let (code, said) = test("[1]");
    assert_eq!(code, Some(2), "{said}");
}

#[tokio::test]
async fn stage_times_are_kept_only_when_asked_for_and_start_over_on_delete() {
    let db = omnigent_testkit::sqlite_db();
    let dir = tempfile::tempdir().unwrap();
    let plain = ServerProcess::start(&bin(), dir.path(), &db.url, free_port(), &[]).await;
    let (status, body) = Api::new(plain.url.clone()).get("/v1/debug/stages").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("--stage-times"), "{body}");
    drop(plain);

    let dir = tempfile::tempdir().unwrap();
    let timed = ServerProcess::start(&bin(), dir.path(), &db.url, free_port(), &["--stage-times"]).await;
    let api = Api::new(timed.url.clone());
    let id = api.create(json!({})).await;
    for i in 0..3 {
        api.message(&id, &format!("m{i}")).await;
    }
    let (status, body) = api.get("/v1/debug/stages").await;
    assert_eq!(status, 200, "{body}");
    let stage = |name: &str| body["data"].as_array().unwrap().iter().find(|s| s["stage"] == name).cloned();
    for name in ["request", "ack", "queue", "commit", "publish"] {
        let s = stage(name).unwrap_or_else(|| panic!("no {name} stage in {body}"));
        assert!(s["count"].as_u64().unwrap() >= 3, "{name}: {s}");
        assert!(s["p50_us"].as_u64().unwrap() <= s["p99_us"].as_u64().unwrap(), "{name}: {s}");
        assert!(!s["description"].as_str().unwrap().is_empty(), "{name}: {s}");
    }
    let (status, _) = api.call(reqwest::Method::DELETE, "/v1/debug/stages", None).await;
    assert_eq!(status, 204);
    let (_, body) = api.get("/v1/debug/stages").await;
    assert_eq!(body["data"], json!([]), "a reset forgets every stage");
}

/// SQLite serves one server process: a second server on the same database file (another data dir) is refused,
/// naming the one that has it.
#[tokio::test]
async fn a_second_server_on_the_same_sqlite_file_is_refused_with_who_has_it() {
    let db = omnigent_testkit::sqlite_db();
    let first = tempfile::tempdir().unwrap();
    let _server = ServerProcess::start(&bin(), first.path(), &db.url, free_port(), &[]).await;
    let second = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["server", "--bind", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
        .arg(second.path())
        .args(["--database-url", &db.url])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("SQLite serves one server process") && err.contains(&_server.pid().to_string()), "{err}");
}
