//! Builtin tools in their sandbox (`os_env.sandbox`), end to end: the real binary, real bubblewrap, the real
//! `agent` harness and a mock model that asks for the tool calls. Each escape is tried the way a model would try
//! it, and the test reads what the tool answered.

use std::path::{Path, PathBuf};

use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, ServerProcess, Sse, free_port};
use serde_json::{Value, json};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnigent"))
}

/// Whether bubblewrap runs here; without it the tests are skipped loudly (OMNIGENT_SANDBOX_TESTS=1: they fail).
fn bwrap_runs() -> bool {
    let ok = std::process::Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--unshare-pid", "--", "/bin/true"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("OMNIGENT_SANDBOX_TESTS").as_deref() != Ok("1"),
            "OMNIGENT_SANDBOX_TESTS=1 but bubblewrap does not run here (apt-get install bubblewrap)"
        );
        eprintln!("SKIPPED: the sandbox tests need bubblewrap (apt-get install bubblewrap); scripts/test installs it");
    }
    ok
}

struct Setup {
    work: tempfile::TempDir,
    data: PathBuf,
    db: omnigent_testkit::TestDb,
    mock: MockLlm,
    srv: ServerProcess,
    api: Api,
}

impl Setup {
    /// A server whose data dir lies inside the work dir (so a tool that could see it would find it), and a mock
    /// model with no replies yet ([`Setup::step`] gives it some).
    async fn new(server_args: &[&str]) -> Setup {
        let work = tempfile::tempdir().unwrap();
        let data = omnigent_testkit::data_dir_in(work.path());
        let db = omnigent_testkit::sqlite_db();
        let mock = MockLlm::start(Vec::new()).await;
        let srv = ServerProcess::start(&bin(), &data, &db.url, free_port(), server_args).await;
        let api = Api::new(srv.url.clone());
        Setup { work, data, db, mock, srv, api }
    }

    /// The model's next turn: it asks for `calls` in one step, then answers.
    fn step(&self, calls: Vec<(&str, Value)>) {
        let calls = calls.into_iter().map(|(n, a)| (n.to_string(), a)).collect();
        self.mock.push(Reply::Tools { text: String::new(), calls });
        self.mock.push(Reply::text("done"));
    }

    fn config(&self, cwd: &Path, sandbox: Option<Value>) -> Value {
        let mut os_env = json!({"cwd": cwd});
        if let Some(s) = sandbox {
            os_env["sandbox"] = s;
        }
        json!({
            "name": "sandboxed",
            "executor": {"harness": "agent", "model": "gpt-test", "provider": "openai",
                "auth": {"type": "api_key", "api_key": "test-key", "base_url": self.mock.openai_base()}},
            "tools": {"shell": {"type": "builtin"}, "read_file": {"type": "builtin"},
                "write_file": {"type": "builtin"}, "list_dir": {"type": "builtin"}},
            "os_env": os_env,
        })
    }

    async fn create(&self, config: Value) -> (u16, Value) {
        self.api.post("/v1/sessions", json!({"config": config})).await
    }

    /// Runs one turn of session `id`; returns the tools' outputs in call order, and the turn's frames.
    async fn turn(&self, id: &str) -> (Vec<String>, Vec<Value>) {
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", self.srv.url), &[]).await;
        sse.next().await.unwrap();
        self.api.message(id, "go").await;
        let frames: Vec<Value> = sse.until("response.completed").await.iter().map(|f| f.json()).collect();
        (omnigent_testkit::tool_outputs(&frames), frames)
    }
}

fn shell(command: &str) -> (&'static str, Value) {
    ("shell", json!({"command": command}))
}

#[tokio::test]
async fn the_default_sandbox_shows_the_work_dir_and_nothing_of_the_servers() {
    if !bwrap_runs() {
        return;
    }
    let t = Setup::new(&[]).await;
    let db_file = t.db.url.strip_prefix("sqlite://").unwrap().to_string();
    t.step(vec![
        shell("echo made > made.txt && cat made.txt"),
        shell(&format!("ls -a .omnigent-data; cat {db_file}; cat /etc/shadow")),
        shell("env"),
        shell("touch /usr/escape; touch /etc/escape"),
        shell("ps ax -o pid,comm | wc -l"),
        // The compiled-component cache the server loads as native code (issue: tools could plant code there).
        shell("mkdir -p .omnigent-data/cache && echo evil > .omnigent-data/cache/planted.cwasm"),
    ]);
    let (status, v) = t.create(t.config(t.work.path(), None)).await;
    assert_eq!(status, 201, "{v}");
    let (out, _) = t.turn(v["id"].as_str().unwrap()).await;
    assert_eq!(out.len(), 6, "{out:?}");
    // The working directory is writable.
    assert!(out[0].contains("exit code: 0") && out[0].contains("made"), "{}", out[0]);
    assert_eq!(std::fs::read_to_string(t.work.path().join("made.txt")).unwrap(), "made\n");
    // The data dir (logs, cache, credentials) is an empty folder inside; the database and /etc/shadow are not
    // there at all.
    assert!(
        std::fs::read_dir(&t.data).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().contains("test-server"))
    );
    assert!(!out[1].contains("test-server") && !out[1].contains("SQLite"), "{}", out[1]);
    assert_eq!(out[1].matches("No such file").count(), 2, "{}", out[1]);
    // The server's environment (its keys, and here cargo's variables) stays out.
    assert!(!out[2].contains("CARGO_") && out[2].contains("HOME=/tmp"), "{}", out[2]);
    // The system is read-only.
    assert!(out[3].contains("Read-only file system"), "{}", out[3]);
    assert!(!Path::new("/usr/escape").exists() && !Path::new("/etc/escape").exists());
    // Its own processes only: the header, sh, ps, wc and bubblewrap's init.
    let count: usize = out[4].lines().find_map(|l| l.trim().parse().ok()).unwrap_or(99);
    assert!(count <= 6, "the sandbox sees only its own processes: {}", out[4]);
    // What a tool writes over the data dir lands in the sandbox's own empty folder, never in the server's.
    assert!(!t.data.join("cache/planted.cwasm").exists(), "{}", out[5]);
}

#[tokio::test]
async fn a_written_sandbox_keeps_the_work_dir_read_only_and_the_network_closed() {
    if !bwrap_runs() {
        return;
    }
    // The mock model listens on loopback: a tool with the network reaches it, one without cannot.
    let probe = "python3 -c \"import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2); \
                 print('connected')\" PORT";
    let t = Setup::new(&[]).await;
    let port = t.mock.url.rsplit(':').next().unwrap().to_string();
    t.step(vec![
        shell("echo no > here.txt"),
        shell("echo yes > out/there.txt && cat out/there.txt"),
        shell(&probe.replace("PORT", &port)),
        ("write_file", json!({"path": "here.txt", "content": "no"})),
        ("write_file", json!({"path": "out/file.txt", "content": "yes"})),
    ]);
    std::fs::create_dir_all(t.work.path().join("out")).unwrap();
    let sandbox = json!({"type": "linux_bwrap", "write_paths": ["out"], "allow_network": false});
    let (status, v) = t.create(t.config(t.work.path(), Some(sandbox))).await;
    assert_eq!(status, 201, "{v}");
    let (out, _) = t.turn(v["id"].as_str().unwrap()).await;
    assert!(out[0].contains("Read-only file system"), "{}", out[0]);
    assert!(!t.work.path().join("here.txt").exists());
    assert!(out[1].contains("exit code: 0") && out[1].contains("yes"), "{}", out[1]);
    assert!(!out[2].contains("connected") && out[2].contains("exit code: 1"), "no network: {}", out[2]);
    assert!(out[3].contains("outside the paths"), "the file tools keep to the write paths too: {}", out[3]);
    assert!(out[4].contains("wrote 3 bytes"), "{}", out[4]);
}

#[tokio::test]
async fn file_tools_refuse_paths_outside_their_roots_and_symlinks_out_of_them() {
    if !bwrap_runs() {
        return;
    }
    let t = Setup::new(&[]).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "s3cret").unwrap();
    std::os::unix::fs::symlink(outside.path(), t.work.path().join("door")).unwrap();
    let log = std::fs::read_dir(&t.data).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_file()).unwrap();
    t.step(vec![
        ("read_file", json!({"path": "door/secret.txt"})),
        ("write_file", json!({"path": "door/planted.txt", "content": "x"})),
        ("read_file", json!({"path": log})),
        ("list_dir", json!({"path": "/"})),
        ("read_file", json!({"path": "../../etc/passwd"})),
        ("write_file", json!({"path": "ok/inside.txt", "content": "fine"})),
    ]);
    let (status, v) = t.create(t.config(t.work.path(), None)).await;
    assert_eq!(status, 201, "{v}");
    let (out, _) = t.turn(v["id"].as_str().unwrap()).await;
    assert!(out[0].contains("outside the paths") && !out[0].contains("s3cret"), "{}", out[0]);
    assert!(out[1].contains("outside the paths"), "{}", out[1]);
    assert!(!outside.path().join("planted.txt").exists());
    assert!(out[2].contains("not visible"), "{}", out[2]);
    assert!(out[3].contains("outside the paths"), "{}", out[3]);
    assert!(out[4].contains("outside the paths"), "{}", out[4]);
    assert!(out[5].contains("wrote 4 bytes"), "{}", out[5]);
}

#[tokio::test]
async fn a_workspace_root_confines_every_session_and_refuses_an_unsandboxed_one() {
    if !bwrap_runs() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let root_arg = root.path().to_str().unwrap().to_string();
    let t = Setup::new(&["--workspace-root", &root_arg]).await;
    t.step(vec![shell("pwd")]);
    // Outside the root: refused, naming the root.
    let (status, v) = t.create(t.config(t.work.path(), None)).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("workspace root"), "{v}");
    // A grant that climbs out of the root: refused.
    let (status, v) = t.create(t.config(&project, Some(json!({"write_paths": ["../../"]})))).await;
    assert_eq!(status, 400, "{v}");
    // No sandbox: refused.
    let (status, v) = t.create(t.config(&project, Some(json!({"type": "none"})))).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("type none"), "{v}");
    // The create request's `workspace` is judged the same way.
    let body = json!({"config": t.config(&project, None), "workspace": "/"});
    let (status, v) = t.api.post("/v1/sessions", body).await;
    assert_eq!(status, 400, "{v}");
    // Inside the root: the session runs, sandboxed.
    let (status, v) = t.create(t.config(&project, None)).await;
    assert_eq!(status, 201, "{v}");
    let (out, _) = t.turn(v["id"].as_str().unwrap()).await;
    assert!(out[0].contains(&std::fs::canonicalize(&project).unwrap().display().to_string()), "{}", out[0]);
}

#[tokio::test]
async fn without_bubblewrap_auto_runs_unconfined_and_says_so_once_and_linux_bwrap_is_refused() {
    let t = Setup::new(&["--bwrap", "/nonexistent/bwrap"]).await;
    t.step(vec![shell("echo ran")]);
    let (status, v) = t.create(t.config(t.work.path(), Some(json!({"type": "linux_bwrap"})))).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("linux_bwrap"), "{v}");
    let (status, v) = t.create(t.config(t.work.path(), None)).await;
    assert_eq!(status, 201, "{v}");
    let id = v["id"].as_str().unwrap();
    let (out, frames) = t.turn(id).await;
    assert!(out[0].contains("ran"), "{out:?}");
    let notices = |frames: &[Value]| {
        frames.iter().filter(|f| f["error"]["code"] == "sandbox_unavailable").cloned().collect::<Vec<_>>()
    };
    let said = notices(&frames);
    assert_eq!(said.len(), 1, "{frames:?}");
    assert!(said[0]["error"]["message"].as_str().unwrap().contains("/nonexistent/bwrap"), "{}", said[0]);
    // The next turn does not say it again.
    t.step(vec![shell("echo again")]);
    let (out, frames) = t.turn(id).await;
    assert!(out[0].contains("again"), "{out:?}");
    assert!(notices(&frames).is_empty(), "{frames:?}");
}
