//! Remote runners end to end: a real server, a real `omnigent runner` process in another data dir and working
//! directory, the mock LLM vendor. The runner makes the session's model calls and runs its tools; the server keeps
//! the turn, the log and the streams.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, ServerProcess, Sse, TestDb, WAIT, databases, free_port};
use serde_json::{Value, json};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnigent"))
}

/// An `omnigent runner` process working in `cwd`, with its own data dir; killed when dropped.
struct RunnerProcess {
    child: Child,
}

impl RunnerProcess {
    fn start(server: &str, data: &Path, cwd: &Path, extra: &[&str]) -> RunnerProcess {
        Self::start_with(server, data, cwd, extra, &[])
    }

    fn start_with(server: &str, data: &Path, cwd: &Path, extra: &[&str], env: &[(&str, &Path)]) -> RunnerProcess {
        let log = std::fs::File::create(data.with_extension("log")).unwrap();
        let child = Command::new(bin())
            .envs(env.iter().copied())
            .args(["runner", "--server", server, "--name", "test-runner", "--data-dir"])
            .arg(data)
            .args(extra)
            .current_dir(cwd)
            .env_remove("OMNIGENT_AUTH_TOKEN")
            .env_remove("OMNIGENT_SERVER")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn omnigent runner");
        RunnerProcess { child }
    }

    fn kill9(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server lists a runner as online (or offline); returns its id.
async fn runner_online(api: &Api, online: bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, runners) = api.get("/v1/runners").await;
        if let Some(r) = runners["data"].as_array().and_then(|d| d.iter().find(|r| r["online"] == online)) {
            return r["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no runner became {}: {runners}", if online { "online" } else { "offline" });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A session config on the mock's OpenAI endpoint with the shell tool, working in `.` — which the runner reads
/// as its own working directory.
fn config(mock: &MockLlm) -> Value {
    json!({"name": "remote", "executor": {"harness": "agent", "model": "gpt-test", "provider": "openai",
        "auth": {"type": "api_key", "api_key": "runner-key", "base_url": mock.openai_base()}},
        "tools": {"shell": {"type": "builtin"}}, "os_env": {"cwd": ".", "sandbox": {"type": "none"}}})
}

/// A session of [`config`] bound to `runner`, created through `api`, and a stream of it opened there: the
/// create's answer and the stream, past its first heartbeat.
async fn bound_session(api: &Api, mock: &MockLlm, runner: &str) -> (Value, Sse) {
    let (code, created) = api.post("/v1/sessions", json!({"config": config(mock), "runner_id": runner})).await;
    assert_eq!(code, 201, "{created}");
    let mut sse = Sse::open(&format!("{}/v1/sessions/{}/stream", api.base, created["id"].as_str().unwrap()), &[]).await;
    sse.next().await.unwrap();
    (created, sse)
}

fn touch(tag: &str) -> Reply {
    Reply::tool("shell", json!({"command": format!("echo {tag} >> ran.log && pwd")}))
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("ran.log")).map(|s| s.lines().count()).unwrap_or(0)
}

async fn server(db: &TestDb, data: &Path, extra: &[&str]) -> ServerProcess {
    ServerProcess::start(&bin(), data, &db.url, free_port(), extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_makes_a_bound_sessions_calls_in_its_own_directory_and_survives_a_kill() {
    for db in databases().await {
        let label = db.label;
        let server_dir = tempfile::tempdir().unwrap();
        let runner_home = tempfile::tempdir().unwrap();
        let (runner_data, runner_cwd) = (runner_home.path().join("data"), runner_home.path().join("work"));
        std::fs::create_dir_all(&runner_cwd).unwrap();
        let slow =
            Reply::Slow { chunks: (0..200).map(|i| format!("w{i} ")).collect(), delay: Duration::from_millis(50) };
        let mock = MockLlm::start(vec![touch("once"), slow, Reply::text("finished on the runner")]).await;
        let srv = server(&db, server_dir.path(), &[]).await;
        let api = Api::new(srv.url.clone());
        let mut runner = RunnerProcess::start(&srv.url, &runner_data, &runner_cwd, &[]);
        let runner_id = runner_online(&api, true).await;

        let (created, mut sse) = bound_session(&api, &mock, &runner_id).await;
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!((&created["runner_id"], &created["runner_online"]), (&json!(runner_id), &json!(true)), "{label}");
        api.message(&id, "make a file").await;
        // The tool ran on the runner, in its working directory; the model's second answer is streaming.
        let frames = sse.until("response.output_text.delta").await;
        let outputs = omnigent_testkit::tool_outputs(&frames.iter().map(|f| f.json()).collect::<Vec<_>>());
        assert!(outputs.iter().any(|o| o.contains(&runner_cwd.display().to_string())), "{label}: {outputs:?}");
        assert_eq!(runs(&runner_cwd), 1, "{label}");
        assert!(!server_dir.path().join("ran.log").exists() && !Path::new("ran.log").exists(), "{label}");
        // The model calls carried the session's key from the runner.
        assert_eq!(mock.requests()[0].headers["authorization"], "Bearer runner-key");

        // The runner dies mid-call: the session says so and waits; a restarted runner finishes the turn once.
        runner.kill9();
        let waited = sse.until("response.error").await;
        let notice = waited.last().unwrap().json();
        assert_eq!(notice["error"]["code"], "runner_unavailable", "{label}: {notice}");
        let (_, snap) = api.get(&format!("/v1/sessions/{id}?include_items=false")).await;
        assert_eq!((&snap["status"], &snap["runner_online"]), (&json!("running"), &json!(false)), "{label}");
        assert_eq!(snap["blocked_on"], "runner_unavailable", "{label}: {snap}");
        let _runner = RunnerProcess::start(&srv.url, &runner_data, &runner_cwd, &[]);
        let frames = sse.until("response.completed").await;
        assert!(frames.iter().any(|f| f.data.contains("finished on the runner")), "{label}");
        assert_eq!(sse.statuses_until_settled().await, vec!["idle"], "{label}");
        assert_eq!(runs(&runner_cwd), 1, "{label}: the tool ran once");
        // The first call (recorded), the one the kill cut, the one after.
        assert_eq!(mock.requests().len(), 3, "{label}");
        let (_, runners) = api.get("/v1/runners").await;
        assert_eq!(
            runners["data"].as_array().unwrap().len(),
            1,
            "{label}: the restarted runner reused its registration"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_tokens_open_only_their_tunnel_and_bindings_are_checked() {
    let db = omnigent_testkit::sqlite_db();
    let dir = tempfile::tempdir().unwrap();
    let srv = server(&db, dir.path(), &["--auth-token", "server-secret"]).await;
    let anonymous = Api::new(srv.url.clone());
    let api = Api::new(srv.url.clone()).with_token("server-secret");
    // Registering takes the server's token; the answer shows the runner's own token once.
    let (code, _) = anonymous.post("/v1/runners", json!({"name": "x"})).await;
    assert_eq!(code, 401);
    let (code, runner) = api.post("/v1/runners", json!({"name": "laptop"})).await;
    assert_eq!(code, 201, "{runner}");
    let token = runner["token"].as_str().unwrap().to_string();
    let runner_id = runner["id"].as_str().unwrap().to_string();
    let (_, listed) = api.get("/v1/runners").await;
    assert!(listed["data"][0].get("token").is_none(), "a token is shown once: {listed}");
    assert_eq!(listed["data"][0]["online"], false);
    // A runner's token opens nothing but its tunnel.
    let (code, _) = Api::new(srv.url.clone()).with_token(&token).get("/v1/sessions").await;
    assert_eq!(code, 401);
    // The tunnel takes the runner's token only: not a wrong one, not the server's.
    let work = tempfile::tempdir().unwrap();
    for wrong in [format!("{runner_id}.0000"), "server-secret".to_string()] {
        let mut refused =
            RunnerProcess::start(&srv.url, &work.path().join("d"), work.path(), &["--token", wrong.as_str()]);
        let status = tokio::task::spawn_blocking(move || refused.child.wait().unwrap()).await.unwrap();
        assert!(!status.success(), "a runner with a wrong token must stop");
    }
    let _runner = RunnerProcess::start(&srv.url, &work.path().join("d"), work.path(), &["--token", token.as_str()]);
    assert_eq!(runner_online(&api, true).await, runner_id);

    // Binding: an unknown runner is refused; `""` unbinds.
    let id = api.create(json!({})).await;
    let path = format!("/v1/sessions/{id}");
    let (code, body) = api.call(reqwest::Method::PATCH, &path, Some(json!({"runner_id": "runner_nope"}))).await;
    assert_eq!(code, 400, "{body}");
    let (code, bound) = api.call(reqwest::Method::PATCH, &path, Some(json!({"runner_id": runner_id}))).await;
    assert_eq!(code, 200, "{bound}");
    assert_eq!((&bound["runner_id"], &bound["runner_online"]), (&json!(runner_id), &json!(true)));
    let (_, unbound) = api.call(reqwest::Method::PATCH, &path, Some(json!({"runner_id": ""}))).await;
    assert_eq!((&unbound["runner_id"], &unbound["runner_online"]), (&json!("runner_local"), &json!(true)));
}

/// With replicas, a runner connected to one replica runs the turns of a session another replica writes: that
/// replica reaches the runner through the one it is connected to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_written_by_one_replica_runs_on_a_runner_connected_to_another() {
    let Some(db) = omnigent_testkit::postgres_db().await else {
        return eprintln!("skipped: replicas need Postgres (set TEST_DATABASE_URL)");
    };
    let (a_dir, b_dir, runner_home) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let runner_cwd = runner_home.path().join("work");
    std::fs::create_dir_all(&runner_cwd).unwrap();
    let mock = MockLlm::start(vec![touch("relayed"), Reply::text("done through the other replica")]).await;
    let a = server(&db, a_dir.path(), &[]).await;
    let b = server(&db, b_dir.path(), &[]).await;
    let (api_a, api_b) = (Api::new(a.url.clone()), Api::new(b.url.clone()));
    let _runner = RunnerProcess::start(&a.url, &runner_home.path().join("data"), &runner_cwd, &[]);
    let runner_id = runner_online(&api_a, true).await;
    assert_eq!(runner_online(&api_b, true).await, runner_id, "every replica tells the runner is online");

    let (created, mut sse) = bound_session(&api_b, &mock, &runner_id).await;
    api_b.message(created["id"].as_str().unwrap(), "go").await;
    let frames = sse.until("response.completed").await;
    assert!(frames.iter().any(|f| f.data.contains("done through the other replica")));
    assert_eq!(runs(&runner_cwd), 1);
    assert_eq!(mock.requests().len(), 2);
}

/// `omnigent run --runner here` binds its new session to a runner on this machine, started in the background the
/// first time and reused after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omnigent_run_binds_its_session_to_a_runner_it_starts_here_and_reuses_it() {
    let db = omnigent_testkit::sqlite_db();
    let (server_dir, client_data, work) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mock = MockLlm::start(vec![touch("cli"), Reply::text("cli done"), Reply::text("second run")]).await;
    let srv = server(&db, server_dir.path(), &[]).await;
    let api = Api::new(srv.url.clone());
    let yaml = work.path().join("agent.yaml");
    std::fs::write(
        &yaml,
        format!(
            "name: here\nexecutor:\n  harness: agent\n  model: gpt-test\n  provider: openai\n  \
             auth: {{type: api_key, api_key: k, base_url: \"{}\"}}\ntools:\n  shell: {{type: builtin}}\n\
             os_env:\n  cwd: .\n  sandbox: {{type: none}}\n",
            mock.openai_base()
        ),
    )
    .unwrap();
    let run = |prompt: &'static str| {
        let (yaml, url, data) = (yaml.clone(), srv.url.clone(), client_data.path().to_path_buf());
        tokio::task::spawn_blocking(move || {
            Command::new(bin())
                .args(["run", "--runner", "here", "-p", prompt, "-f"])
                .arg(&yaml)
                .args(["--server", &url, "--data-dir"])
                .arg(&data)
                .env_remove("OMNIGENT_AUTH_TOKEN")
                .output()
                .unwrap()
        })
    };
    // The background runner outlives the runs: stopped when the test ends, however it ends.
    let _stop = StopRunner(client_data.path().join("runner.pid"));
    let out = run("make a file").await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("cli done"), "{text}");
    assert_eq!(runs(work.path()), 1, "the tool ran in the config's directory, by the runner");
    let (_, runners) = api.get("/v1/runners").await;
    let runner_id = runners["data"][0]["id"].as_str().unwrap().to_string();
    let (_, sessions) = api.get("/v1/sessions").await;
    assert_eq!(sessions["data"][0]["runner_id"], runner_id.as_str(), "{sessions}");

    let out = run("again").await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, runners) = api.get("/v1/runners").await;
    assert_eq!(runners["data"].as_array().unwrap().len(), 1, "the second run reused the runner: {runners}");
}

/// Kills the background runner its pid file names.
struct StopRunner(PathBuf);

impl Drop for StopRunner {
    fn drop(&mut self) {
        let running: Option<Value> = std::fs::read_to_string(&self.0).ok().and_then(|t| serde_json::from_str(&t).ok());
        if let Some(pid) = running.and_then(|r| r["pid"].as_i64()) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// A runner reaches a server behind TLS (as a team's server is): it registers over https and opens its tunnel over
/// wss, trusting the server's certificate through SSL_CERT_FILE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_reaches_a_server_behind_tls() {
    let db = omnigent_testkit::sqlite_db();
    let (server_dir, runner_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mock = MockLlm::start(vec![touch("tls"), Reply::text("over tls")]).await;
    let srv = server(&db, server_dir.path(), &[]).await;
    let tls = omnigent_testkit::tls::front(runner_home.path(), srv.url.trim_start_matches("http://")).await;
    let api = Api::new(srv.url.clone());
    let runner_cwd = runner_home.path().join("work");
    std::fs::create_dir_all(&runner_cwd).unwrap();
    let env = [("SSL_CERT_FILE", tls.certificate.as_path())];
    let _runner = RunnerProcess::start_with(&tls.url, &runner_home.path().join("data"), &runner_cwd, &[], &env);
    let runner_id = runner_online(&api, true).await;
    let (created, mut sse) = bound_session(&api, &mock, &runner_id).await;
    api.message(created["id"].as_str().unwrap(), "go").await;
    let frames = sse.until("response.completed").await;
    assert!(frames.iter().any(|f| f.data.contains("over tls")));
    assert_eq!(runs(&runner_cwd), 1);
}
