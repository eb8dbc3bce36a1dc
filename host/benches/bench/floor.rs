//! The turn path against its floor. A session create is one commit and one HTTP round trip; an input's ack needs
//! about as much (one commit), a turn with an instant model about three (the input with `running`, the model's
//! output, the end with `idle`). Measured in one run against the same server, printed as ratios to the create.
//!
//! BENCH_STAGES=1 starts the server with `--stage-times` and prints where the time of the cold and the warm turns
//! went (`GET /v1/debug/stages`), and the warm acks of the first and last 50 turns (a long session's acks grow).
//! BENCH_SETTLE_MS=N waits N ms after each turn settles before the next message (default 0: the instant `idle`
//! arrives, while the finished turn's tail still runs on the same cores). On this VM waiting makes every ack slower
//! (3 ms: +10 %, 20 ms: ~2×): idle vCPUs wake slowly.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, ServerProcess, Sse, TestDb, free_port};
use serde_json::{Value, json};

use super::{Row, fmt, n, p50_p99, pct, quick};

/// Whether the server keeps stage times and the suite prints them.
pub(super) fn stages() -> bool {
    std::env::var("BENCH_STAGES").is_ok_and(|v| v == "1")
}

/// What one input costs: its 202, and the turn it starts until `response.completed` reaches a subscriber.
#[derive(Default)]
struct Turns {
    ack: Vec<Duration>,
    done: Vec<Duration>,
}

impl Turns {
    /// Posts a message, times its ack and its turn's completion, then waits until the session is idle again.
    async fn one(&mut self, api: &Api, sse: &mut Sse, id: &str, mock: &MockLlm, text: &str) {
        mock.push(Reply::text("ok"));
        let t = Instant::now();
        api.message(id, text).await;
        self.ack.push(t.elapsed());
        sse.until("response.completed").await;
        self.done.push(t.elapsed());
        sse.statuses_until_settled().await;
        if let Some(ms) = std::env::var("BENCH_SETTLE_MS").ok().and_then(|v| v.parse().ok()).filter(|ms| *ms > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
}

/// Runs the suite on one database; returns the create's p50, for the ratio between databases.
pub async fn floor_suite(db: TestDb, rows: &mut Vec<Row>) -> Duration {
    let backend = db.label;
    let dir = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_omnigent"));
    let extra: &[&str] = if stages() { &["--stage-times"] } else { &[] };
    let server = ServerProcess::start(&bin, dir.path(), &db.url, free_port(), extra).await;
    let api = Api::new(server.url.clone());
    let mock = MockLlm::start(vec![]).await;
    let config = json!({"name": "bench", "executor": {"harness": "agent", "model": "gpt-bench", "provider": "openai",
        "auth": {"type": "api_key", "api_key": "k", "base_url": mock.openai_base()}}});
    let mut row = |metric: &str, value: String, target: &'static str, holds: Option<bool>| {
        eprintln!("  {backend:<8} {metric}: {value}");
        rows.push(Row { metric: metric.to_string(), backend, value, target, holds });
    };

    // Warm the server up (the harness compiled, the pools filled), then the baseline: a create.
    let warmup = api.create(json!({"config": config})).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{warmup}/stream", api.base), &[]).await;
    sse.next().await.unwrap();
    let mut ignored = Turns::default();
    for i in 0..5 {
        ignored.one(&api, &mut sse, &warmup, &mock, &format!("w{i}")).await;
    }
    drop(sse);
    let mut creates = Vec::new();
    for _ in 0..n(1000) {
        let t = Instant::now();
        api.create(json!({"config": config})).await;
        creates.push(t.elapsed());
    }

    // Cold: each session's first message. Warm: one session's later messages.
    reset_stages(&api).await;
    let mut cold = Turns::default();
    for i in 0..n(300) {
        let id = api.create(json!({"config": config})).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        sse.next().await.unwrap();
        cold.one(&api, &mut sse, &id, &mock, &format!("c{i}")).await;
    }
    let cold_stages = stage_times(&api).await;
    let id = api.create(json!({"config": config})).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
    sse.next().await.unwrap();
    ignored.one(&api, &mut sse, &id, &mock, "first").await;
    reset_stages(&api).await;
    let mut warm = Turns::default();
    for i in 0..n(300) {
        warm.one(&api, &mut sse, &id, &mock, &format!("m{i}")).await;
    }
    let warm_stages = stage_times(&api).await;

    if stages() && warm.ack.len() >= 100 {
        // Whether a warm ack grows with the session's history.
        let (mut first, mut last) = (warm.ack[..50].to_vec(), warm.ack[warm.ack.len() - 50..].to_vec());
        eprintln!(
            "  {backend:<8} warm ack p50, first 50 / last 50 turns: {} / {}",
            fmt(pct(&mut first, 0.5)),
            fmt(pct(&mut last, 0.5))
        );
    }
    let create = pct(&mut creates, 0.5);
    let ratio = |d: Duration| d.as_secs_f64() / create.as_secs_f64();
    let (cold_ack, warm_ack) = (pct(&mut cold.ack, 0.5), pct(&mut warm.ack, 0.5));
    let warm_done = pct(&mut warm.done, 0.5);
    row("create, with a harness config (the unit below)", p50_p99(&mut creates), "", None);
    row("cold POST → 202 (a session's first message)", p50_p99(&mut cold.ack), "", None);
    row("warm POST → 202 (the same session's later messages)", p50_p99(&mut warm.ack), "", None);
    row("cold POST → response.completed (instant model)", p50_p99(&mut cold.done), "", None);
    row("warm POST → response.completed (instant model)", p50_p99(&mut warm.done), "", None);
    row("warm ack / create (p50)", format!("{:.2}×", ratio(warm_ack)), "≤ 1.5×", Some(ratio(warm_ack) <= 1.5));
    let warm_vs_cold = warm_ack.as_secs_f64() / cold_ack.as_secs_f64();
    // Within the noise of two p50s of the same path (about 5 %).
    row("warm ack / cold ack (p50)", format!("{warm_vs_cold:.2}×"), "≤ 1× (±5 %)", Some(warm_vs_cold <= 1.05));
    row("warm turn / create (p50)", format!("{:.2}×", ratio(warm_done)), "≤ 3×", Some(ratio(warm_done) <= 3.0));
    for (label, stages) in [("cold turns", cold_stages), ("warm turns", warm_stages)] {
        if let Some(stages) = stages {
            print_stages(backend, label, &stages);
        }
    }
    create
}

pub(super) async fn reset_stages(api: &Api) {
    if stages() {
        let (status, body) = api.call(reqwest::Method::DELETE, "/v1/debug/stages", None).await;
        assert_eq!(status, 204, "{body}");
    }
}

pub(super) async fn stage_times(api: &Api) -> Option<Vec<Value>> {
    if !stages() {
        return None;
    }
    let (status, body) = api.get("/v1/debug/stages").await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned()
}

/// Where the time went, one line per stage (microseconds).
pub(super) fn print_stages(backend: &str, label: &str, stages: &[Value]) {
    // Per turn, or per input where no turn ran.
    let unit = ["turn", "ack"]
        .iter()
        .find_map(|name| stages.iter().find(|s| s["stage"] == *name).and_then(|s| s["count"].as_u64()))
        .unwrap_or(1)
        .max(1);
    eprintln!(
        "\n  stage times, {backend}, {label} (µs; per turn, or per input without turns){}",
        if quick() { " — QUICK" } else { "" }
    );
    eprintln!("  {:<12} {:>9} {:>8} {:>8} {:>8} {:>8}", "stage", "per unit", "p50", "p90", "p99", "mean");
    for s in stages {
        let count = s["count"].as_u64().unwrap_or(0);
        eprintln!(
            "  {:<12} {:>9.1} {:>8} {:>8} {:>8} {:>8}",
            s["stage"].as_str().unwrap_or("?"),
            count as f64 / unit as f64,
            s["p50_us"],
            s["p90_us"],
            s["p99_us"],
            s["mean_us"]
        );
    }
}
