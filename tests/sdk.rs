//! The published Python SDK (`omnigent-client` from PyPI) against the real server binary. `scripts/test` makes a
//! Python ≥ 3.12 venv with the SDK and sets OMNIGENT_SDK_PYTHON; CI sets OMNIGENT_REQUIRE_SDK=1 so it cannot be
//! skipped there.

use std::path::PathBuf;

use omnigent_testkit::{ServerProcess, databases, free_port};

/// The SDK venv's Python (scripts/test makes it); None skips a test — unless OMNIGENT_REQUIRE_SDK=1 (CI), where its
/// absence fails the test.
fn sdk_python() -> Option<String> {
    let python = std::env::var("OMNIGENT_SDK_PYTHON").ok().filter(|p| !p.is_empty());
    if python.is_none() {
        assert_ne!(
            std::env::var("OMNIGENT_REQUIRE_SDK").as_deref(),
            Ok("1"),
            "OMNIGENT_REQUIRE_SDK=1 but OMNIGENT_SDK_PYTHON is not set (scripts/test sets it up)"
        );
        eprintln!("skipped: OMNIGENT_SDK_PYTHON is not set (scripts/test creates the SDK venv)");
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_python_sdk_reads_and_streams_sessions_unchanged() {
    let Some(python) = sdk_python() else { return };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/sdk_sessions.py");
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let server =
            ServerProcess::start(&PathBuf::from(env!("CARGO_BIN_EXE_omnigent")), dir.path(), &db.url, free_port(), &[])
                .await;
        let out = tokio::process::Command::new(&python).arg(&script).arg(&server.url).output().await.unwrap();
        assert!(
            out.status.success(),
            "{}: the SDK script failed:\n{}\n{}",
            db.label,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A server on a fresh SQLite database in a temporary dir (also the Python CLI's home), and a client of it.
async fn sqlite_server() -> (tempfile::TempDir, omnigent_testkit::TestDb, ServerProcess, omnigent_testkit::Api) {
    let dir = tempfile::tempdir().unwrap();
    let db = omnigent_testkit::sqlite_db();
    let server =
        ServerProcess::start(&PathBuf::from(env!("CARGO_BIN_EXE_omnigent")), dir.path(), &db.url, free_port(), &[])
            .await;
    let api = omnigent_testkit::Api::new(server.url.clone());
    (dir, db, server, api)
}

/// Omnigent's own `omnigent` CLI (installed with the SDK, same version) moves a session out of this server and back
/// in (`session export` reads the snapshot and items, `session import` recreates them as history) and reads its
/// usage report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_cli_exports_and_imports_a_session_and_reads_usage() {
    let Some(python) = sdk_python() else { return };
    let cli = PathBuf::from(&python).with_file_name("omnigent");
    let (dir, _db, server, api) = sqlite_server().await;
    let config = serde_json::json!({"name": "helper", "executor": {"harness": "agent", "provider": "scripted",
        "script": [{"text": "Four."}]}});
    let (status, agent) = api.post("/v1/agents", serde_json::json!({"config": config})).await;
    assert_eq!(status, 201, "{agent}");
    let id = api.create(serde_json::json!({"agent_id": agent["id"], "title": "to export"})).await;
    let mut sse = omnigent_testkit::Sse::open(&format!("{}/v1/sessions/{id}/stream", server.url), &[]).await;
    sse.next().await.unwrap();
    api.message(&id, "What is 2+2?").await;
    sse.until("response.completed").await;
    let file = dir.path().join("export.jsonl");
    let run = |args: Vec<String>| {
        let cli = cli.clone();
        let home = dir.path().to_path_buf();
        async move {
            // Its own config and state stay in the test's dir.
            let out = tokio::process::Command::new(cli).args(args).env("HOME", home).output().await.unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "{text}");
            text
        }
    };
    let url = server.url.clone();
    run(vec![
        "session".into(),
        "export".into(),
        "--id".into(),
        id.clone(),
        "--server".into(),
        url.clone(),
        "-o".into(),
        file.display().to_string(),
    ])
    .await;
    let said =
        run(vec!["session".into(), "import".into(), "-i".into(), file.display().to_string(), "--server".into(), url])
            .await;
    let new_id = said.split_whitespace().find(|w| w.starts_with("conv_")).expect("the new session's id").to_string();
    assert_ne!(new_id, id);
    let (_, copy) = api.get(&format!("/v1/sessions/{new_id}")).await;
    let texts = |snapshot: &serde_json::Value| -> Vec<String> {
        snapshot["items"].as_array().unwrap().iter().map(|i| i["data"]["content"].to_string()).collect()
    };
    let (_, original) = api.get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(texts(&copy), texts(&original), "{copy}");
    assert_eq!((&copy["title"], &copy["status"]), (&original["title"], &serde_json::json!("idle")));
    // `omnigent usage` reads this server's report.
    let report = run(vec!["usage".into(), "--server".into(), server.url.clone(), "--json".into()]).await;
    let report: serde_json::Value = serde_json::from_str(report.trim()).unwrap_or_else(|e| panic!("{e}: {report}"));
    assert_eq!(report["object"], "usage_report", "{report}");
}

/// Omnigent's `omnigent attach ID --server URL` (its REPL, in a real terminal: tmux) joins a session of this server:
/// a line typed there is the session's message, and the reply streams into the REPL. `omnigent diagnose --server`
/// reads this server's version and auth mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_cli_attaches_to_a_session_and_diagnoses_the_server() {
    let Some(python) = sdk_python() else { return };
    let cli = PathBuf::from(&python).with_file_name("omnigent");
    let (dir, _db, server, api) = sqlite_server().await;
    let config = serde_json::json!({"name": "pal", "executor": {"harness": "agent", "provider": "scripted",
        "script": [{"text": "Hello from the scripted model."}]}});
    let id = api.create(serde_json::json!({"config": config, "title": "attach me"})).await;

    let diagnosis = tokio::process::Command::new(&cli)
        .args(["diagnose", "--json", "--server", &server.url])
        .env("HOME", dir.path())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&diagnosis.stdout);
    let report: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(report["server_version"], env!("CARGO_PKG_VERSION"), "{report}");
    assert_eq!(report["auth_source"], "single_user", "{report}");

    // The REPL needs a terminal: a private tmux server gives it one. (A first start would ask for a colour theme.)
    std::fs::create_dir_all(dir.path().join(".omnigent")).unwrap();
    std::fs::write(dir.path().join(".omnigent/config.yaml"), "tui:\n  theme: dark\n").unwrap();
    let socket = dir.path().join("tmux.sock");
    // The REPL and its tmux server go with the test, whether it passes or not.
    struct KillOnDrop(PathBuf);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = std::process::Command::new("tmux").arg("-S").arg(&self.0).arg("kill-server").output();
        }
    }
    let _tmux_server = KillOnDrop(socket.clone());
    let tmux = |args: &[&str]| {
        let out = std::process::Command::new("tmux").arg("-S").arg(&socket).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let command = format!("HOME={} {} attach {id} --server {}", dir.path().display(), cli.display(), server.url);
    tmux(&["new-session", "-d", "-x", "160", "-y", "40", "-s", "py", &command]);
    let screen_shows = |text: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let screen = tmux(&["capture-pane", "-p", "-t", "py"]);
            if screen.contains(text) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the REPL never showed {text:?}:\n{screen}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    tokio::task::block_in_place(|| screen_shows("ready"));
    tmux(&["send-keys", "-t", "py", "-l", "hi from the python repl"]);
    tmux(&["send-keys", "-t", "py", "Enter"]);
    tokio::task::block_in_place(|| screen_shows("Hello from the scripted model."));
    let (_, items) = api.get(&format!("/v1/sessions/{id}/items")).await;
    let texts: Vec<String> =
        items["data"].as_array().unwrap().iter().map(|i| i["content"][0]["text"].to_string()).collect();
    assert_eq!(texts, vec!["\"hi from the python repl\"", "\"Hello from the scripted model.\""], "{items}");
}
