//! Team scale. Runners: a turn's model calls and tool made by a runner process against the same turn made by the
//! server. Replicas on one Postgres: durable events/s across 100 sessions with 1, 2 and 3 replicas; a POST on one replica
//! until an SSE subscriber on another has it; a forwarded POST's ack; failover (SIGKILL of the replica running a
//! turn until the adopted turn's next event reaches a subscriber on a survivor). Each replica is a real
//! `omnigent server` process; all share the machine's cores with Postgres and this client.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, ServerProcess, Sse, free_port, postgres_db};
use serde_json::json;

use super::{Row, n, p50_p99, pct};

async fn start(work: &Path, url: &str, i: usize) -> ServerProcess {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_omnigent"));
    let data = work.join(format!("replica-{i}-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&data).unwrap();
    ServerProcess::start(&bin, &data, url, free_port(), &[]).await
}

/// A turn with one tool call (two model calls, one tool: three host calls) made by the server itself, then by a
/// runner process on this machine: POST → `response.completed`, and what the runner adds per host call.
async fn runner_rows(rows: &mut Vec<Row>) {
    let work = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_omnigent"));
    let server = start(work.path(), &omnigent_testkit::sqlite_db().url, 0).await;
    let api = Api::new(server.url.clone());
    let runner_data = work.path().join("runner");
    let mut runner = std::process::Command::new(&bin)
        .args(["runner", "--server", &server.url, "--data-dir"])
        .arg(&runner_data)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let runner_id = loop {
        let (_, runners) = api.get("/v1/runners").await;
        if let Some(id) = runners["data"][0]["id"].as_str().filter(|_| runners["data"][0]["online"] == true) {
            break id.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mock = MockLlm::start(vec![]).await;
    let config = json!({"name": "bench", "executor": {"harness": "agent", "model": "gpt-bench", "provider": "openai",
        "auth": {"type": "api_key", "api_key": "k", "base_url": mock.openai_base()}},
        "tools": {"shell": {"type": "builtin"}}, "os_env": {"cwd": work.path(), "sandbox": {"type": "none"}}});
    let mut p50s = Vec::new();
    for (label, runner) in [("on the server", None), ("on a runner (loopback)", Some(runner_id.as_str()))] {
        let id = api.create(json!({"config": config, "runner_id": runner})).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", server.url), &[]).await;
        sse.next().await.unwrap();
        let mut samples = super::timed_turns(&api, &mut sse, &id, n(60), || {
            mock.push(Reply::tool("shell", json!({"command": "true"})));
            mock.push(Reply::text("ok"));
        })
        .await;
        // The first turns warm the harness and the connections.
        let mut samples = samples.split_off(samples.len().min(5));
        p50s.push(pct(&mut samples, 0.5));
        eprintln!("  runner   tool-call turn {label}: {}", p50_p99(&mut samples));
        rows.push(Row {
            metric: format!("turn with a tool call (3 host calls), {label}"),
            backend: "sqlite",
            value: p50_p99(&mut samples),
            target: "",
            holds: None,
        });
    }
    let per_call = p50s[1].saturating_sub(p50s[0]) / 3;
    rows.push(Row {
        metric: "a runner adds per host call (p50 difference / 3)".into(),
        backend: "sqlite",
        value: super::fmt(per_call),
        target: "< 5 ms",
        holds: Some(per_call < Duration::from_millis(5)),
    });
    let _ = runner.kill();
    let _ = runner.wait();
}

pub async fn replicas_suite(rows: &mut Vec<Row>) {
    runner_rows(rows).await;
    let mut row = |metric: String, value: String, target: &'static str, holds: Option<bool>| {
        eprintln!("  replicas {metric}: {value}");
        rows.push(Row { metric, backend: "postgres", value, target, holds });
    };
    let work = tempfile::tempdir().unwrap();

    // Durable events/s across 100 sessions; each session is written by the replica its poster talks to.
    for replicas in 1..=3 {
        let Some(db) = postgres_db().await else {
            return eprintln!("replicas suite skipped: set TEST_DATABASE_URL=postgres://…");
        };
        let mut servers = Vec::new();
        for i in 0..replicas {
            servers.push(start(work.path(), &db.url, i).await);
        }
        let apis: Vec<Api> = servers.iter().map(|s| Api::new(s.url.clone())).collect();
        let mut ids = Vec::new();
        for s in 0..100 {
            ids.push(apis[s % replicas].create(json!({})).await);
        }
        let posters = ids.iter().enumerate().map(|(p, id)| (apis[p % replicas].clone(), id.clone())).collect();
        let inputs = super::sustained_inputs(posters).await;
        row(
            format!("durable events/s across 100 sessions, {replicas} replica(s)"),
            format!("{:.0} events/s", inputs * 2.0),
            "",
            None,
        );
    }

    // A POST on replica A (which writes the session) until a subscriber on replica B has it; then a POST sent to
    // B, forwarded to A, until B's 202.
    let Some(db) = postgres_db().await else { return };
    let a = start(work.path(), &db.url, 0).await;
    let b = start(work.path(), &db.url, 1).await;
    let (api_a, api_b) = (Api::new(a.url.clone()), Api::new(b.url.clone()));
    let id = api_a.create(json!({})).await;
    api_a.message(&id, "claim").await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", b.url), &[]).await;
    sse.next().await.unwrap();
    let mut delivery = super::post_to_subscriber(&api_a, &mut sse, &id, n(500)).await;
    let p50 = pct(&mut delivery, 0.5);
    row(
        "POST on replica A → SSE subscriber on B".into(),
        p50_p99(&mut delivery),
        "< 10 ms p50",
        Some(p50 < Duration::from_millis(10)),
    );
    let mut forwarded = Vec::new();
    for i in 0..n(500) {
        let t = Instant::now();
        api_b.message(&id, &format!("f{i}")).await;
        forwarded.push(t.elapsed());
    }
    let mut direct = Vec::new();
    for i in 0..n(500) {
        let t = Instant::now();
        api_a.message(&id, &format!("d{i}")).await;
        direct.push(t.elapsed());
    }
    row("POST → 202 on the writing replica".into(), p50_p99(&mut direct), "", None);
    row("POST → 202 forwarded by another replica".into(), p50_p99(&mut forwarded), "", None);
    drop((sse, a, b));

    // Failover: the replica running a turn (its model streaming slowly) is killed; the time until the adopted
    // turn's next event reaches a subscriber on a survivor.
    let mut failover = Vec::new();
    for round in 0..n(5).max(2) {
        let Some(db) = postgres_db().await else { return };
        let slow =
            Reply::Slow { chunks: (0..400).map(|i| format!("w{i} ")).collect(), delay: Duration::from_millis(20) };
        let mock = MockLlm::start(vec![slow, Reply::text("adopted")]).await;
        let mut owner = start(work.path(), &db.url, 10 + round).await;
        let survivor = start(work.path(), &db.url, 20 + round).await;
        let config = json!({"name": "bench", "executor": {"harness": "agent", "model": "gpt-bench", "provider": "openai",
            "auth": {"type": "api_key", "api_key": "k", "base_url": mock.openai_base()}}});
        let id = Api::new(owner.url.clone()).create(json!({"config": config})).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", survivor.url), &[]).await;
        sse.next().await.unwrap();
        Api::new(owner.url.clone()).message(&id, "go").await;
        sse.until("response.output_text.delta").await;
        let t = Instant::now();
        owner.kill9();
        // Deltas the dead replica committed may still be on their way; the adopted turn's model call answers
        // "adopted".
        loop {
            let f = sse.next_event().await.unwrap();
            if f.data.contains("adopted") {
                break;
            }
        }
        failover.push(t.elapsed());
        drop((sse, survivor));
    }
    let p50 = pct(&mut failover, 0.5);
    row(
        "failover: SIGKILL of the turn's replica → adopted turn's next event".into(),
        p50_p99(&mut failover),
        "< 5 s p50",
        Some(p50 < Duration::from_secs(5)),
    );
}
