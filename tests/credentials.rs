//! Configured credentials end to end: `omnigent auth` through the real binary, a server started before the key
//! existed, the mock vendor's recorded `Authorization` header, and the key nowhere else.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, ServerProcess, Sse, free_port};
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnigent"))
}

/// The CLI with a private data dir and server, `env` set in its shell, `stdin` piped in (not a terminal).
fn omnigent(data: &Path, server: &str, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .env("OMNIGENT_DATA_DIR", data)
        .env("OMNIGENT_SERVER", server)
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run omnigent");
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

/// A server that takes keys only from the credentials file and configs, as the CLI's background servers do.
async fn server(data: &Path) -> ServerProcess {
    let db = format!("sqlite://{}", data.join("omnigent.db").display());
    ServerProcess::start(&bin(), data, &db, free_port(), &["--no-env-credentials"]).await
}

/// Every byte the SQLite database holds (its WAL too).
fn database_bytes(data: &Path) -> String {
    ["omnigent.db", "omnigent.db-wal"]
        .iter()
        .map(|f| String::from_utf8_lossy(&std::fs::read(data.join(f)).unwrap_or_default()).to_string())
        .collect()
}

async fn session_count(api: &Api) -> usize {
    let (_, list) = api.get("/v1/sessions?kind=any").await;
    list["data"].as_array().map_or(0, Vec::len)
}

/// Sends a message and waits for the turn to settle; the session's snapshot after it.
async fn turn(api: &Api, id: &str, message: &str) -> Value {
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
    sse.next().await.unwrap();
    api.message(id, message).await;
    tokio::time::timeout(Duration::from_secs(30), sse.statuses_until_settled()).await.expect("the turn settles");
    api.get(&format!("/v1/sessions/{id}")).await.1
}

// Multi-threaded: the CLI runs as a blocking child process while the mock vendor answers on this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_with_the_cli_reaches_the_vendor_from_a_server_started_before_it_and_nowhere_else() {
    let mock = MockLlm::start(vec![Reply::text("one"), Reply::text("two")]).await;
    let data = tempfile::tempdir().unwrap();
    let srv = server(data.path()).await;
    let api = Api::new(srv.url.clone());
    let run = ["run", "agent", "--model", "gpt-cred", "-p", "hi"];

    // No key anywhere: stopped before a session exists, with the command that fixes it.
    let out = omnigent(data.path(), &srv.url, &run, &[], "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("omnigent auth set openai") && stderr.contains("no session was created"), "{stderr}");
    // The key in this shell is not the server's: it says so and how to store it (no terminal to ask on).
    let out = omnigent(data.path(), &srv.url, &run, &[("OPENAI_API_KEY", "sk-shell-only")], "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("omnigent auth set openai --from-env OPENAI_API_KEY"), "{stderr}");
    assert_eq!(session_count(&api).await, 0, "nothing half-created");

    // Set through the CLI (from stdin, as `echo $KEY | omnigent auth set openai` does).
    let base = mock.openai_base();
    let out = omnigent(data.path(), &srv.url, &["auth", "set", "openai", "--base-url", &base], &[], "sk-cli-1\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = data.path().join("credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let out = omnigent(data.path(), &srv.url, &["auth", "list"], &[], "");
    let listed = text(&out.stdout);
    assert!(listed.contains("openai") && listed.contains(&base) && !listed.contains("sk-cli-1"), "{listed}");
    assert!(listed.contains("does not read keys from its environment"), "{listed}");

    // The server, started before the key existed, uses it.
    let out = omnigent(data.path(), &srv.url, &run, &[], "");
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("one"));
    assert_eq!(mock.requests()[0].headers["authorization"], "Bearer sk-cli-1");

    // A new key applies to the next model call, without a restart.
    let (_, list) = api.get("/v1/sessions").await;
    let id = list["data"][0]["id"].as_str().unwrap().to_string();
    let out = omnigent(
        data.path(),
        &srv.url,
        &["auth", "set", "openai", "--base-url", &base, "--from-env", "K"],
        &[("K", "sk-cli-2")],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snap = turn(&api, &id, "again").await;
    assert_eq!(snap["status"], "idle", "{snap}");
    assert_eq!(mock.requests()[1].headers["authorization"], "Bearer sk-cli-2");

    // The key is in the credentials file only: not in the database, not in any answer.
    let answers = [
        api.get(&format!("/v1/sessions/{id}")).await.1,
        api.get(&format!("/v1/sessions/{id}/items")).await.1,
        api.get("/v1/sessions").await.1,
        api.get("/v1/credentials").await.1,
    ];
    for answer in &answers {
        let shown = answer.to_string();
        assert!(!shown.contains("sk-cli-"), "{shown}");
    }
    assert_eq!(answers[3]["credentials"][0]["name"], "openai");
    let stored = database_bytes(data.path());
    assert!(!stored.contains("sk-cli-"), "the database never holds the key");

    // Removed: the next turn fails with missing_api_key, naming the provider.
    let out = omnigent(data.path(), &srv.url, &["auth", "remove", "openai"], &[], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let snap = turn(&api, &id, "and now?").await;
    assert_eq!(snap["status"], "failed", "{snap}");
    assert_eq!(snap["last_task_error"]["code"], "missing_api_key", "{snap}");
    let message = snap["last_task_error"]["message"].as_str().unwrap();
    assert!(message.contains("openai") && message.contains("omnigent auth set openai"), "{message}");
    assert_eq!(mock.requests().len(), 2, "no call without a key");
    let out = omnigent(data.path(), &srv.url, &["auth", "remove", "openai"], &[], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no stored credential `openai`"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reference_in_a_yaml_is_stored_as_written_and_resolved_at_each_turn() {
    let mock = MockLlm::start(vec![Reply::text("first"), Reply::text("second")]).await;
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let srv = server(data.path()).await;
    let api = Api::new(srv.url.clone());
    let yaml = work.path().join("agent.yaml");
    std::fs::write(
        &yaml,
        format!(
            "name: referenced\nexecutor:\n  harness: agent\n  model: gpt-ref\n  auth: {{type: api_key, api_key: \
             ${{MY_TEAM_KEY}}, base_url: \"{}\"}}\n",
            mock.openai_base()
        ),
    )
    .unwrap();
    let yaml = yaml.to_str().unwrap();
    let run = ["run", "-f", yaml, "-p", "hi"];

    // The variable is set in this shell only: the server cannot see it, and says how to store it.
    let shell = [("MY_TEAM_KEY", "sk-ref-1")];
    let out = omnigent(data.path(), &srv.url, &run, &shell, "");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("${MY_TEAM_KEY}") && stderr.contains("omnigent auth set MY_TEAM_KEY --from-env MY_TEAM_KEY"),
        "{stderr}"
    );
    assert_eq!(session_count(&api).await, 0);

    let out = omnigent(data.path(), &srv.url, &["auth", "set", "MY_TEAM_KEY", "--from-env", "MY_TEAM_KEY"], &shell, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = omnigent(data.path(), &srv.url, &run, &shell, "");
    assert!(out.status.success(), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(mock.requests()[0].headers["authorization"], "Bearer sk-ref-1");
    // The session's config keeps the reference, not its value.
    let stored = database_bytes(data.path());
    assert!(stored.contains("${MY_TEAM_KEY}") && !stored.contains("sk-ref-1"));

    // Resolved again at the next turn: a changed key is used at once.
    let out = omnigent(data.path(), &srv.url, &["auth", "set", "MY_TEAM_KEY"], &[], "sk-ref-2");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (_, list) = api.get("/v1/sessions").await;
    let id = list["data"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(turn(&api, &id, "again").await["status"], "idle");
    assert_eq!(mock.requests()[1].headers["authorization"], "Bearer sk-ref-2");

    // `{type: provider, name}` names a stored credential; a missing one stops `run` with the fix.
    let named = work.path().join("named.yaml");
    std::fs::write(
        &named,
        "name: named\nexecutor:\n  harness: agent\n  model: gpt-ref\n  auth: {type: provider, name: gateway}\n",
    )
    .unwrap();
    let out = omnigent(data.path(), &srv.url, &["run", "-f", named.to_str().unwrap(), "-p", "hi"], &[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("fix: omnigent auth set gateway"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn a_credentials_file_others_can_read_is_refused_with_the_fix() {
    let data = tempfile::tempdir().unwrap();
    let out = omnigent(data.path(), "http://127.0.0.1:1", &["auth", "set", "openai"], &[], "sk-x");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = data.path().join("credentials.json");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let srv = server(data.path()).await;
    let (_, view) = Api::new(srv.url.clone()).get("/v1/credentials").await;
    assert!(view["error"].as_str().unwrap().contains("chmod 600"), "{view}");
    let out = omnigent(data.path(), &srv.url, &["auth", "set", "anthropic"], &[], "sk-y");
    assert!(!out.status.success(), "a file others can read is not written to either");
    // Bad input: an empty key, a bad name.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = omnigent(data.path(), &srv.url, &["auth", "set", "openai"], &[], "\n");
    assert!(text(&out.stderr).contains("no key given"), "{}", text(&out.stderr));
    let out = omnigent(data.path(), &srv.url, &["auth", "set", "bad name"], &[], "sk");
    assert!(text(&out.stderr).contains("must be 1 to 64"), "{}", text(&out.stderr));
}
