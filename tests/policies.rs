//! Elicitation policies end to end: the real binary, real HTTP, the builtin policy components and the `agent`
//! harness, against the mock LLM vendor. Each test runs on SQLite and, when TEST_DATABASE_URL is set, Postgres.

use std::path::{Path, PathBuf};
use std::time::Duration;

use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, Frame, ServerProcess, Sse, TestDb, databases, free_port};
use serde_json::{Value, json};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnigent"))
}

/// A session YAML: the agent harness on the mock's OpenAI endpoint, the builtin shell tool, and `policies`.
fn yaml(mock: &MockLlm, cwd: &Path, policies: &str, extra_executor: &str) -> String {
    format!(
        "name: guarded\nexecutor:\n  harness: agent\n  model: gpt-test\n  provider: openai\n  \
         auth: {{type: api_key, api_key: k, base_url: \"{}\"}}\n{extra_executor}tools:\n  shell: {{type: builtin}}\n\
         os_env:\n  cwd: {}\npolicies:\n{policies}",
        mock.openai_base(),
        cwd.display()
    )
}

const ASK_OS: &str = "  ask_os:\n    type: function\n    handler: omnigent.policies.builtins.safety.ask_on_os_tools\n";

async fn create(api: &Api, text: &str, dir: &Path) -> String {
    let path = dir.join(format!("s-{}.yaml", rand::random::<u32>()));
    std::fs::write(&path, text).unwrap();
    let config = omnigent::config::SessionConfig::from_file(&path).unwrap();
    api.create(json!({"config": config.to_json()})).await
}

async fn open(srv: &ServerProcess, id: &str) -> Sse {
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", srv.url), &[]).await;
    sse.next().await.unwrap();
    sse
}

fn types(frames: &[Frame]) -> Vec<String> {
    frames.iter().map(|f| f.event.clone().unwrap_or_default()).collect()
}

/// A shell command that appends a line to `ran.log`, so the test can count how often the tool really ran.
fn touch(tag: &str) -> Reply {
    Reply::tool("shell", json!({"command": format!("echo {tag} >> ran.log")}))
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("ran.log")).map(|s| s.lines().count()).unwrap_or(0)
}

/// The model's script for a delegation: the parent delegates, the child runs the shell (asked), the child
/// answers, the parent answers.
fn delegation() -> Vec<Reply> {
    vec![
        Reply::tool("helper", json!({"task": "make the file"})),
        touch("child"),
        Reply::text("child done"),
        Reply::text("parent done"),
    ]
}

/// A parent whose only tool is a sub-agent with the shell; both under `ask_on_os_tools`.
fn delegating(mock: &MockLlm, cwd: &Path) -> String {
    yaml(mock, cwd, ASK_OS, "").replace(
        "tools:\n  shell: {type: builtin}\n",
        "tools:\n  helper:\n    type: agent\n    description: does things\n    tools: {shell: {type: builtin}}\n",
    )
}

async fn server(db: &TestDb, work: &Path) -> ServerProcess {
    ServerProcess::start(&bin(), &omnigent_testkit::data_dir_in(work), &db.url, free_port(), &[]).await
}

async fn resolve(api: &Api, id: &str, eid: &str, action: &str) -> (u16, Value) {
    api.post(&format!("/v1/sessions/{id}/elicitations/{eid}/resolve"), json!({"action": action})).await
}

/// The tool result the model read on its last request.
fn last_tool_message(mock: &MockLlm) -> String {
    let reqs = mock.requests();
    let body = &reqs.last().unwrap().body;
    let msg =
        body["messages"].as_array().unwrap().iter().rev().find(|m| m["role"] == "tool").cloned().unwrap_or_default();
    msg["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn ask_pauses_the_session_accept_runs_the_tool_once_and_decline_never_runs_it() {
    for db in databases().await {
        let work = tempfile::tempdir().unwrap();
        let mock = MockLlm::start(vec![touch("a"), Reply::text("done"), touch("b"), Reply::text("as you wish")]).await;
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let id = create(&api, &yaml(&mock, work.path(), ASK_OS, ""), work.path()).await;
        let mut sse = open(&srv, &id).await;
        let label = db.label;

        // Ask → paused, with the request persisted, in the snapshot and on the stream.
        api.message(&id, "make a file").await;
        let frames = sse.until("response.elicitation_request").await;
        let request = frames.last().unwrap().json();
        let eid = request["elicitation_id"].as_str().unwrap().to_string();
        assert!(eid.starts_with("elicit_"), "{label}: {request}");
        assert_eq!(request["method"], "elicitation/create");
        assert_eq!(request["params"]["policy_name"], "ask_os");
        assert_eq!(request["params"]["phase"], "tool_call");
        assert!(request["params"]["content_preview"].as_str().unwrap().contains("echo a"), "{request}");
        assert!(request["params"]["message"].as_str().unwrap().contains("shell"));
        let status = sse.until("session.status").await.last().unwrap().json();
        assert_eq!(status["status"], "paused", "{label}");
        let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
        assert_eq!(snap["status"], "paused");
        assert_eq!(snap["pending_elicitations"][0]["elicitation_id"], eid.as_str());
        let (_, listed) = api.get("/v1/sessions").await;
        assert_eq!(listed["data"][0]["pending_elicitations_count"], 1, "{label}");
        let (_, one) = api.get(&format!("/v1/sessions/{id}/elicitations/{eid}")).await;
        assert_eq!(one["status"], "pending");
        assert_eq!(runs(work.path()), 0, "{label}: nothing runs before the answer");

        // Bad answers are refused and change nothing.
        let (code, body) =
            api.post(&format!("/v1/sessions/{id}/elicitations/{eid}/resolve"), json!({"action": "maybe"})).await;
        assert_eq!(code, 400, "{body}");
        let (code, _) = resolve(&api, &id, "elicit_nope", "accept").await;
        assert_eq!(code, 404);

        // Accept → the tool runs once and the turn completes.
        let (code, ack) = resolve(&api, &id, &eid, "accept").await;
        assert_eq!(code, 202, "{ack}");
        let frames = sse.until("response.completed").await;
        assert!(types(&frames).contains(&"response.elicitation_resolved".to_string()), "{label}: {:?}", types(&frames));
        assert_eq!(sse.statuses_until_settled().await, vec!["idle"]);
        assert_eq!(runs(work.path()), 1, "{label}");
        let (code, _) = resolve(&api, &id, &eid, "accept").await;
        assert_eq!(code, 404, "{label}: an answered elicitation cannot be answered again");
        let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
        assert_eq!(snap["pending_elicitations"], json!([]));

        // Decline → the tool never runs; the model reads why; response.policy_denied is emitted.
        api.message(&id, "another one").await;
        let request = sse.until("response.elicitation_request").await.last().unwrap().json();
        let eid = request["elicitation_id"].as_str().unwrap().to_string();
        resolve(&api, &id, &eid, "decline").await;
        let frames = sse.until("response.completed").await;
        let denied =
            frames.iter().find(|f| f.event.as_deref() == Some("response.policy_denied")).expect("policy_denied").json();
        assert_eq!(denied["phase"], "tool_call");
        assert_eq!(runs(work.path()), 1, "{label}: the declined call did not run");
        assert!(last_tool_message(&mock).contains("declined"), "{label}: {}", last_tool_message(&mock));
        assert_eq!(mock.requests().len(), 4);
    }
}

#[tokio::test]
async fn deny_short_circuits_the_chain_and_tool_limits_hold_across_turns() {
    for db in databases().await {
        let work = tempfile::tempdir().unwrap();
        // A deny list before an asking policy: the ask is never reached.
        let policies = "  no_shell: {handler: tool_filter, factory_params: {deny: [shell]}}\n".to_string() + ASK_OS;
        let mock = MockLlm::start(vec![touch("x"), Reply::text("ok")]).await;
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let id = create(&api, &yaml(&mock, work.path(), &policies, ""), work.path()).await;
        let mut sse = open(&srv, &id).await;
        api.message(&id, "try").await;
        let frames = sse.until("response.completed").await;
        let seen = types(&frames);
        assert!(!seen.contains(&"response.elicitation_request".to_string()), "{}: {seen:?}", db.label);
        let denied = frames.iter().find(|f| f.event.as_deref() == Some("response.policy_denied")).unwrap().json();
        assert_eq!(denied["policy_name"], "no_shell");
        assert_eq!(runs(work.path()), 0);
        assert!(last_tool_message(&mock).contains("deny list"), "{}", last_tool_message(&mock));

        // max_tool_calls: the limit counts in session state, across turns.
        let mock = MockLlm::start(vec![touch("1"), Reply::text("one"), touch("2"), Reply::text("two")]).await;
        let limit = "  budget: {handler: omnigent.policies.builtins.safety.max_tool_calls_per_session, factory_params: {limit: 1}}\n";
        let id = create(&api, &yaml(&mock, work.path(), limit, ""), work.path()).await;
        let mut sse = open(&srv, &id).await;
        api.message(&id, "first").await;
        sse.until("response.completed").await;
        api.message(&id, "second").await;
        sse.until("response.completed").await;
        assert_eq!(runs(work.path()), 1, "{}: the second call was over the limit", db.label);
        assert!(last_tool_message(&mock).contains("1 tool calls"), "{}", last_tool_message(&mock));
    }
}

#[tokio::test]
async fn cost_budget_asks_at_its_threshold_then_denies_at_the_limit_across_turns() {
    for db in databases().await {
        let work = tempfile::tempdir().unwrap();
        // Each mock answer is 11 + 7 tokens; at $10,000 per million that is $0.18 a turn.
        let pricing = "  pricing: {input_usd_per_mtok: 10000, output_usd_per_mtok: 10000}\n";
        let policies = "  spend:\n    handler: omnigent.policies.builtins.cost.cost_budget\n    factory_params: {max_cost_usd: 0.5, ask_thresholds_usd: [0.3]}\n    on: [request]\n";
        let mock = MockLlm::start((0..4).map(|i| Reply::text(&format!("answer {i}"))).collect()).await;
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let id = create(&api, &yaml(&mock, work.path(), policies, pricing), work.path()).await;
        let mut sse = open(&srv, &id).await;
        for turn in 0..2 {
            api.message(&id, &format!("turn {turn}")).await;
            let frames = sse.until("response.completed").await;
            assert!(!types(&frames).contains(&"response.elicitation_request".to_string()), "{}: turn {turn}", db.label);
        }
        let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
        let spent = snap["usage_by_model"]["gpt-test"]["total_cost_usd"].as_f64().unwrap();
        assert!((spent - 0.36).abs() < 1e-9, "{}: {snap}", db.label);
        // Past $0.30: ask, and once accepted the turn runs.
        api.message(&id, "turn 2").await;
        let request = sse.until("response.elicitation_request").await.last().unwrap().json();
        assert_eq!(request["params"]["phase"], "request");
        assert!(request["params"]["message"].as_str().unwrap().contains("0.30"), "{request}");
        resolve(&api, &id, request["elicitation_id"].as_str().unwrap(), "accept").await;
        sse.until("response.completed").await;
        // Past $0.50: denied before the model is called.
        let before = mock.requests().len();
        api.message(&id, "turn 3").await;
        let frames = sse.until("response.failed").await;
        let failed = frames.last().unwrap().json();
        assert_eq!(failed["response"]["error"]["code"], "policy_denied", "{}: {failed}", db.label);
        assert_eq!(failed["source"], "execution", "{}: where it failed, as Omnigent's SDK reads it", db.label);
        assert!(types(&frames).contains(&"response.policy_denied".to_string()));
        assert_eq!(mock.requests().len(), before, "{}: no model call after the budget is spent", db.label);
        let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
        assert_eq!(snap["last_task_error"]["code"], "policy_denied");
    }
}

#[tokio::test]
async fn hostile_policies_fail_closed_and_the_server_carries_on() {
    let db = omnigent_testkit::sqlite_db();
    let work = tempfile::tempdir().unwrap();
    let hostile = format!("{}/hostile_policy.wasm", omnigent_runtime::GUEST_DIR);
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    for mode in ["loop", "alloc", "trap", "garbage"] {
        let mock = MockLlm::start(vec![touch(mode), Reply::text("fine")]).await;
        let policies = format!(
            "  evil:\n    component: {hostile}\n    factory_params: {{mode: {mode}}}\n    timeout_ms: 300\n    memory_mb: 16\n    on: [tool_call]\n"
        );
        let id = create(&api, &yaml(&mock, work.path(), &policies, ""), work.path()).await;
        let mut sse = open(&srv, &id).await;
        api.message(&id, "go").await;
        let frames = sse.until("response.completed").await;
        let denied = frames
            .iter()
            .find(|f| f.event.as_deref() == Some("response.policy_denied"))
            .unwrap_or_else(|| panic!("{mode}: {:?}", types(&frames)))
            .json();
        assert!(denied["reason"].as_str().unwrap().contains("failed"), "{mode}: {denied}");
        assert_eq!(runs(work.path()), 0, "{mode}: a failing policy denies the tool call");
        assert!(last_tool_message(&mock).contains("'evil' failed"), "{mode}: {}", last_tool_message(&mock));
    }
    let (code, health) = api.get("/health").await;
    assert_eq!(code, 200, "{health}");
    // A policy component with bad parameters is refused when the session is created.
    let mock = MockLlm::start(vec![]).await;
    let config_path = work.path().join("bad.yaml");
    std::fs::write(
        &config_path,
        yaml(&mock, work.path(), "  spend: {handler: cost_budget, factory_params: {max_cost: 1}}\n", ""),
    )
    .unwrap();
    let config = omnigent::config::SessionConfig::from_file(&config_path).unwrap();
    let (code, body) = api.post("/v1/sessions", json!({"config": config.to_json()})).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("unknown parameter 'max_cost'"), "{body}");
}

#[tokio::test]
async fn session_policies_over_rest_and_the_registry() {
    for db in databases().await {
        let work = tempfile::tempdir().unwrap();
        let mock = MockLlm::start(vec![touch("r"), Reply::text("ok")]).await;
        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let (code, reg) = api.get("/v1/policy-registry").await;
        assert_eq!(code, 200);
        let handlers: Vec<&str> =
            reg["data"].as_array().unwrap().iter().map(|p| p["handler"].as_str().unwrap()).collect();
        assert!(handlers.contains(&"omnigent.policies.builtins.cost.cost_budget"), "{reg}");
        assert_eq!(handlers.len(), 5);
        let cost = reg["data"].as_array().unwrap().iter().find(|p| p["component"] == "cost_budget").unwrap();
        assert_eq!(cost["params_schema"]["required"][0], "max_cost_usd");

        let id = create(
            &api,
            &yaml(&mock, work.path(), "  limit: {handler: max_tool_calls, factory_params: {limit: 50}}\n", ""),
            work.path(),
        )
        .await;
        let path = format!("/v1/sessions/{id}/policies");
        let (code, body) = api.post(&path, json!({"name": "ask", "handler": "nope"})).await;
        assert_eq!(code, 400, "{body}");
        let (code, body) =
            api.post(&path, json!({"name": "ask", "handler": "detect_loop", "factory_params": {"threshold": 1}})).await;
        assert_eq!(code, 400, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("threshold"), "{body}");
        let (code, created) = api.post(&path, json!({"name": "ask", "type": "python", "handler": "omnigent.policies.builtins.safety.ask_on_os_tools"})).await;
        assert_eq!(code, 200, "{created}");
        let pid = created["id"].as_str().unwrap().to_string();
        let (code, _) = api.post(&path, json!({"name": "ask", "handler": "ask_on_os_tools"})).await;
        assert_eq!(code, 409);
        let (_, listed) = api.get(&path).await;
        let sources: Vec<&str> =
            listed["data"].as_array().unwrap().iter().map(|p| p["source"].as_str().unwrap()).collect();
        assert_eq!(sources, vec!["session", "spec"], "{}: {listed}", db.label);

        // The session's own policy judges the next turn.
        let mut sse = open(&srv, &id).await;
        api.message(&id, "go").await;
        let request = sse.until("response.elicitation_request").await.last().unwrap().json();
        assert_eq!(request["params"]["policy_name"], "ask");
        resolve(&api, &id, request["elicitation_id"].as_str().unwrap(), "accept").await;
        sse.until("response.completed").await;
        assert_eq!(runs(work.path()), 1);

        let (code, patched) =
            api.call(reqwest::Method::PATCH, &format!("{path}/{pid}"), Some(json!({"enabled": false}))).await;
        assert_eq!(code, 200, "{patched}");
        assert_eq!(patched["enabled"], false);
        let (code, _) = api.call(reqwest::Method::PATCH, &format!("{path}/{pid}"), Some(json!({"type": "url"}))).await;
        assert_eq!(code, 400, "type is immutable");
        let (code, _) = api.call(reqwest::Method::DELETE, &format!("{path}/{pid}"), None).await;
        assert_eq!(code, 200);
        let (code, again) = api.call(reqwest::Method::DELETE, &format!("{path}/{pid}"), None).await;
        assert_eq!((code, again["deleted"].clone()), (200, json!(true)), "deleting twice is fine");
        let (code, _) = api.get(&format!("{path}/{pid}")).await;
        assert_eq!(code, 404);
        let (code, _) = api.get("/v1/sessions/conv_00000000000000000000000000000000/policies").await;
        assert_eq!(code, 404);
    }
}

#[tokio::test]
async fn a_pending_approval_survives_sigkill_and_the_turn_finishes_without_repeating_a_call() {
    for db in databases().await {
        let work = tempfile::tempdir().unwrap();
        let mock = MockLlm::start(vec![touch("k"), Reply::text("after the restart")]).await;
        let mut srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let id = create(&api, &yaml(&mock, work.path(), ASK_OS, ""), work.path()).await;
        let mut sse = open(&srv, &id).await;
        api.message(&id, "make a file").await;
        let request = sse.until("response.elicitation_request").await.last().unwrap().json();
        let eid = request["elicitation_id"].as_str().unwrap().to_string();
        sse.until("session.status").await;
        drop(sse);
        srv.kill9();
        assert_eq!(mock.requests().len(), 1);

        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
        assert_eq!(snap["status"], "paused", "{}: {snap}", db.label);
        assert_eq!(snap["pending_elicitations"][0]["elicitation_id"], eid.as_str(), "{}", db.label);
        // A new subscriber (no cursor) sees the request again, live.
        let mut sse = open(&srv, &id).await;
        let again = sse.until("response.elicitation_request").await.last().unwrap().json();
        assert_eq!(again["elicitation_id"], eid.as_str());
        let (code, body) = resolve(&api, &id, &eid, "accept").await;
        assert_eq!(code, 202, "{body}");
        sse.until("response.completed").await;
        assert_eq!(sse.statuses_until_settled().await, vec!["idle"]);
        assert_eq!(runs(work.path()), 1, "{}: the tool ran once", db.label);
        assert_eq!(mock.requests().len(), 2, "{}: the first model call was not repeated", db.label);
        let (_, items) = api.get(&format!("/v1/sessions/{id}/items")).await;
        let kinds: Vec<&str> = items["data"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, vec!["message", "function_call", "function_call_output", "message"], "{}", db.label);
    }
}

#[tokio::test]
async fn a_turn_killed_mid_flight_resumes_after_a_restart_without_rerunning_finished_steps() {
    for db in databases().await {
        let work = tempfile::tempdir().unwrap();
        let slow =
            Reply::Slow { chunks: (0..200).map(|i| format!("w{i} ")).collect(), delay: Duration::from_millis(50) };
        let mock = MockLlm::start(vec![touch("once"), slow, Reply::text("finished after the restart")]).await;
        let mut srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let id = create(&api, &yaml(&mock, work.path(), "  {}\n".trim_end(), ""), work.path()).await;
        let mut sse = open(&srv, &id).await;
        api.message(&id, "go").await;
        // The tool ran and its result is recorded; the second model call is streaming when the server dies.
        sse.until("response.output_text.delta").await;
        srv.kill9();
        assert_eq!(runs(work.path()), 1);

        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream?after=0", srv.url), &[]).await;
        let frames = sse.until("response.completed").await;
        assert!(
            frames.iter().any(|f| f.event.as_deref() == Some("response.output_item.done")
                && f.data.contains("finished after the restart")),
            "{}",
            db.label
        );
        let (_, snap) = api.get(&format!("/v1/sessions/{id}")).await;
        assert_eq!(snap["status"], "idle", "{}: {snap}", db.label);
        assert_eq!(runs(work.path()), 1, "{}: the finished tool call was not run again", db.label);
        // Three model requests: the first (recorded, not repeated), the one cut by the kill, the one after.
        assert_eq!(mock.requests().len(), 3, "{}", db.label);
        let (_, items) = api.get(&format!("/v1/sessions/{id}/items")).await;
        let outputs = items["data"].as_array().unwrap().iter().filter(|i| i["type"] == "function_call_output").count();
        assert_eq!(outputs, 1, "{}", db.label);
    }
}

#[tokio::test]
async fn a_sub_agents_approval_shows_on_the_parents_stream_and_can_be_answered_there() {
    let db = omnigent_testkit::sqlite_db();
    let work = tempfile::tempdir().unwrap();
    let mock = MockLlm::start(delegation()).await;
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let id = create(&api, &delegating(&mock, work.path()), work.path()).await;
    let mut sse = open(&srv, &id).await;
    api.message(&id, "delegate it").await;
    let request = sse.until("response.elicitation_request").await.last().unwrap().json();
    let child = request["params"]["target_session_id"].as_str().unwrap().to_string();
    assert_ne!(child, id, "the request names the child session");
    let eid = request["elicitation_id"].as_str().unwrap();
    let (code, body) = resolve(&api, &id, eid, "accept").await;
    assert_eq!(code, 202, "answered through the parent: {body}");
    sse.until("response.completed").await;
    assert_eq!(runs(work.path()), 1);
    let (_, snap) = api.get(&format!("/v1/sessions/{child}")).await;
    assert_eq!(snap["pending_elicitations"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_answers_approvals_inline_in_run_and_attach() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let db = omnigent_testkit::sqlite_db();
    let work = tempfile::tempdir().unwrap();
    let mock = MockLlm::start(vec![touch("run"), Reply::text("ran it"), touch("no"), Reply::text("skipped it")]).await;
    let srv = server(&db, work.path()).await;
    let file = work.path().join("guarded.yaml");
    std::fs::write(&file, yaml(&mock, work.path(), ASK_OS, "")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let run = |answer: &'static str| {
        let mut child = omnigent_testkit::cli(&bin(), &srv.url, data.path())
            .args(["run", "-f"])
            .arg(&file)
            .args(["-p", "do it"])
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        async move {
            stdin.write_all(answer.as_bytes()).await.unwrap();
            drop(stdin);
            tokio::time::timeout(omnigent_testkit::WAIT * 2, child.wait_with_output()).await.unwrap().unwrap()
        }
    };
    let out = run("y\n").await;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("allow? [y/n]") && stderr.contains("policy ask_os"), "{stderr}");
    assert_eq!(runs(work.path()), 1);
    let out = run("maybe\nn\n").await;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("please answer y or n") && stderr.contains("(denied:"), "{stderr}");
    assert_eq!(runs(work.path()), 1, "declined: nothing ran");

    // attach: a teammate's turn asks; the attached terminal answers it.
    let mock = MockLlm::start(vec![touch("attach"), Reply::text("attached and ran")]).await;
    let api = Api::new(srv.url.clone());
    let id = create(&api, &yaml(&mock, work.path(), ASK_OS, ""), work.path()).await;
    let mut child = omnigent_testkit::cli(&bin(), &srv.url, data.path()).args(["attach", &id]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut errs = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let wait_for = async |errs: &mut tokio::io::Lines<_>, needle: &str| {
        tokio::time::timeout(omnigent_testkit::WAIT, async {
            while let Ok(Some(line)) = errs.next_line().await {
                if line.contains(needle) {
                    return;
                }
            }
            panic!("attach ended before printing {needle}");
        })
        .await
        .unwrap_or_else(|_| panic!("attach never printed {needle}"))
    };
    wait_for(&mut errs, "live:").await;
    let mut sse = open(&srv, &id).await;
    api.message(&id, "from the teammate").await;
    wait_for(&mut errs, "policy ask_os").await;
    stdin.write_all(b"y\n").await.unwrap();
    sse.until("response.completed").await;
    assert_eq!(runs(work.path()), 2, "the attached terminal's accept ran the tool");
    drop(stdin);
    let status = tokio::time::timeout(omnigent_testkit::WAIT, child.wait()).await.unwrap().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn an_unanswered_ask_is_declined_at_its_timeout() {
    let db = omnigent_testkit::sqlite_db();
    let work = tempfile::tempdir().unwrap();
    let mock = MockLlm::start(vec![touch("late"), Reply::text("gave up")]).await;
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let policies = "  ask_os: {handler: ask_on_os_tools, ask_timeout: 1}\n";
    let id = create(&api, &yaml(&mock, work.path(), policies, ""), work.path()).await;
    let mut sse = open(&srv, &id).await;
    api.message(&id, "go").await;
    let frames = sse.until("response.completed").await;
    let resolved = frames.iter().find(|f| f.event.as_deref() == Some("response.elicitation_resolved")).unwrap().json();
    assert_eq!(resolved["action"], "cancel");
    assert_eq!(resolved["content"]["reason"], "timeout");
    assert_eq!(runs(work.path()), 0);
    assert!(last_tool_message(&mock).contains("timed out"), "{}", last_tool_message(&mock));
}

#[tokio::test]
async fn server_wide_policies_come_from_a_config_file_and_judge_every_session_last() {
    let db = omnigent_testkit::sqlite_db();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("server.yaml");
    std::fs::write(&file, "policies:\n  house_rules:\n    handler: tool_filter\n    factory_params: {deny: [shell], reason: no shells on this server}\n").unwrap();
    let mock = MockLlm::start(vec![touch("srv"), Reply::text("ok")]).await;
    let srv = ServerProcess::start(
        &bin(),
        &omnigent_testkit::data_dir_in(work.path()),
        &db.url,
        free_port(),
        &["--policies", file.to_str().unwrap()],
    )
    .await;
    let api = Api::new(srv.url.clone());
    let id = create(&api, &yaml(&mock, work.path(), "  {}\n".trim_end(), ""), work.path()).await;
    let (_, listed) = api.get(&format!("/v1/sessions/{id}/policies")).await;
    assert_eq!(listed["data"][0]["source"], "admin", "{listed}");
    let (code, defaults) = api.get("/v1/policies").await;
    assert_eq!(code, 200);
    assert_eq!(defaults["data"][0]["name"], "house_rules", "{defaults}");
    assert_eq!(defaults["data"][0]["object"], "default_policy");
    let mut sse = open(&srv, &id).await;
    api.message(&id, "go").await;
    sse.until("response.completed").await;
    assert_eq!(runs(work.path()), 0);
    assert!(last_tool_message(&mock).contains("no shells on this server"), "{}", last_tool_message(&mock));

    // A bad file stops the server before it listens, with the position of the mistake.
    let db = omnigent_testkit::sqlite_db();
    let start = || {
        std::process::Command::new(bin())
            .args(["server", "--bind", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
            .arg(work.path().join("other"))
            .args(["--database-url", &db.url, "--policies"])
            .arg(&file)
            .output()
            .unwrap()
    };
    std::fs::write(&file, "policies:\n  x:\n    hanlder: tool_filter\n").unwrap();
    let out = start();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("server.yaml:3:5") && stderr.contains("hanlder"), "{stderr}");
    // So do parameters the component refuses.
    std::fs::write(&file, "policies:\n  x: {handler: tool_filter, factory_params: {nope: 1}}\n").unwrap();
    let out = start();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown parameter 'nope'"), "{stderr}");
}

#[tokio::test]
async fn waiting_for_a_human_does_not_count_against_the_turn_deadline() {
    let db = omnigent_testkit::sqlite_db();
    let work = tempfile::tempdir().unwrap();
    let mock = MockLlm::start(vec![touch("slow human"), Reply::text("worth the wait")]).await;
    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let id = create(&api, &yaml(&mock, work.path(), ASK_OS, "  turn_timeout_s: 1\n"), work.path()).await;
    let mut sse = open(&srv, &id).await;
    api.message(&id, "go").await;
    let request = sse.until("response.elicitation_request").await.last().unwrap().json();
    // Twice the turn's whole deadline passes while the question waits.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    resolve(&api, &id, request["elicitation_id"].as_str().unwrap(), "accept").await;
    let frames = sse.until("response.completed").await;
    assert!(!types(&frames).contains(&"response.failed".to_string()), "{:?}", types(&frames));
    assert_eq!(runs(work.path()), 1);
}

#[tokio::test]
async fn a_parent_and_its_paused_sub_agent_both_survive_sigkill_and_the_answer_arrives_once() {
    for db in databases().await {
        let work = tempfile::tempdir().unwrap();
        let mock = MockLlm::start(delegation()).await;
        let mut srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let id = create(&api, &delegating(&mock, work.path()), work.path()).await;
        let mut sse = open(&srv, &id).await;
        api.message(&id, "delegate it").await;
        let request = sse.until("response.elicitation_request").await.last().unwrap().json();
        let child = request["params"]["target_session_id"].as_str().unwrap().to_string();
        let eid = request["elicitation_id"].as_str().unwrap().to_string();
        drop(sse);
        srv.kill9();
        assert_eq!(mock.requests().len(), 2);

        let srv = server(&db, work.path()).await;
        let api = Api::new(srv.url.clone());
        let (_, snap) = api.get(&format!("/v1/sessions/{child}")).await;
        assert_eq!(snap["status"], "paused", "{}: {snap}", db.label);
        let mut sse = open(&srv, &id).await;
        let (code, body) = resolve(&api, &id, &eid, "accept").await;
        assert_eq!(code, 202, "{}: {body}", db.label);
        let frames = sse.until("response.completed").await;
        let outputs: Vec<Value> = frames
            .iter()
            .filter(|f| f.event.as_deref() == Some("response.output_item.done"))
            .map(|f| f.json()["item"].clone())
            .filter(|i| i["type"] == "function_call_output")
            .collect();
        assert_eq!(outputs.len(), 1, "{}: the child's answer arrived once: {outputs:?}", db.label);
        assert_eq!(outputs[0]["output"], "child done");
        assert_eq!(runs(work.path()), 1);
        assert_eq!(mock.requests().len(), 4, "{}: no model call was repeated", db.label);
        let (_, children) = api.get(&format!("/v1/sessions/{id}/child_sessions")).await;
        assert_eq!(children["data"].as_array().unwrap().len(), 1, "{}", db.label);
    }
}

#[tokio::test]
async fn a_client_tool_call_outlives_a_restart_and_its_output_completes_the_turn_once() {
    let db = omnigent_testkit::sqlite_db();
    let work = tempfile::tempdir().unwrap();
    let mock = MockLlm::start(vec![Reply::tool("open_editor", json!({"path": "a.rs"})), Reply::text("opened")]).await;
    let mut srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let text = yaml(&mock, work.path(), "  {}\n".trim_end(), "").replace(
        "tools:\n  shell: {type: builtin}\n",
        "tools:\n  open_editor: {type: function, runtime: client, description: open a file}\n",
    );
    let id = create(&api, &text, work.path()).await;
    let mut sse = open(&srv, &id).await;
    api.message(&id, "open it").await;
    let frames = sse.until("response.output_item.done").await;
    let call = frames.last().unwrap().json()["item"].clone();
    assert_eq!(call["status"], "action_required", "{call}");
    drop(sse);
    srv.kill9();

    let srv = server(&db, work.path()).await;
    let api = Api::new(srv.url.clone());
    let mut sse = open(&srv, &id).await;
    let (code, ack) = api
        .post(&format!("/v1/sessions/{id}/events"), json!({"type": "function_call_output", "data": {"call_id": call["call_id"], "output": "done in the editor"}}))
        .await;
    assert_eq!(code, 202, "{ack}");
    sse.until("response.completed").await;
    assert_eq!(mock.requests().len(), 2, "the first model call was not repeated");
    assert!(last_tool_message(&mock).contains("done in the editor"));
    let (_, items) = api.get(&format!("/v1/sessions/{id}/items")).await;
    let calls: Vec<&Value> =
        items["data"].as_array().unwrap().iter().filter(|i| i["type"] == "function_call").collect();
    assert_eq!(calls.len(), 1, "{items}");
    assert_eq!(calls[0]["status"], "completed");
}
