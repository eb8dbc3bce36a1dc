//! `cargo bench -p omnigent --bench bench`: runs the real `omnigent` server binary (release build) and measures
//! it over HTTP from this process, on SQLite and — when TEST_DATABASE_URL is set — on Postgres. Prints a table.
//!
//! Environment: BENCH_QUICK=1 shrinks every sample count (a smoke run, not for numbers); BENCH_SUITES=runtime,policy,
//! turn,floor,store,replicas,native,credentials,tools,plugin runs only the named suites (default: all; replicas needs
//! Postgres). The native suite drives the real Claude
//! Code CLI named by OMNIGENT_TEST_CLAUDE (scripts/test installs it) and is skipped without it.
//! BENCH_STAGES=1 starts the floor suite's servers with `--stage-times` and prints where each turn's time went.
//! BENCH_SETTLE_MS=N makes the floor suite wait N ms between turns (see floor.rs).
//! BENCH_EXTRA_POLICY=FILE.wasm [BENCH_EXTRA_PARAMS=JSON] adds rows for that policy component to the policy suite
//! (describe, and evaluate of a shell call, each in a fresh instance), beside the builtins.

mod floor;
mod replicas;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use omnigent_runtime::harness::TurnInput;
use omnigent_runtime::testing::FixedHost;
use omnigent_runtime::{AGENT_HARNESS, GUEST_DIR, Runtime, TurnHost, TurnLimits};
use omnigent_testkit::mock_llm::{MockLlm, Reply};
use omnigent_testkit::{Api, ServerProcess, Sse, TestDb, free_port, postgres_db, sqlite_db};
use serde_json::json;

struct Row {
    metric: String,
    backend: &'static str,
    value: String,
    target: &'static str,
    /// Whether the value meets the target, where the bench can tell.
    holds: Option<bool>,
}

fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// Whether BENCH_SUITES (default: all) names this suite.
fn wanted(suite: &str) -> bool {
    std::env::var("BENCH_SUITES").map(|v| v.split(',').any(|s| s.trim() == suite)).unwrap_or(true)
}

fn n(full: usize) -> usize {
    if quick() { (full / 20).max(5) } else { full }
}

fn pct(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn fmt(d: Duration) -> String {
    if d < Duration::from_micros(100) {
        // Policy evaluations live here: a tenth of a µs tells changes apart.
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else if d < Duration::from_millis(1) {
        format!("{:.0} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

fn p50_p99(samples: &mut [Duration]) -> String {
    format!("p50 {} / p99 {}", fmt(pct(samples, 0.50)), fmt(pct(samples, 0.99)))
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn raise_fd_limit() {
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The store suite's p50s and rates, for the ratios between backends and between one session and many.
struct StoreRates {
    create: Duration,
    post_to_sse: Duration,
    /// Durable events/s into one session, then across 100.
    events: [f64; 2],
}

async fn suite(db: TestDb, rows: &mut Vec<Row>) -> StoreRates {
    let backend = db.label;
    let dir = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_omnigent"));
    let extra: &[&str] = if floor::stages() { &["--stage-times"] } else { &[] };
    let server = ServerProcess::start(&bin, dir.path(), &db.url, free_port(), extra).await;
    let pid = server.pid();
    let api = Api::new(server.url.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut row = |metric: &str, value: String, target: &'static str| {
        eprintln!("  {backend:<8} {metric}: {value}");
        rows.push(Row { metric: metric.to_string(), backend, value, target, holds: None });
    };
    row("server RSS, idle", format!("{:.1} MB", rss_mb(pid)), "< 40 MB");

    // Session create, one at a time.
    let mut samples = Vec::new();
    for _ in 0..n(2000) {
        let t = Instant::now();
        api.create(json!({"title": "bench"})).await;
        samples.push(t.elapsed());
    }
    row("session create (POST /v1/sessions)", p50_p99(&mut samples), "< 1 ms p50");
    let create = pct(&mut samples, 0.5);

    // POST …/events → the matching event at an SSE subscriber.
    let id = api.create(json!({})).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
    sse.next().await.unwrap();
    let mut samples = post_to_subscriber(&api, &mut sse, &id, n(1000)).await;
    row("POST event → SSE subscriber", p50_p99(&mut samples), "< 2 ms p50");
    let post_to_sse = pct(&mut samples, 0.5);
    drop(sse);

    // One event fanned out to 1,000 subscribers of one session: time until the last one has it.
    let subscribers = n(1000);
    let id = api.create(json!({})).await;
    let mut streams = Vec::new();
    for _ in 0..subscribers {
        let mut s = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        s.next().await.unwrap();
        streams.push(s);
    }
    let mut samples = Vec::new();
    for round in 0..n(20) {
        let barrier = Arc::new(tokio::sync::Barrier::new(subscribers + 1));
        let mut tasks = Vec::new();
        for mut s in streams.drain(..) {
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                // Each message yields two events; wait for the input.consumed one.
                loop {
                    let f = s.next_event().await.unwrap();
                    if f.event.as_deref() == Some("session.input.consumed") {
                        return (Instant::now(), s);
                    }
                }
            }));
        }
        barrier.wait().await;
        let t = Instant::now();
        api.message(&id, &format!("fan {round}")).await;
        let mut last = t;
        for task in tasks {
            let (at, s) = task.await.unwrap();
            last = last.max(at);
            streams.push(s);
        }
        samples.push(last - t);
    }
    row(&format!("fan-out to {subscribers} subscribers (last one has it)"), p50_p99(&mut samples), "< 50 ms");
    drop(streams);

    // Sustained durable writes: many posters into one session, then one poster per session across 100.
    let mut events = [0.0; 2];
    let runs = [("into 1 session (32 posters)", 1, 32), ("across 100 sessions", 100, 100)];
    for (run, (label, sessions, posters)) in runs.into_iter().enumerate() {
        let mut ids = Vec::new();
        for _ in 0..sessions {
            ids.push(api.create(json!({})).await);
        }
        floor::reset_stages(&api).await;
        let inputs = sustained_inputs((0..posters).map(|p| (api.clone(), ids[p % sessions].clone())).collect()).await;
        // Each acknowledged message is two durable events (input.consumed + the turn's status).
        row(&format!("durable events/s {label}"), format!("{:.0} events/s ({:.0} inputs/s)", inputs * 2.0, inputs), "");
        events[run] = inputs * 2.0;
        if let Some(stages) = floor::stage_times(&api).await {
            floor::print_stages(backend, &format!("durable writes {label}"), &stages);
        }
    }

    // Fill up to 10,000 stored sessions, then open 1,000 streams on distinct sessions.
    let target = n(10_000);
    let mut created = n(2000) + 3 + 101;
    while created < target {
        let batch: Vec<_> = (0..16.min(target - created))
            .map(|_| {
                let api = api.clone();
                tokio::spawn(async move { api.create(json!({"title": "filler"})).await })
            })
            .collect();
        created += batch.len();
        for b in batch {
            b.await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    row(&format!("server RSS, {target} stored sessions"), format!("{:.1} MB", rss_mb(pid)), "");
    let mut streams = Vec::new();
    for _ in 0..n(1000) {
        let id = api.create(json!({})).await;
        let mut s = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        s.next().await.unwrap();
        streams.push(s);
    }
    row(
        &format!("server RSS, + {} open streams (distinct sessions)", streams.len()),
        format!("{:.1} MB", rss_mb(pid)),
        "",
    );
    drop(streams);
    drop(server);
    StoreRates { create, post_to_sse, events }
}

/// `count` turns, each scripted by `script` (the mock's replies) and timed from its POST to `response.completed`
/// at `sse`; each waits for the session to settle before the next.
async fn timed_turns(api: &Api, sse: &mut Sse, id: &str, count: usize, script: impl Fn()) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        script();
        let t = Instant::now();
        api.message(id, &format!("t{i}")).await;
        sse.until("response.completed").await;
        samples.push(t.elapsed());
        sse.statuses_until_settled().await;
    }
    samples
}

/// `count` messages posted through `api`, each timed until its `session.input.consumed` reaches `sse`.
async fn post_to_subscriber(api: &Api, sse: &mut Sse, id: &str, count: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let t = Instant::now();
        let ack = api.message(id, &format!("m{i}")).await;
        loop {
            let f = sse.next_event().await.unwrap();
            if f.event.as_deref() == Some("session.input.consumed") && f.json()["data"]["item_id"] == ack["item_id"] {
                break;
            }
        }
        samples.push(t.elapsed());
    }
    samples
}

/// Posters, each an API and a session, post messages for the bench's window; returns the acknowledged inputs/s.
async fn sustained_inputs(posters: Vec<(Api, String)>) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (api, id) in posters {
        let (stop, count) = (stop.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                api.message(&id, "load").await;
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let window = if quick() { Duration::from_millis(500) } else { Duration::from_secs(5) };
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let inputs = count.load(Ordering::Relaxed) as f64 / window.as_secs_f64();
    for t in tasks {
        t.await.unwrap();
    }
    inputs
}

/// Ratio rows: 100 sessions against one on each backend, and Postgres against SQLite.
fn store_ratios(sqlite: &StoreRates, postgres: Option<&StoreRates>, rows: &mut Vec<Row>) {
    let mut ratio = |metric: String, backend: &'static str, value: f64, target: &'static str, holds: bool| {
        eprintln!("  {backend:<8} {metric}: {value:.2}×");
        rows.push(Row { metric, backend, value: format!("{value:.2}×"), target, holds: Some(holds) });
    };
    for (backend, rates) in [("sqlite", Some(sqlite)), ("postgres", postgres)] {
        let Some(rates) = rates else { continue };
        let many = rates.events[0] / rates.events[1];
        ratio("events/s into 1 session / across 100 sessions".into(), backend, many, "≤ 2×", many <= 2.0);
    }
    let Some(pg) = postgres else { return };
    let per = |pg: Duration, sqlite: Duration| pg.as_secs_f64() / sqlite.as_secs_f64();
    let create = per(pg.create, sqlite.create);
    ratio("Postgres / SQLite: session create p50".into(), "-", create, "≤ 1.5×", create <= 1.5);
    let delivery = per(pg.post_to_sse, sqlite.post_to_sse);
    ratio("Postgres / SQLite: POST → SSE p50".into(), "-", delivery, "≤ 1.5×", delivery <= 1.5);
    for (run, label) in ["into 1 session", "across 100 sessions"].into_iter().enumerate() {
        let rate = sqlite.events[run] / pg.events[run];
        ratio(format!("SQLite / Postgres: events/s {label}"), "-", rate, "≤ 1.5×", rate <= 1.5);
    }
}

/// The sandbox in this process: fresh instance + run-turn, with the model taken out.
async fn runtime_suite(rows: &mut Vec<Row>) {
    let rt = Runtime::new(None).unwrap();
    let mut row = |metric: &str, value: String, target: &'static str| {
        eprintln!("  runtime  {metric}: {value}");
        rows.push(Row { metric: metric.to_string(), backend: "-", value, target, holds: None });
    };
    row("pooling allocator", if rt.pooling() { "on".into() } else { "off (fallback)".into() }, "");
    let t = Instant::now();
    let agent = rt.load_harness(AGENT_HARNESS).unwrap();
    row("compile the agent harness (no cache)", fmt(t.elapsed()), "");
    let limits = TurnLimits::default();
    // The model answers at once: what is left is the harness and host-call overhead.
    let host: Arc<dyn TurnHost> = Arc::new(FixedHost::new("hi", "done"));
    let mut samples = Vec::new();
    for _ in 0..n(5000) {
        let t = Instant::now();
        agent.run_turn(host.clone(), TurnInput { max_steps: 5 }, limits).await.unwrap();
        samples.push(t.elapsed());
    }
    row("agent turn overhead: instantiate + run-turn + 3 host calls (no LLM)", p50_p99(&mut samples), "< 2 ms p50");
    let bytes = std::fs::read(format!("{GUEST_DIR}/hostile.wasm")).unwrap();
    let minimal = rt.load_harness(&bytes).unwrap();
    let mut samples = Vec::new();
    for _ in 0..n(5000) {
        let t = Instant::now();
        minimal.run_turn(host.clone(), TurnInput { max_steps: 1 }, limits).await.unwrap();
        samples.push(t.elapsed());
    }
    row("fresh instance + minimal turn (1 host call)", p50_p99(&mut samples), "< 100 µs p50");
}

/// What a turn pays to find its model key: a `stat` of the credentials file when it did not change, a read and
/// parse when it did.
fn credentials_suite(rows: &mut Vec<Row>) {
    use omnigent::credentials::{self, Credentials, Stored};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(credentials::FILE_NAME);
    let set = |key: &str| {
        credentials::edit(&path, |f| {
            for name in ["openai", "anthropic", "gateway", "team-key"] {
                let s = Stored { api_key: format!("{key}-{name}"), base_url: None, updated_at: "t".into() };
                f.credentials.insert(name.into(), s);
            }
            Ok(())
        })
        .unwrap()
    };
    set("sk-1");
    let creds = Credentials::new(Some(path.clone()), false);
    let mut row = |metric: &str, value: String| {
        eprintln!("  credentials  {metric}: {value}");
        rows.push(Row { metric: metric.to_string(), backend: "-", value, target: "", holds: None });
    };
    let mut samples = Vec::new();
    for _ in 0..n(20_000) {
        let t = Instant::now();
        creds.resolve(None, credentials::OPENAI).unwrap();
        samples.push(t.elapsed());
    }
    row("credential lookup per turn, file unchanged (stat)", p50_p99(&mut samples));
    let mut samples = Vec::new();
    for i in 0..n(2_000) {
        set(&format!("sk-{i}"));
        let t = Instant::now();
        creds.resolve(None, credentials::OPENAI).unwrap();
        samples.push(t.elapsed());
    }
    row("credential lookup per turn, file just changed (stat + read + parse)", p50_p99(&mut samples));
}

/// Five allowing policies of every builtin kind, as a session YAML would declare them.
fn five_policies() -> serde_json::Value {
    json!({
        "limit": {"handler": "max_tool_calls", "factory_params": {"limit": 1_000_000}},
        "loops": {"handler": "detect_loop", "factory_params": {"window": 10, "threshold": 1000}},
        "filter": {"handler": "tool_filter", "factory_params": {"deny": ["rm_rf"]}},
        "spend": {"handler": "cost_budget", "factory_params": {"max_cost_usd": 1000, "ask_thresholds_usd": [500]}},
        "os": {"handler": "ask_on_os_tools", "factory_params": {"tools": ["never_this_tool"]}}
    })
}

fn bench_usage() -> omnigent_runtime::policy::Usage {
    omnigent_runtime::policy::Usage { input_tokens: 100, output_tokens: 50, total_tokens: 150, total_cost_usd: 0.01 }
}

/// A policy event: the model asks for `shell` with `ls -la`, in a session whose policy state is `state`.
fn shell_call(state: serde_json::Value) -> omnigent_runtime::policy::Event {
    use omnigent_runtime::policy::{Context, Event, Phase};
    Event {
        phase: Phase::ToolCall,
        target: Some("shell".into()),
        data: json!({"name": "shell", "arguments": {"command": "ls -la"}}).to_string(),
        request_data: None,
        context: Context {
            session_id: "conv_bench".into(),
            model: "gpt-bench".into(),
            harness: "agent".into(),
            usage: bench_usage(),
            labels: "{}".into(),
            state: state.to_string(),
            policy_name: "p".into(),
        },
    }
}

/// Policy evaluations in this process: each builtin in a fresh instance per call, and the host's chain of five.
async fn policy_suite(rows: &mut Vec<Row>) {
    use omnigent::policy::{PolicyEnv, PolicyMap, Situation};
    let rt = Runtime::new(None).unwrap();
    let mut row = |metric: &str, value: String, target: &'static str, holds: Option<bool>| {
        eprintln!("  runtime  {metric}: {value}");
        rows.push(Row { metric: metric.to_string(), backend: "-", value, target, holds });
    };
    let usage = bench_usage();
    let args = json!({"name": "shell", "arguments": {"command": "ls -la"}});
    let event = || shell_call(json!({"limit.count": 7, "loops.recent": ["shell:{}", "read_file:{}"]}));
    let decls: PolicyMap = serde_json::from_value(five_policies()).unwrap();
    for (name, decl) in &decls.0 {
        let component = omnigent_runtime::BUILTIN_POLICIES
            .iter()
            .find(|(n, _)| Some(*n) == omnigent::policy::builtin_for(decl.handler.as_deref().unwrap()))
            .unwrap()
            .1;
        let policy = rt.load_policy(component).unwrap();
        let params = serde_json::Value::Object(decl.factory_params.clone()).to_string();
        let mut samples = Vec::new();
        for _ in 0..n(5000) {
            let t = Instant::now();
            policy.evaluate(&params, event(), Default::default()).await.unwrap();
            samples.push(t.elapsed());
        }
        let holds = pct(&mut samples, 0.5) < Duration::from_micros(10);
        row(
            &format!("policy evaluate, fresh instance per call: {name} ({})", decl.handler.as_deref().unwrap()),
            p50_p99(&mut samples),
            "< 10 µs p50",
            Some(holds),
        );
    }
    // The floor: a fresh instance and one trivial call (describe), no JSON work in the guest.
    let floor = rt.load_policy(omnigent_runtime::BUILTIN_POLICIES[4].1).unwrap();
    let mut samples = Vec::new();
    for _ in 0..n(5000) {
        let t = Instant::now();
        floor.describe(Default::default()).await.unwrap();
        samples.push(t.elapsed());
    }
    row("policy floor: fresh instance + describe() (no guest JSON work)", p50_p99(&mut samples), "", None);
    if let Some(file) = std::env::var_os("BENCH_EXTRA_POLICY") {
        let extra = rt.load_policy(&std::fs::read(&file).unwrap()).unwrap();
        let params = std::env::var("BENCH_EXTRA_PARAMS").unwrap_or_else(|_| "{}".into());
        for (what, evaluate) in [("describe()", false), ("evaluate of a shell call", true)] {
            let mut samples = Vec::new();
            for _ in 0..n(5000) {
                let t = Instant::now();
                if evaluate {
                    extra.evaluate(&params, shell_call(json!({})), Default::default()).await.unwrap();
                } else {
                    extra.describe(Default::default()).await.unwrap();
                }
                samples.push(t.elapsed());
            }
            row(&format!("policy {what}, fresh instance: BENCH_EXTRA_POLICY"), p50_p99(&mut samples), "", None);
        }
    }
    let env = PolicyEnv::new(rt.clone(), PolicyMap::default());
    let chain = env.chain(&PolicyMap::default(), &decls).await.unwrap();
    let situation = Situation {
        session_id: "conv_bench".into(),
        model: "gpt-bench".into(),
        harness: "agent".into(),
        usage,
        labels: Default::default(),
        state: Default::default(),
    };
    let mut samples = Vec::new();
    for _ in 0..n(5000) {
        let t = Instant::now();
        let outcome = omnigent::policy::evaluate(
            &chain,
            omnigent::policy::Phase::ToolCall,
            Some("shell"),
            args.clone(),
            None,
            &situation,
        )
        .await;
        assert!(matches!(outcome, omnigent::policy::Outcome::Allow { .. }), "{outcome:?}");
        samples.push(t.elapsed());
    }
    row("chain of 5 policies on one tool call (host chain, JSON in/out)", p50_p99(&mut samples), "", None);
}

/// Turns through the real server against the mock vendor.
async fn turn_suite(rows: &mut Vec<Row>) {
    let db = sqlite_db();
    let dir = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_omnigent"));
    let server = ServerProcess::start(&bin, dir.path(), &db.url, free_port(), &[]).await;
    let pid = server.pid();
    let api = Api::new(server.url.clone());
    let mock = MockLlm::start(vec![]).await;
    let config = json!({"name": "bench", "executor": {"harness": "agent", "model": "gpt-bench", "provider": "openai",
        "auth": {"type": "api_key", "api_key": "k", "base_url": mock.openai_base()}}});
    let mut row = |metric: &str, value: String, target: &'static str, holds: Option<bool>| {
        eprintln!("  sqlite   {metric}: {value}");
        rows.push(Row { metric: metric.to_string(), backend: "sqlite", value, target, holds });
    };

    // One-turn exchange: POST message → response.completed at a subscriber.
    let id = api.create(json!({"config": config})).await;
    let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
    sse.next().await.unwrap();
    let mut samples = timed_turns(&api, &mut sse, &id, n(300), || mock.push(Reply::text("ok"))).await;
    row("one-turn exchange vs mock LLM (POST → response.completed)", p50_p99(&mut samples), "", None);
    drop(sse);

    // A turn with one tool call, without policies and with five on every phase: what the chain and its journaled
    // verdicts add end to end.
    let work = tempfile::tempdir().unwrap();
    let mut on_tool_calls = five_policies();
    for decl in on_tool_calls.as_object_mut().unwrap().values_mut() {
        decl["on"] = json!(["tool_call"]);
    }
    let mut tool_turn_p50 = Vec::new();
    for (label, policies) in [
        ("no policies", json!({})),
        ("5 policies on tool_call", on_tool_calls),
        ("5 policies on every phase", five_policies()),
    ] {
        let mut with = config.clone();
        with["tools"] = json!({"list_dir": {"type": "builtin"}});
        with["os_env"] = json!({"cwd": work.path().display().to_string()});
        with["policies"] = policies;
        let id = api.create(json!({"config": with})).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        sse.next().await.unwrap();
        let mut samples = Vec::new();
        for i in 0..n(200) {
            mock.push(Reply::tool("list_dir", json!({})));
            mock.push(Reply::text("ok"));
            let t = Instant::now();
            api.message(&id, &format!("t{i}")).await;
            sse.until("response.completed").await;
            samples.push(t.elapsed());
            sse.statuses_until_settled().await;
        }
        tool_turn_p50.push(pct(&mut samples, 0.5));
        row(&format!("turn with 1 tool call, {label} (POST → response.completed)"), p50_p99(&mut samples), "", None);
    }
    // Each phase's chain runs once per event of its phase: request, 2 model calls (request + response), 1 tool
    // call and its result, the response.
    let added = tool_turn_p50[2].saturating_sub(tool_turn_p50[0]);
    row(
        "5 policies on every phase add to a turn with a tool call (p50 difference)",
        fmt(added),
        "< 1 ms",
        Some(added < Duration::from_millis(1)),
    );

    // 100 sessions running a turn at once.
    let sessions = n(100);
    let mut streams = Vec::new();
    for _ in 0..sessions {
        let id = api.create(json!({"config": config})).await;
        let mut s = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        s.next().await.unwrap();
        streams.push((id, s));
        mock.push(Reply::text("parallel"));
    }
    let t = Instant::now();
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|(id, mut s)| {
            let api = api.clone();
            tokio::spawn(async move {
                api.message(&id, "go").await;
                s.until("response.completed").await;
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let took = t.elapsed();
    row(
        &format!("{sessions} sessions running a turn concurrently (all completed)"),
        format!("{} ({:.0} turns/s)", fmt(took), sessions as f64 / took.as_secs_f64()),
        "",
        None,
    );

    // RSS per live harness instance: turns held open by a slow model.
    let before = rss_mb(pid);
    let live = n(100);
    let mut held = Vec::new();
    for _ in 0..live {
        mock.push(Reply::Slow { chunks: vec!["a".into(), "b".into()], delay: Duration::from_secs(3) });
        let id = api.create(json!({"config": config})).await;
        let mut s = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        s.next().await.unwrap();
        api.message(&id, "hold").await;
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = rss_mb(pid);
    row(
        &format!("server RSS with {live} live harness instances"),
        format!("{during:.1} MB (+{:.0} KB per turn)", (during - before) * 1024.0 / live as f64),
        "",
        None,
    );
    for mut s in held {
        s.until("response.completed").await;
    }
}

/// Total RSS of the processes whose command name is `name`, in MB.
fn rss_of_processes(name: &str) -> f64 {
    let Ok(procs) = std::fs::read_dir("/proc") else { return 0.0 };
    procs
        .flatten()
        .filter_map(|p| p.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name))
        .map(rss_mb)
        .sum()
}

/// claude-native sessions: what the host adds around the real CLI, and what a native session costs the server.
async fn native_suite(rows: &mut Vec<Row>) {
    let Some(cli) = std::env::var("OMNIGENT_TEST_CLAUDE").ok().filter(|p| !p.is_empty()) else {
        eprintln!("(set OMNIGENT_TEST_CLAUDE to the Claude Code binary to measure claude-native sessions)");
        return;
    };
    let db = sqlite_db();
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_omnigent"));
    let server = ServerProcess::start(&bin, dir.path(), &db.url, free_port(), &[]).await;
    let pid = server.pid();
    let api = Api::new(server.url.clone());
    let mock = MockLlm::start(vec![]).await;
    let config = json!({"name": "bench", "executor": {"harness": "claude-native", "model": "claude-sonnet-4-5",
        "auth": {"type": "api_key", "api_key": "sk-ant-fake-0123456789abcdef", "base_url": mock.url},
        "config_dir": "isolated", "cli_path": cli}, "os_env": {"cwd": work.path()}});
    let mut row = |metric: &str, value: String, target: &'static str| {
        eprintln!("  sqlite   {metric}: {value}");
        rows.push(Row { metric: metric.to_string(), backend: "sqlite", value, target, holds: None });
    };
    let idle_rss = rss_mb(pid);
    let sessions = if quick() { 2 } else { 5 };
    let mut claude = NativeTimes::default();
    for s in 0..sessions {
        // The first session measures warm turns; the others are there for the memory row.
        claude.session(&api, &mock, &config, if s == 0 { n(20) } else { 1 }).await;
    }
    row("claude-native first turn, CLI start included (POST → completed)", p50_p99(&mut claude.first), "");
    row("claude-native POST message → model request (pasted, confirmed, sent)", p50_p99(&mut claude.delivered), "");
    row("claude-native model answered → response.completed (CLI + transcript)", p50_p99(&mut claude.answered), "");
    row("claude-native warm turn (POST → response.completed)", p50_p99(&mut claude.warm), "");
    row(
        "server RSS per live claude-native session",
        format!(
            "{:.2} MB (of {sessions}; CLI itself {:.0} MB each)",
            (rss_mb(pid) - idle_rss) / sessions as f64,
            rss_of_processes("claude.exe") / sessions as f64
        ),
        "< 1 MB",
    );
    // codex-native: the same rows through the Codex app-server (named by OMNIGENT_TEST_CODEX).
    if let Some(codex) = std::env::var("OMNIGENT_TEST_CODEX").ok().filter(|p| !p.is_empty()) {
        let config = json!({"name": "bench", "executor": {"harness": "codex-native", "model": "mock-model",
            "auth": {"type": "api_key", "api_key": "sk-fake", "base_url": format!("{}/v1", mock.url)},
            "config_dir": "isolated", "cli_path": codex}, "os_env": {"cwd": work.path()}});
        let mut codex = NativeTimes::default();
        codex.session(&api, &mock, &config, n(20)).await;
        row("codex-native first turn, app-server start included (POST → completed)", p50_p99(&mut codex.first), "");
        row("codex-native POST message → model request (turn/start)", p50_p99(&mut codex.delivered), "");
        row("codex-native warm turn (POST → response.completed)", p50_p99(&mut codex.warm), "");
    }
    // The CLIs outlive the server by design: stop them (process groups first: codex's app-server ignores the
    // hangup of kill-server).
    for d in std::fs::read_dir(dir.path().join("native")).into_iter().flatten().flatten() {
        let tmux = || {
            let mut c = std::process::Command::new("tmux");
            c.arg("-S").arg(d.path().join("tmux.sock"));
            c
        };
        let panes =
            tmux().args(["list-panes", "-a", "-F", "#{pane_pid}"]).output().map(|o| o.stdout).unwrap_or_default();
        for pid in String::from_utf8_lossy(&panes).lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) on a process group this bench started.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = tmux().arg("kill-server").status();
    }
}

/// Turn timings of native sessions.
#[derive(Default)]
struct NativeTimes {
    /// The first turn of a session: the CLI starts.
    first: Vec<Duration>,
    /// POST → the model's request (the message went through the CLI).
    delivered: Vec<Duration>,
    /// The model's request → response.completed (the mock answers at once: the CLI and the mirroring).
    answered: Vec<Duration>,
    /// POST → response.completed, after the first turn.
    warm: Vec<Duration>,
}

impl NativeTimes {
    /// A new session of `config`, and `turns` one-line turns in it.
    async fn session(&mut self, api: &Api, mock: &MockLlm, config: &serde_json::Value, turns: usize) {
        let model_calls =
            || mock.requests().iter().filter(|r| r.body["tools"].as_array().is_some_and(|t| !t.is_empty())).count();
        let id = api.create(json!({"config": config})).await;
        let mut sse = Sse::open(&format!("{}/v1/sessions/{id}/stream", api.base), &[]).await;
        sse.next().await.unwrap();
        for turn in 0..turns {
            mock.push(Reply::text("ok"));
            let before = model_calls();
            let t = Instant::now();
            api.message(&id, &format!("q{turn}")).await;
            while model_calls() == before {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            let at_model = t.elapsed();
            sse.until("response.completed").await;
            let done = t.elapsed();
            if turn == 0 {
                self.first.push(done);
            } else {
                self.delivered.push(at_model);
                self.answered.push(done - at_model);
                self.warm.push(done);
            }
            sse.statuses_until_settled().await;
        }
    }
}

/// What bubblewrap adds to a builtin tool: `sh -c true` spawned and reaped as the shell tool does, unconfined and
/// in the default sandbox (the working directory writable, the data dir hidden).
async fn tools_suite(rows: &mut Vec<Row>) {
    use omnigent::config::{Executor, OsEnv, SessionConfig};
    use omnigent::sandbox::{Confinement, Sandbox, SandboxOptions};
    let work = tempfile::tempdir().unwrap();
    let data = omnigent_testkit::data_dir_in(work.path());
    let sandbox = match Sandbox::start(SandboxOptions { private_paths: vec![data], ..Default::default() }).await {
        Ok(s) => s,
        Err(e) => return eprintln!("tools suite skipped: {e}"),
    };
    let mut config = SessionConfig::new("bench", Executor::new("agent", Some("m".into())));
    config.os_env = Some(OsEnv { cwd: Some(work.path().display().to_string()), ..OsEnv::default() });
    let confined = sandbox.confine(&config).unwrap();
    if !confined.is_sandboxed() {
        return eprintln!("tools suite skipped: bubblewrap does not run here (apt-get install bubblewrap)");
    }
    let bare = Confinement::unconfined(work.path());
    let mut p50 = Vec::new();
    for (label, place) in [("unconfined", &bare), ("bubblewrap", &confined)] {
        let mut samples = Vec::new();
        for _ in 0..n(200) {
            let t = Instant::now();
            let status = place.command("sh", &["-c", "true"]).status().await.unwrap();
            assert!(status.success());
            samples.push(t.elapsed());
        }
        p50.push(pct(&mut samples, 0.5));
        rows.push(Row {
            metric: format!("shell tool spawn ({label})"),
            backend: "-",
            value: p50_p99(&mut samples),
            target: "",
            holds: None,
        });
    }
    rows.push(Row {
        metric: "bubblewrap adds to a shell tool call".into(),
        backend: "-",
        value: format!("p50 {}", fmt(p50[1].saturating_sub(p50[0]))),
        target: "< 10 ms",
        holds: None,
    });
    mcp_rows(&sandbox, &config, rows).await;
}

/// MCP: a server's start-up (stdio, in the sandbox) and a tool call's round trip over stdio and Streamable HTTP,
/// against the tests' two fixtures: the rmcp one (`cargo build --release -p omnigent-testkit --bin mcp-fixture`) and
/// the FastMCP one (needs OMNIGENT_SDK_PYTHON, the venv scripts/test makes). For the rmcp server, the same call made
/// straight from a bare rmcp client (no hub, no sandbox) is the baseline the hub's rows are set against.
async fn mcp_rows(sandbox: &omnigent::sandbox::Sandbox, base: &omnigent::config::SessionConfig, rows: &mut Vec<Row>) {
    let exe = std::env::current_exe().unwrap();
    let rust = exe.parent().and_then(Path::parent).map(|d| d.join("mcp-fixture")).filter(|f| f.is_file());
    match rust {
        Some(fixture) => {
            let mut direct = direct_mcp_call(&fixture).await;
            let baseline = pct(&mut direct, 0.5);
            rows.push(Row {
                metric: "MCP tool call, a bare rmcp client straight to the rmcp server (stdio)".into(),
                backend: "-",
                value: p50_p99(&mut direct),
                target: "",
                holds: None,
            });
            let rmcp = McpFixture {
                label: "rmcp",
                stdio: json!({"type": "mcp", "command": fixture, "args": ["stdio"]}),
                http: vec![fixture.display().to_string(), "http".into()],
                grant: fixture.parent().unwrap().display().to_string(),
            };
            mcp_server_rows(rmcp, sandbox, base, Some(baseline), rows).await;
        }
        None => eprintln!("rmcp MCP rows skipped: cargo build --release -p omnigent-testkit --bin mcp-fixture"),
    }
    let Some(python) = std::env::var("OMNIGENT_SDK_PYTHON").ok().filter(|p| !p.is_empty()) else {
        return eprintln!("FastMCP rows skipped: set OMNIGENT_SDK_PYTHON (scripts/test makes the venv)");
    };
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mcp_server.py");
    let fixture = fixture.canonicalize().unwrap();
    // The fixture script is granted to the sandbox (the venv and its Python are shown as the program's own).
    let fast = McpFixture {
        label: "FastMCP",
        stdio: json!({"type": "mcp", "command": python, "args": [fixture, "stdio"]}),
        http: vec![python.clone(), fixture.display().to_string(), "http".into()],
        grant: fixture.parent().unwrap().display().to_string(),
    };
    mcp_server_rows(fast, sandbox, base, None, rows).await;
}

/// A bare rmcp client's `echo` round trips to the rmcp fixture over stdio, unconfined.
async fn direct_mcp_call(fixture: &Path) -> Vec<Duration> {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    let mut command = tokio::process::Command::new(fixture);
    command.arg("stdio");
    let transport = rmcp::transport::TokioChildProcess::new(command).unwrap();
    let client = ().serve(transport).await.unwrap();
    let mut samples = Vec::new();
    for _ in 0..n(300) {
        let args = json!({"text": "hi"}).as_object().cloned().unwrap();
        let t = Instant::now();
        client.peer().call_tool(CallToolRequestParams::new("echo").with_arguments(args)).await.unwrap();
        samples.push(t.elapsed());
    }
    let _ = client.cancel().await;
    samples
}

/// An MCP fixture server the rows are measured against.
struct McpFixture {
    label: &'static str,
    /// Its stdio form, as a `type: mcp` tool.
    stdio: serde_json::Value,
    /// The command line of its HTTP form (the port is added; it serves /mcp).
    http: Vec<String>,
    /// What the sandbox must let its stdio form read.
    grant: String,
}

/// The rows of one fixture: its start-up (stdio in the sandbox + HTTP) and its `echo` round trips through the hub.
/// `direct`: the baseline p50, if any.
async fn mcp_server_rows(
    fixture: McpFixture,
    sandbox: &omnigent::sandbox::Sandbox,
    base: &omnigent::config::SessionConfig,
    direct: Option<Duration>,
    rows: &mut Vec<Row>,
) {
    use omnigent::mcp::McpHub;
    let McpFixture { label, stdio, http, grant } = fixture;
    let port = free_port();
    let mut server = std::process::Command::new(&http[0])
        .args(&http[1..])
        .arg(port.to_string())
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut config = base.clone();
    let sandbox_spec = json!({"write_paths": ["."], "read_paths": [grant]});
    config.os_env.as_mut().unwrap().sandbox = Some(serde_json::from_value(sandbox_spec).unwrap());
    let tools = json!({"fx": stdio, "web": {"type": "mcp", "url": format!("http://127.0.0.1:{port}/mcp")}});
    config.tools = serde_json::from_value(tools).unwrap();
    let hub = McpHub::new(omnigent::http_client().build().unwrap());
    let mut starts = Vec::new();
    for _ in 0..n(20).min(20) {
        let id = omnigent::ids::SessionId::new();
        let place = sandbox.confine(&config).unwrap();
        let t = Instant::now();
        let started = hub.start(&id, &config, Ok(&place), async |_| {}).await;
        starts.push(t.elapsed());
        assert!(started.failed.is_empty(), "{:?}", started.failed);
        hub.stop(&id).await;
    }
    rows.push(Row {
        metric: format!("MCP servers start, {label} (stdio in the sandbox + HTTP)"),
        backend: "-",
        value: p50_p99(&mut starts),
        target: "",
        holds: None,
    });
    let id = omnigent::ids::SessionId::new();
    let place = sandbox.confine(&config).unwrap();
    let started = hub.start(&id, &config, Ok(&place), async |_| {}).await;
    for server in ["fx", "web"] {
        let tool = started.tools.iter().find(|t| t.name == format!("{server}__echo")).unwrap();
        let mut samples = Vec::new();
        for _ in 0..n(300) {
            let t = Instant::now();
            // (echo asks nobody anything.)
            let nobody = |_| async { omnigent::session::Answer::cancelled() };
            hub.call(&id, tool, r#"{"text": "hi"}"#, None, nobody).await.unwrap();
            samples.push(t.elapsed());
        }
        let transport = if server == "fx" { "stdio, sandboxed" } else { "Streamable HTTP" };
        let mut value = p50_p99(&mut samples);
        if let (Some(direct), "fx") = (direct, server) {
            value.push_str(&format!(
                " ({:.1}× the bare call)",
                pct(&mut samples, 0.5).as_secs_f64() / direct.as_secs_f64()
            ));
        }
        rows.push(Row {
            metric: format!("MCP tool call round trip, {label} ({transport})"),
            backend: "-",
            value,
            target: "",
            holds: None,
        });
    }
    hub.stop(&id).await;
    let _ = server.kill();
    let _ = server.wait();
}

/// Runs the release `omnigent` with `args` in `cwd` (author builds in a cargo target dir of their own); panics on
/// failure with what it said.
fn omnigent_cli(cwd: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigent"))
        .args(args)
        .current_dir(cwd)
        .env("CARGO_TARGET_DIR", bench_cache().join("plugin-kit-target"))
        .output()
        .expect("run omnigent");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Kept between bench runs (the author's warm caches): `~/.cache/omnigent-bench`.
fn bench_cache() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("omnigent-bench")
}

/// The plugin kit: scaffold-to-built time per kind, component sizes, and the Python policy's evaluations next to
/// the equivalent Rust one (the two scaffolds' example policies are the same rule), fresh instance per call.
async fn plugin_suite(rows: &mut Vec<Row>) {
    let dir = tempfile::tempdir().unwrap();
    let mut row = |metric: &str, value: String, target: &'static str| {
        eprintln!("  plugin   {metric}: {value}");
        rows.push(Row { metric: metric.to_string(), backend: "-", value, target, holds: None });
    };
    let kinds: [(&str, &[&str], &str); 3] = [
        ("Rust policy", &["policy"], "guard_rs"),
        ("Python policy", &["policy", "--lang", "python"], "guard_py"),
        ("Rust harness", &["harness"], "loop_rs"),
    ];
    let mut built = Vec::new();
    for (label, kind, name) in kinds {
        // A first project warms the caches (the toolchain's crates, componentize-py); the second is what an author
        // who has built one before waits for.
        let mut took = Duration::ZERO;
        for round in ["warmup", "measured"] {
            let project = format!("{name}_{round}");
            let mut new = vec!["plugin", "new"];
            new.extend_from_slice(&kind[..1]);
            new.push(&project);
            new.extend_from_slice(&kind[1..]);
            let scaffolded = omnigent_cli(dir.path(), &new);
            took = scaffolded + omnigent_cli(&dir.path().join(&project), &["plugin", "build"]);
        }
        let wasm = dir.path().join(format!("{name}_measured/dist/{name}_measured.wasm"));
        let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
        row(&format!("plugin new + build, {label} (warm caches)"), fmt(took), "");
        row(&format!("component size, {label}"), format!("{:.1} KB", size as f64 / 1024.0), "");
        built.push((label, wasm));
    }

    let event = || shell_call(json!({"p.tool_calls": 7}));
    let params = json!({"blocked": ["git push --force"]}).to_string();
    let mut p50s = Vec::new();
    for (label, wasm) in built.iter().filter(|(label, _)| label.ends_with("policy")) {
        let bytes = std::fs::read(wasm).unwrap();
        // Compile once: what the first session naming the file pays, and a restart's read of the disk cache.
        let cache = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let policy = Runtime::new(Some(cache.path().to_path_buf())).unwrap().load_policy(&bytes).unwrap();
        let compile = t.elapsed();
        let t = Instant::now();
        Runtime::new(Some(cache.path().to_path_buf())).unwrap().load_policy(&bytes).unwrap();
        let cached = t.elapsed();
        row(
            &format!("compile once, {label} (then from the disk cache)"),
            format!("{} ({})", fmt(compile), fmt(cached)),
            "",
        );
        let mut samples = Vec::new();
        for _ in 0..n(2000) {
            let t = Instant::now();
            let decision = policy.evaluate(&params, event(), Default::default()).await.unwrap();
            assert!(matches!(decision.verdict, omnigent_runtime::policy::Verdict::Allow), "{label}");
            samples.push(t.elapsed());
        }
        p50s.push(pct(&mut samples, 0.5));
        row(&format!("evaluate, fresh instance per call, {label} (scaffold example)"), p50_p99(&mut samples), "");
        let mut samples = Vec::new();
        for _ in 0..n(2000) {
            let t = Instant::now();
            policy.describe(Default::default()).await.unwrap();
            samples.push(t.elapsed());
        }
        row(&format!("  of which: fresh instance + describe(), {label}"), p50_p99(&mut samples), "");
    }
    if let [rust, python] = p50s[..] {
        row("Python / Rust evaluate p50", format!("{:.0}×", python.as_secs_f64() / rust.as_secs_f64()), "");
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; this binary takes no other arguments.
    raise_fd_limit();
    let mut rows = Vec::new();
    eprintln!(
        "omnigent bench (release server binary, {} cores){}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        if quick() { " — BENCH_QUICK" } else { "" }
    );
    if wanted("runtime") {
        runtime_suite(&mut rows).await;
    }
    if wanted("policy") {
        policy_suite(&mut rows).await;
    }
    if wanted("turn") {
        turn_suite(&mut rows).await;
    }
    if wanted("native") {
        native_suite(&mut rows).await;
    }
    if wanted("credentials") {
        credentials_suite(&mut rows);
    }
    if wanted("tools") {
        tools_suite(&mut rows).await;
    }
    if wanted("plugin") {
        plugin_suite(&mut rows).await;
    }
    if wanted("floor") {
        let sqlite = floor::floor_suite(sqlite_db(), &mut rows).await;
        if let Some(pg) = postgres_db().await {
            let postgres = floor::floor_suite(pg, &mut rows).await;
            let ratio = postgres.as_secs_f64() / sqlite.as_secs_f64();
            rows.push(Row {
                metric: "Postgres / SQLite: create with a harness config p50".into(),
                backend: "-",
                value: format!("{ratio:.2}×"),
                target: "≤ 1.5×",
                holds: Some(ratio <= 1.5),
            });
        }
    }
    if wanted("replicas") {
        replicas::replicas_suite(&mut rows).await;
    }
    if wanted("store") {
        let sqlite = suite(sqlite_db(), &mut rows).await;
        let postgres = match postgres_db().await {
            Some(pg) => Some(suite(pg, &mut rows).await),
            None => {
                eprintln!("(set TEST_DATABASE_URL=postgres://… to measure Postgres too)");
                None
            }
        };
        store_ratios(&sqlite, postgres.as_ref(), &mut rows);
    }
    let w = rows.iter().map(|r| r.metric.len()).max().unwrap_or(10);
    let v = rows.iter().map(|r| r.value.chars().count()).max().unwrap_or(10);
    println!("\n| {:<w$} | backend  | {:<v$} | target | holds |", "metric", "result");
    println!("|{}|----------|{}|--------|-------|", "-".repeat(w + 2), "-".repeat(v + 2));
    for r in &rows {
        let holds = match r.holds {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!("| {:<w$} | {:<8} | {:<v$} | {} | {holds} |", r.metric, r.backend, r.value, r.target);
    }
    let missed = rows.iter().filter(|r| r.holds == Some(false)).count();
    let checked = rows.iter().filter(|r| r.holds.is_some()).count();
    println!("\n{} of {checked} targets hold", checked - missed);
}
