//! Several `omnigent server` replicas on one Postgres database: any replica answers any route for any session,
//! streams on every replica carry the same log, and a replica's death moves its sessions (and their turns) to the
//! others. Real processes, a real database, the mock LLM vendor. Postgres only: without TEST_DATABASE_URL these
//! tests say so and pass.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, Frame, ServerProcess, Sse, TestDb, free_port, postgres_db};
use serde_json::{Value, json};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_omnigent"))
}

/// A fresh Postgres schema, or None (the test is skipped) without TEST_DATABASE_URL.
async fn database(test: &str) -> Option<TestDb> {
    let db = postgres_db().await;
    if db.is_none() {
        eprintln!("{test}: skipped, replicas need Postgres (set TEST_DATABASE_URL)");
    }
    db
}

/// `n` replicas on `db`, each with its own data dir under `work`.
async fn replicas(db: &TestDb, work: &Path, n: usize) -> Vec<ServerProcess> {
    let mut out = Vec::new();
    for i in 0..n {
        let data = work.join(format!(".replica-{i}"));
        std::fs::create_dir_all(&data).unwrap();
        out.push(ServerProcess::start(&bin(), &data, &db.url, free_port(), &[]).await);
    }
    out
}

/// A session config on the mock's OpenAI endpoint with the shell tool and `policies`.
fn config(mock: &MockLlm, cwd: &Path, policies: &str) -> Value {
    let text = format!(
        "name: shared\nexecutor:\n  harness: agent\n  model: gpt-test\n  provider: openai\n  \
         auth: {{type: api_key, api_key: k, base_url: \"{}\"}}\ntools:\n  shell: {{type: builtin}}\n\
         os_env:\n  cwd: {}\npolicies:\n{policies}",
        mock.openai_base(),
        cwd.display()
    );
    let path = cwd.join(format!("s-{}.yaml", rand::random::<u32>()));
    std::fs::write(&path, text).unwrap();
    omnigent::config::SessionConfig::from_file(&path).unwrap().to_json()
}

const ASK_OS: &str = "  ask_os:\n    type: function\n    handler: omnigent.policies.builtins.safety.ask_on_os_tools\n";
const NO_POLICIES: &str = "  {}\n";

/// A shell command that appends a line to `ran.log`, so the test can count how often the tool really ran.
fn touch(tag: &str) -> Reply {
    Reply::tool("shell", json!({"command": format!("echo {tag} >> ran.log")}))
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("ran.log")).map(|s| s.lines().count()).unwrap_or(0)
}

/// Opens a stream replaying from the start.
async fn stream(server: &ServerProcess, id: &str) -> Sse {
    Sse::open(&format!("{}/v1/sessions/{id}/stream", server.url), &[("Last-Event-ID", "0")]).await
}

/// Reads a stream through event `head`, checking every event arrives once and in order.
async fn read_through(sse: &mut Sse, head: i64, label: &str) -> Vec<Frame> {
    let mut frames: Vec<Frame> = Vec::new();
    while frames.last().and_then(Frame::seq).is_none_or(|s| s < head) {
        let frame = sse.next_event().await.unwrap_or_else(|| panic!("{label}: the stream ended early"));
        let Some(seq) = frame.seq() else { continue };
        let expected = frames.last().and_then(Frame::seq).unwrap_or(0) + 1;
        assert_eq!(seq, expected, "{label}: an event missing or repeated");
        frames.push(frame);
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_replica_serves_any_session_and_every_stream_carries_the_same_log() {
    let Some(db) = database("any_replica_serves_any_session").await else { return };
    let work = tempfile::tempdir().unwrap();
    let mock = MockLlm::start((0..6).map(|i| Reply::text(&format!("answer {i}"))).collect()).await;
    let servers = replicas(&db, work.path(), 3).await;
    let apis: Vec<Api> = servers.iter().map(|s| Api::new(s.url.clone())).collect();

    // The list feed of one replica announces what the others do.
    let mut feed = Sse::open(&format!("{}/v1/sessions/feed", servers[1].url), &[]).await;
    assert_eq!(feed.next().await.unwrap().event.as_deref(), Some("feed.ready"));
    let id = apis[0].create(json!({"config": config(&mock, work.path(), NO_POLICIES)})).await;
    let created = feed.next_event().await.unwrap().json();
    assert_eq!(created["id"], id.as_str(), "{created}");
    let mut streams = Vec::new();
    for server in &servers {
        streams.push(stream(server, &id).await);
    }
    // Turns posted round-robin through every replica: each waits for the one before, so there are six.
    for i in 0..6 {
        let api = &apis[i % 3];
        api.message(&id, &format!("question {i}")).await;
        let other = &apis[(i + 1) % 3];
        loop {
            let (_, snap) = other.get(&format!("/v1/sessions/{id}")).await;
            let (_, items) = other.get(&format!("/v1/sessions/{id}/items?limit=100")).await;
            if snap["status"] == "idle" && items["data"].as_array().unwrap().len() == 2 * (i + 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Metadata through a third replica, read on the first.
    let (code, patched) =
        apis[2].call(reqwest::Method::PATCH, &format!("/v1/sessions/{id}"), Some(json!({"title": "shared"}))).await;
    assert_eq!(code, 200, "{patched}");
    let (_, snap) = apis[0].get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["title"], "shared");
    loop {
        let summary = feed.next_event().await.unwrap().json();
        if summary["id"] == id.as_str() && summary["title"] == "shared" {
            break;
        }
    }
    let head = snap["last_seq"].as_i64().unwrap();
    assert_eq!(mock.requests().len(), 6, "one model call per turn");

    // Every replica's stream: the whole log, in order, once — and the same log.
    let mut logs = Vec::new();
    for (i, sse) in streams.iter_mut().enumerate() {
        let frames = read_through(sse, head, &format!("replica {i}")).await;
        logs.push(frames.iter().map(|f| (f.seq(), f.event.clone(), f.data.clone())).collect::<Vec<_>>());
    }
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[0], logs[2]);
    let (_, items) = apis[1].get(&format!("/v1/sessions/{id}/items?limit=100")).await;
    assert_eq!(items["data"].as_array().unwrap().len(), 12, "six questions and six answers: {items}");

    // Three replicas race to write one idle session: every input lands once, in one gap-free log.
    let raced = apis[1].create(json!({})).await;
    let mut posts = Vec::new();
    for i in 0..30 {
        let api = apis[i % 3].clone();
        let raced = raced.clone();
        posts.push(tokio::spawn(async move {
            let body = json!({"type": "message", "data": {"content": format!("racer {i}")}});
            api.post(&format!("/v1/sessions/{raced}/events"), body).await
        }));
    }
    let mut acked = BTreeSet::new();
    for post in posts {
        let (code, ack) = post.await.unwrap();
        assert_eq!(code, 202, "{ack}");
        acked.insert(ack["item_id"].as_str().unwrap().to_string());
    }
    assert_eq!(acked.len(), 30);
    let (_, snap) = apis[2].get(&format!("/v1/sessions/{raced}")).await;
    let head = snap["last_seq"].as_i64().unwrap();
    read_through(&mut stream(&servers[0], &raced).await, head, "raced").await;
    let (_, items) = apis[0].get(&format!("/v1/sessions/{raced}/items?limit=100")).await;
    let stored: BTreeSet<String> =
        items["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(stored, acked);

    // A delete through one replica ends the streams on all of them.
    let (code, _) = apis[1].call(reqwest::Method::DELETE, &format!("/v1/sessions/{id}"), None).await;
    assert_eq!(code, 200);
    loop {
        let f = feed.next_event().await.unwrap();
        if f.event.as_deref() == Some("session.deleted") && f.json()["id"] == id.as_str() {
            break;
        }
    }
    for (i, sse) in streams.iter_mut().enumerate() {
        loop {
            match sse.next_event().await {
                Some(f) if f.is_done() => break,
                Some(_) => continue,
                None => panic!("replica {i}: the stream ended without [DONE]"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_its_turn_waits_for_approval_hands_it_to_another() {
    let Some(db) = database("a_replica_killed_while_paused").await else { return };
    let work = tempfile::tempdir().unwrap();
    let mock = MockLlm::start(vec![touch("k"), Reply::text("approved elsewhere")]).await;
    let mut servers = replicas(&db, work.path(), 3).await;
    let apis: Vec<Api> = servers.iter().map(|s| Api::new(s.url.clone())).collect();
    let id = apis[0].create(json!({"config": config(&mock, work.path(), ASK_OS)})).await;
    let mut watching = stream(&servers[1], &id).await;
    apis[0].message(&id, "make a file").await;
    let asked = watching.until("response.elicitation_request").await.last().unwrap().json();
    let eid = asked["elicitation_id"].as_str().unwrap().to_string();
    // Replica 0 writes the session (it took the message) and dies.
    servers[0].kill9();
    assert_eq!(mock.requests().len(), 1);

    // The question is still answerable, through another replica.
    let (code, body) =
        apis[2].post(&format!("/v1/sessions/{id}/elicitations/{eid}/resolve"), json!({"action": "accept"})).await;
    assert_eq!(code, 202, "{body}");
    watching.until("response.completed").await;
    assert_eq!(watching.statuses_until_settled().await, vec!["idle"]);
    assert_eq!(runs(work.path()), 1, "the tool ran once");
    assert_eq!(mock.requests().len(), 2, "the first model call was not repeated");
    // The surviving stream saw every event once, in order.
    let (_, snap) = apis[1].get(&format!("/v1/sessions/{id}")).await;
    read_through(&mut stream(&servers[1], &id).await, snap["last_seq"].as_i64().unwrap(), "replay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_turn_has_its_turn_adopted_and_finished_by_another() {
    let Some(db) = database("a_replica_killed_mid_turn").await else { return };
    let work = tempfile::tempdir().unwrap();
    let slow = Reply::Slow { chunks: (0..200).map(|i| format!("w{i} ")).collect(), delay: Duration::from_millis(50) };
    let mock = MockLlm::start(vec![touch("once"), slow, Reply::text("finished on another replica")]).await;
    let mut servers = replicas(&db, work.path(), 3).await;
    let apis: Vec<Api> = servers.iter().map(|s| Api::new(s.url.clone())).collect();
    let id = apis[0].create(json!({"config": config(&mock, work.path(), NO_POLICIES)})).await;
    let mut watching = stream(&servers[2], &id).await;
    apis[0].message(&id, "go").await;
    // The tool ran and its result is recorded; the second model call is streaming when the replica dies.
    watching.until("response.output_text.delta").await;
    let killed = std::time::Instant::now();
    servers[0].kill9();
    assert_eq!(runs(work.path()), 1);

    // Nobody posts anything: a surviving replica finds the orphaned turn and finishes it.
    let frames = watching.until("response.completed").await;
    eprintln!("failover: the adopted turn completed {:?} after the kill", killed.elapsed());
    assert!(frames.iter().any(|f| f.data.contains("finished on another replica")), "{frames:?}");
    assert_eq!(watching.statuses_until_settled().await, vec!["idle"]);
    assert_eq!(runs(work.path()), 1, "the finished tool call was not run again");
    // The first call (recorded), the one cut by the kill, the one after.
    assert_eq!(mock.requests().len(), 3);
    let (_, snap) = apis[1].get(&format!("/v1/sessions/{id}")).await;
    assert_eq!(snap["status"], "idle");
    read_through(&mut stream(&servers[1], &id).await, snap["last_seq"].as_i64().unwrap(), "replay").await;
}

/// A replica that loses its lock without noticing (its lock connection cut, the replica alive) is fenced by the
/// log: once another replica has written the session, the stale writer's commit is refused, it steps back, and
/// every acknowledged input is in one gap-free log exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_lost_its_lock_is_refused_and_steps_back() {
    let Some(db) = database("a_writer_that_lost_its_lock").await else { return };
    let work = tempfile::tempdir().unwrap();
    let servers = replicas(&db, work.path(), 2).await;
    let (a, b) = (Api::new(servers[0].url.clone()), Api::new(servers[1].url.clone()));
    let id = a.create(json!({})).await;
    let mut acked = BTreeSet::new();
    let mut post = async |api: &Api, text: &str| {
        // A refused write says to retry (503); the retry reaches whoever writes the session now.
        for _ in 0..50 {
            let body = json!({"type": "message", "data": {"content": text}});
            let (code, ack) = api.post(&format!("/v1/sessions/{id}/events"), body).await;
            if code == 202 {
                acked.insert(ack["item_id"].as_str().unwrap().to_string());
                return;
            }
            assert_eq!(code, 503, "{ack}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the write never landed");
    };
    post(&a, "written by A").await;
    // A's lock connection dies under it (as on a network cut); A itself goes on.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    let terminated: Vec<(bool,)> =
        sqlx::query_as("SELECT pg_terminate_backend(backend_pid) FROM replicas WHERE url = $1")
            .bind(&servers[0].url)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(terminated, vec![(true,)]);
    // B takes the free session and writes; A's next write is refused or forwarded, never both written.
    post(&b, "written by B").await;
    post(&a, "sent to A again").await;
    post(&b, "and to B").await;
    let (_, snap) = b.get(&format!("/v1/sessions/{id}")).await;
    read_through(&mut stream(&servers[1], &id).await, snap["last_seq"].as_i64().unwrap(), "after the cut").await;
    let (_, items) = a.get(&format!("/v1/sessions/{id}/items?limit=100")).await;
    let stored: Vec<String> =
        items["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(stored.len(), 4, "{items}");
    assert_eq!(stored.iter().cloned().collect::<BTreeSet<_>>(), acked);
}

/// A replica whose lock connection is cut while its turn streams: either it takes its lock back in time and
/// finishes the turn, or another replica adopts the turn and the first gives it up without reporting an end. Either
/// way the turn completes exactly once and is never recorded as interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_whose_writer_lost_its_lock_completes_exactly_once() {
    let Some(db) = database("a_turn_whose_writer_lost_its_lock").await else { return };
    let work = tempfile::tempdir().unwrap();
    let slow = Reply::Slow { chunks: (0..100).map(|i| format!("w{i} ")).collect(), delay: Duration::from_millis(30) };
    let mock = MockLlm::start(vec![slow, Reply::text("finished by the other replica")]).await;
    let servers = replicas(&db, work.path(), 2).await;
    let apis: Vec<Api> = servers.iter().map(|s| Api::new(s.url.clone())).collect();
    let id = apis[0].create(json!({"config": config(&mock, work.path(), NO_POLICIES)})).await;
    let mut watching = stream(&servers[1], &id).await;
    apis[0].message(&id, "go").await;
    watching.until("response.output_text.delta").await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(backend_pid) FROM replicas WHERE url = $1")
        .bind(&servers[0].url)
        .execute(&mut conn)
        .await
        .unwrap();
    // A write through the other replica at once: the lock is free, so it most likely takes the session (and
    // resumes the turn) before the first replica looks at its lock again (once a second). Taking it fences the
    // first replica out (writer epoch): that one's late commits are refused, never this write.
    let answer =
        apis[1].call(reqwest::Method::PATCH, &format!("/v1/sessions/{id}"), Some(json!({"title": "taken"}))).await;
    assert_eq!(answer.0, 200, "{}", answer.1);
    watching.until("response.completed").await;
    assert_eq!(watching.statuses_until_settled().await, vec!["idle"]);
    let (_, snap) = apis[1].get(&format!("/v1/sessions/{id}")).await;
    let frames = read_through(&mut stream(&servers[1], &id).await, snap["last_seq"].as_i64().unwrap(), "log").await;
    let count = |t: &str| frames.iter().filter(|f| f.event.as_deref() == Some(t)).count();
    assert_eq!(count("response.completed"), 1, "the turn completed once");
    assert_eq!(count("response.incomplete") + count("session.interrupted"), 0, "nobody recorded it interrupted");
    // 2: adopted by the other replica, which asked again what the first was streaming; 1: the first kept it.
    let asked = mock.requests().len();
    assert!(asked <= 2, "the model was asked {asked} times: a third writer took the turn");
}
