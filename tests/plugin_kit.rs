//! The plugin author kit end to end, as its README tells an author: `omnigent plugin new` → the project's own unit
//! tests → `plugin build` → `plugin check` → `plugin test` → `omnigent run -f session.yaml` against a real server —
//! for a Rust policy, a Python policy (componentize-py, installed by `plugin build` itself the first time) and a
//! Rust harness. Offline: the crates come from cargo's cache, and the sessions use the scripted demo model.

use std::path::{Path, PathBuf};
use std::process::Command;

use omnigent_testkit::{Api, ServerProcess, free_port, tool_outputs};
use serde_json::Value;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnigent"))
}

/// What a command said.
struct Said {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// Runs a command in `cwd` the way an author's shell would. Author builds share one cargo target dir of their own
/// (not the one this test run holds locked), kept between runs so the SDKs' dependencies compile once.
fn run(cwd: &Path, program: &Path, args: &[&str], server: Option<&str>) -> Said {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .env("CARGO_TARGET_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-kit"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    if let Some(server) = server {
        command.env("OMNIGENT_SERVER", server).env("OMNIGENT_DATA_DIR", cwd.join(".omnigent-cli"));
    }
    let out = command.output().unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    Said {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn omnigent(cwd: &Path, args: &[&str]) -> Said {
    run(cwd, &bin(), args, None)
}

/// A server with what it needs to live.
struct Server {
    process: ServerProcess,
    _db: omnigent_testkit::TestDb,
    _work: tempfile::TempDir,
}

impl std::ops::Deref for Server {
    type Target = ServerProcess;
    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

/// A server of its own (its data dir and cwd elsewhere, so relative paths in a YAML must be the YAML's).
async fn server() -> Server {
    let work = tempfile::tempdir().unwrap();
    let db = omnigent_testkit::sqlite_db();
    let process =
        ServerProcess::start(&bin(), &omnigent_testkit::data_dir_in(work.path()), &db.url, free_port(), &[]).await;
    Server { process, _db: db, _work: work }
}

/// `plugin new` into a fresh folder; returns the project folder.
fn scaffold(root: &Path, args: &[&str]) -> PathBuf {
    let said = omnigent(root, args);
    assert_eq!(said.code, Some(0), "{said}");
    let name = args[3];
    assert!(said.stdout.contains("wrote") && said.stdout.contains("omnigent plugin build"), "{said}");
    root.join(name)
}

fn build(project: &Path, wasm: &str) -> PathBuf {
    let said = omnigent(project, &["plugin", "build"]);
    assert_eq!(said.code, Some(0), "{said}");
    let built = project.join("dist").join(wasm);
    assert!(said.stdout.starts_with(&format!("built ./dist/{wasm} (")), "{said}");
    assert!(built.is_file(), "{said}");
    built
}

/// The policy flow after `build`: check, the recorded sample session, then a real session through the CLI (on a
/// server it returns, still running).
async fn check_test_and_run_policy(project: &Path, snake: &str) -> Server {
    let wasm = format!("dist/{snake}.wasm");
    let said = omnigent(project, &["plugin", "check", &wasm]);
    assert_eq!(said.code, Some(0), "{said}");
    for line in [
        "world: omnigent:policy@0.1.0",
        "loads on this host: yes",
        &format!("name: {snake}"),
        "description: Deny shell commands containing a blocked pattern",
    ] {
        assert!(said.stdout.contains(line), "{line}: {said}");
    }
    assert!(!said.stdout.contains("wasi:sockets"), "{said}");

    let said = omnigent(project, &["plugin", "test", &wasm, "--events", "events.jsonl"]);
    assert_eq!(said.code, Some(0), "{said}");
    let verdicts: Vec<&str> = said.stdout.lines().filter(|l| l.starts_with("line ")).collect();
    assert_eq!(verdicts.len(), 6, "{said}");
    assert!(
        verdicts[1]
            .ends_with(&format!("tool_call:shell → deny: `git push --force` is blocked in this session ({snake})")),
        "{said}"
    );
    assert!(verdicts[3].ends_with("tool_call:shell → allow"), "{said}");
    assert!(said.stdout.contains(r#"state: {"under_test.tool_calls":1}"#), "{said}");
    let said =
        omnigent(project, &["plugin", "test", &wasm, "--events", "events.jsonl", "--params", r#"{"blockd": 1}"#]);
    assert_eq!(said.code, Some(1), "{said}");
    assert!(said.stdout.contains("unknown parameter"), "{said}");

    // A real session guarded by it: the README's command, from the project folder, against a server whose cwd and
    // data dir are elsewhere.
    let srv = server().await;
    let said = run(project, &bin(), &["run", "-f", "session.yaml", "-p", "push it"], Some(&srv.url));
    assert_eq!(said.code, Some(0), "{said}");
    assert!(
        said.stdout.contains(&format!("denied by policy '{snake}': `git push --force` is blocked in this session")),
        "{said}"
    );
    let outputs = tool_outputs(&the_session(project, &srv.url).await);
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert!(outputs[0].contains("blocked") && !outputs[0].contains("exit code"), "the echo never ran: {outputs:?}");
    assert!(outputs[1].contains("session.yaml"), "the ls ran in the project folder: {outputs:?}");
    srv
}

/// The only session on `server` and its log, as `omnigent sessions show ID --events` prints it.
async fn the_session(project: &Path, server: &str) -> Vec<Value> {
    let (_, list) = Api::new(server).get("/v1/sessions").await;
    let id = list["data"][0]["id"].as_str().expect("a session").to_string();
    let said = run(project, &bin(), &["sessions", "show", &id, "--events"], Some(server));
    assert_eq!(said.code, Some(0), "{said}");
    said.stdout.lines().map(|l| serde_json::from_str(l).expect("JSON lines")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_policy_goes_from_nothing_to_guarding_a_session() {
    let root = tempfile::tempdir().unwrap();
    let project = scaffold(root.path(), &["plugin", "new", "policy", "no-push"]);
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "README.md",
        "session.yaml",
        "events.jsonl",
        "vendor/omnigent-policy/wit/policy.wit",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }
    // Its own unit tests pass natively (the policy world imports nothing).
    let cargo = std::env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| "cargo".into());
    let said = run(&project, &cargo, &["test", "--quiet"], None);
    assert_eq!(said.code, Some(0), "{said}");
    assert!(said.stdout.contains("4 passed"), "{said}");
    build(&project, "no_push.wasm");
    let srv = check_test_and_run_policy(&project, "no_push").await;

    // Rebuilt, it guards the next session on the same server without a restart.
    let lib = project.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).unwrap().replace("is blocked in this session", "is refused (v2)");
    std::fs::write(&lib, source).unwrap();
    build(&project, "no_push.wasm");
    let said = run(&project, &bin(), &["run", "-f", "session.yaml", "-p", "push it"], Some(&srv.url));
    assert_eq!(said.code, Some(0), "{said}");
    assert!(said.stdout.contains("`git push --force` is refused (v2)"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_policy_goes_from_nothing_to_guarding_a_session() {
    let root = tempfile::tempdir().unwrap();
    let project = scaffold(root.path(), &["plugin", "new", "policy", "py-guard", "--lang", "python"]);
    let said = run(&project, Path::new("python3"), &["-m", "unittest", "-q"], None);
    assert_eq!(said.code, Some(0), "{said}");
    assert!(said.stderr.contains("Ran 4 tests") && said.stderr.contains("OK"), "{said}");
    build(&project, "py_guard.wasm");
    check_test_and_run_policy(&project, "py_guard").await;
}

/// A Python policy that raises, loops or allocates past its cap denies on the blocking phases (request, tool
/// call) and is ignored on the others, as a Rust one is; one that returns the wrong type is a failure too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_policy_that_misbehaves_denies_on_the_blocking_phases() {
    let root = tempfile::tempdir().unwrap();
    let project = scaffold(root.path(), &["plugin", "new", "policy", "unruly", "--lang", "python"]);
    std::fs::write(
        project.join("policy.py"),
        r#"from omnigent_policy import allow, params

NAME = "unruly"
DESCRIPTION = "misbehaves on purpose"


def evaluate(event):
    mode = params().get("mode")
    if mode == "raise":
        raise RuntimeError("boom")
    if mode == "loop":
        while True:
            pass
    if mode == "alloc":
        hoard = []
        while True:
            hoard.append(bytearray(8 << 20))
    if mode == "wrong":
        return "allow"
    return allow()
"#,
    )
    .unwrap();
    build(&project, "unruly.wasm");
    let verdicts = |mode: &str| {
        let params = format!(r#"{{"mode": "{mode}"}}"#);
        let said = omnigent(
            &project,
            &["plugin", "test", "dist/unruly.wasm", "--events", "events.jsonl", "--params", &params],
        );
        assert_eq!(said.code, Some(0), "{said}");
        let v = said.stdout.lines().filter(|l| l.starts_with("line ")).map(str::to_string).collect::<Vec<_>>();
        assert_eq!(v.len(), 6, "{mode}: {v:?}");
        v
    };
    for mode in ["raise", "loop", "alloc", "wrong"] {
        let v = verdicts(mode);
        assert!(v[0].contains("request → deny"), "{mode}: {v:?}");
        assert!(v[1].contains("tool_call:shell → deny"), "{mode}: {v:?}");
        assert!(v[2].contains("tool_result:shell → allow"), "{mode}: ignored on a non-blocking phase: {v:?}");
        assert!(v[5].contains("response → allow"), "{mode}: {v:?}");
        if mode == "raise" {
            assert!(v[0].contains("RuntimeError: boom"), "the author sees the exception: {v:?}");
        }
    }
    assert!(verdicts("fine").iter().all(|v| v.ends_with("→ allow")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_harness_goes_from_nothing_to_running_a_session() {
    let root = tempfile::tempdir().unwrap();
    let project = scaffold(root.path(), &["plugin", "new", "harness", "my-loop"]);
    build(&project, "my_loop.wasm");
    let said = omnigent(&project, &["plugin", "check", "dist/my_loop.wasm"]);
    assert_eq!(said.code, Some(0), "{said}");
    assert!(said.stdout.contains("world: omnigent:harness@0.1.0") && said.stdout.contains("loads on this host: yes"));

    let said = omnigent(&project, &["plugin", "test", "dist/my_loop.wasm", "--script", "script.jsonl"]);
    assert_eq!(said.code, Some(0), "{said}");
    let expected = [
        "model call 1: 1 messages, 1 tools",
        "  → tool call call_1_1 shell: {\"command\":\"ls\"}",
        "event harness.my_loop: {\"step\":1,\"tool_calls\":1}",
        "tool call_1_1 shell {\"command\":\"ls\"} → output: Cargo.toml README.md src",
        "model call 2: 3 messages, 1 tools",
        "log info: answered after 2 model calls",
        "turn completed: 2 model calls, 20 input / 10 output tokens",
    ];
    for line in expected {
        assert!(said.stdout.lines().any(|l| l == line), "{line}: {said}");
    }
    // A script that runs out of replies fails the turn, and says so.
    let short: String =
        std::fs::read_to_string(project.join("script.jsonl")).unwrap().lines().take(3).collect::<Vec<_>>().join("\n");
    std::fs::write(project.join("short.jsonl"), short).unwrap();
    let said = omnigent(&project, &["plugin", "test", "dist/my_loop.wasm", "--script", "short.jsonl"]);
    assert_eq!(said.code, Some(1), "{said}");
    assert!(
        said.stdout.contains("turn failed (llm_error): llm_error: the script has no reply for model call 2"),
        "{said}"
    );
    std::fs::write(project.join("bad.jsonl"), "{\"user\": \"hi\", \"model\": {}}\n").unwrap();
    let said = omnigent(&project, &["plugin", "test", "dist/my_loop.wasm", "--script", "bad.jsonl"]);
    assert_eq!(said.code, Some(2), "{said}");
    assert!(said.stdout.contains("bad.jsonl:1: a line holds exactly one of"), "{said}");

    // A real session on it, from the project folder.
    let srv = server().await;
    let said = run(&project, &bin(), &["run", "-f", "session.yaml", "-p", "what is here?"], Some(&srv.url));
    assert_eq!(said.code, Some(0), "{said}");
    assert!(said.stdout.contains("The listing is above."), "{said}");
    let events = the_session(&project, &srv.url).await;
    let outputs = tool_outputs(&events);
    assert!(outputs.len() == 1 && outputs[0].contains("session.yaml"), "{outputs:?}");
    let steps: Vec<&Value> = events.iter().filter(|e| e["type"] == "harness.my_loop").collect();
    assert_eq!(steps.len(), 2, "{events:?}");
    assert_eq!((&steps[1]["step"], &steps[1]["tool_calls"]), (&Value::from(2), &Value::from(0)), "{events:?}");
}

/// `plugin new` refuses a bad name, an existing folder, and a Python harness; `plugin build` says what it needs and
/// what is wrong with the author's code.
#[test]
fn the_kit_says_what_is_wrong_with_its_input() {
    let root = tempfile::tempdir().unwrap();
    let said = omnigent(root.path(), &["plugin", "new", "policy", "Bad Name"]);
    assert_eq!(said.code, Some(2), "{said}");
    assert!(said.stdout.contains("is not a project name here"), "{said}");
    let said = omnigent(root.path(), &["plugin", "new", "harness", "loop", "--lang", "python"]);
    assert_eq!(said.code, Some(2), "{said}");
    assert!(said.stdout.contains("harnesses are written in Rust here"), "{said}");
    std::fs::create_dir(root.path().join("taken")).unwrap();
    std::fs::write(root.path().join("taken/x"), "").unwrap();
    let said = omnigent(root.path(), &["plugin", "new", "policy", "taken"]);
    assert_eq!(said.code, Some(2), "{said}");
    assert!(said.stdout.contains("already exists"), "{said}");
    let said = omnigent(root.path(), &["plugin", "build", "taken"]);
    assert_eq!(said.code, Some(2), "{said}");
    assert!(said.stdout.contains("neither a Rust project (Cargo.toml) nor a Python policy (policy.py)"), "{said}");
    // A Python mistake is reported as Python's, where the author looks.
    let project = scaffold(root.path(), &["plugin", "new", "policy", "typo", "--lang", "python"]);
    let source = std::fs::read_to_string(project.join("policy.py")).unwrap();
    std::fs::write(project.join("policy.py"), source + "\ndef broken(event) return 1\n").unwrap();
    let said = omnigent(&project, &["plugin", "build"]);
    assert_eq!(said.code, Some(1), "{said}");
    assert!(said.stderr.contains("SyntaxError: expected ':' (policy.py, line"), "{said}");
    assert!(!said.stderr.contains("Stack backtrace"), "{said}");
    assert!(said.stdout.contains("componentize-py failed"), "{said}");
}

/// The compatibility rule (wit/README.md): a component built against an earlier 0.1.x WIT keeps working. The
/// fixtures are built from frozen copies of the WIT as released, not the live one, so the day the host moves on
/// this says whether their authors' components still load and run.
#[test]
fn components_built_for_the_released_wit_keep_working() {
    let guests = Path::new(omnigent_runtime::GUEST_DIR);
    let here = tempfile::tempdir().unwrap();
    let policy = guests.join("policy_0_1_0.wasm");
    let said = omnigent(here.path(), &["plugin", "check", policy.to_str().unwrap()]);
    assert_eq!(said.code, Some(0), "{said}");
    assert!(said.stdout.contains("world: omnigent:policy@0.1.0") && said.stdout.contains("name: frozen_0_1_0"));
    let events = here.path().join("events.jsonl");
    std::fs::write(
        &events,
        [
            r#"{"type":"response.output_item.done","item":{"type":"function_call","call_id":"c1","name":"frozen","arguments":"{}"}}"#,
            r#"{"type":"response.output_item.done","item":{"type":"function_call","call_id":"c2","name":"shell","arguments":"{}"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let said = omnigent(here.path(), &["plugin", "test", policy.to_str().unwrap(), "--events", "events.jsonl"]);
    assert_eq!(said.code, Some(0), "{said}");
    assert!(said.stdout.contains("line 1: tool_call:frozen → deny: frozen is denied by a 0.1.0 policy"), "{said}");
    assert!(said.stdout.contains("line 2: tool_call:shell → allow"), "{said}");
    assert!(said.stdout.contains(r#"state: {"frozen.seen":2}"#), "{said}");

    let harness = guests.join("harness_0_1_0.wasm");
    std::fs::write(here.path().join("script.jsonl"), "{\"user\": \"hi\"}\n{\"model\": {\"text\": \"hello\"}}\n")
        .unwrap();
    let said = omnigent(here.path(), &["plugin", "test", harness.to_str().unwrap(), "--script", "script.jsonl"]);
    assert_eq!(said.code, Some(0), "{said}");
    for line in ["log info: a 0.1.0 harness", "event harness.frozen: {\"version\": \"0.1.0\"}", "answer: 0.1.0: hello"]
    {
        assert!(said.stdout.lines().any(|l| l == line), "{line}: {said}");
    }
}
