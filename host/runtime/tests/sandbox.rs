//! The sandbox against a deliberately hostile harness component (harnesses/fixtures/hostile): a guest that loops,
//! allocates without end or traps fails its own turn with a cause, and the runtime keeps serving other turns.

use std::sync::Arc;
use std::time::{Duration, Instant};

use omnigent_runtime::harness::TurnInput;
use omnigent_runtime::testing::FixedHost;
use omnigent_runtime::{GUEST_DIR, Runtime, TurnFailure, TurnLimits};

fn hostile() -> Vec<u8> {
    std::fs::read(format!("{GUEST_DIR}/hostile.wasm")).expect("the build script puts hostile.wasm in GUEST_DIR")
}

async fn turn(rt: &Runtime, ask: &'static str, limits: TurnLimits) -> Result<String, TurnFailure> {
    let component = rt.load_harness(&hostile()).unwrap();
    component.run_turn(Arc::new(FixedHost::new(ask, "hi")), TurnInput { max_steps: 5 }, limits).await.map(|o| o.text)
}

#[tokio::test]
async fn hostile_guests_fail_their_own_turn_and_the_runtime_carries_on() {
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let limits = TurnLimits { memory_bytes: 64 << 20, deadline: Duration::from_secs(2) };

    let started = Instant::now();
    let looped = turn(&rt, "loop", limits).await.unwrap_err();
    assert!(matches!(looped, TurnFailure::Sandbox(omnigent_runtime::Failure::Deadline(_))), "{looped:?}");
    assert_eq!(looped.code(), "harness_timeout");
    assert!(started.elapsed() < Duration::from_secs(10), "stopped near its deadline: {:?}", started.elapsed());

    let hog = turn(&rt, "alloc", limits).await.unwrap_err();
    assert!(matches!(hog, TurnFailure::Sandbox(omnigent_runtime::Failure::OutOfMemory(_))), "{hog:?}");
    assert!(hog.to_string().contains("64 MiB"), "{hog}");

    let crash = turn(&rt, "trap", limits).await.unwrap_err();
    assert!(matches!(crash, TurnFailure::Sandbox(omnigent_runtime::Failure::Trap(_))), "{crash:?}");
    assert_eq!(crash.code(), "harness_trap");

    // The same runtime and component still run a well-behaved turn.
    assert_eq!(turn(&rt, "be nice", limits).await.unwrap(), "I behaved.");
}

#[tokio::test(flavor = "current_thread")]
async fn a_looping_guest_does_not_starve_other_work_on_the_executor() {
    let rt = Runtime::new(None).unwrap();
    let limits = TurnLimits { memory_bytes: 64 << 20, deadline: Duration::from_secs(3) };
    let component = rt.load_harness(&hostile()).unwrap();
    // One worker thread: if the guest never yielded, the ticker below could not run until the deadline.
    let looping = tokio::spawn(async move {
        component.run_turn(Arc::new(FixedHost::new("loop", "hi")), TurnInput { max_steps: 5 }, limits).await
    });
    let ticks = tokio::spawn(async {
        let mut n = 0;
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
            n += 1;
        }
        n
    });
    let n = ticks.await.unwrap();
    assert!(n > 10, "the executor kept running other tasks ({n} ticks)");
    assert!(matches!(looping.await.unwrap(), Err(TurnFailure::Sandbox(omnigent_runtime::Failure::Deadline(_)))));
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    rt.load_harness(&hostile()).unwrap();
    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].extension().is_some_and(|e| e == "cwasm"));
    // A new runtime (a restart) loads from the cache.
    let rt2 = Runtime::new(Some(cache.path().to_path_buf())).unwrap();
    let t = Instant::now();
    rt2.load_harness(&hostile()).unwrap();
    assert!(t.elapsed() < Duration::from_millis(500), "deserialized, not recompiled: {:?}", t.elapsed());
}

#[tokio::test]
async fn garbage_is_not_a_component() {
    let rt = Runtime::new(None).unwrap();
    let err = rt.load_harness(b"\0asm garbage").err().unwrap();
    assert!(err.to_string().contains("not a valid WebAssembly component"), "{err}");
}

#[test]
fn concurrent_first_uses_compile_a_component_once() {
    let rt = Runtime::new(None).unwrap();
    std::thread::scope(|s| {
        for _ in 0..5 {
            s.spawn(|| rt.load_harness(omnigent_runtime::AGENT_HARNESS).unwrap());
        }
    });
    assert_eq!(rt.compilations(), 1, "five threads asked at once; one compiled, four waited for it");
}

#[tokio::test]
async fn a_deadline_too_far_to_represent_is_no_panic() {
    let rt = Runtime::new(None).unwrap();
    let component = rt.load_harness(omnigent_runtime::AGENT_HARNESS).unwrap();
    let limits = TurnLimits { memory_bytes: 64 << 20, deadline: Duration::from_secs(u64::MAX) };
    let host = Arc::new(FixedHost::new("", "hi"));
    let out = component.run_turn(host, TurnInput { max_steps: 5 }, limits).await;
    assert!(out.is_ok(), "{:?}", out.err());
}
