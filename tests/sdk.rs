//! The published Python SDK (`omnigent-client` from PyPI) against the real server binary. `scripts/test` makes a
//! Python ≥ 3.12 venv with the SDK and sets OMNIGENT_SDK_PYTHON; CI sets OMNIGENT_REQUIRE_SDK=1 so it cannot be
//! skipped there.

use std::path::PathBuf;

use omnigent_testkit::{ServerProcess, databases, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_python_sdk_reads_and_streams_sessions_unchanged() {
    let Some(python) = std::env::var("OMNIGENT_SDK_PYTHON").ok().filter(|p| !p.is_empty()) else {
        assert_ne!(
            std::env::var("OMNIGENT_REQUIRE_SDK").as_deref(),
            Ok("1"),
            "OMNIGENT_REQUIRE_SDK=1 but OMNIGENT_SDK_PYTHON is not set (scripts/test sets it up)"
        );
        eprintln!("skipped: OMNIGENT_SDK_PYTHON is not set (scripts/test creates the SDK venv)");
        return;
    };
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/python/sdk_sessions.py");
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let server =
            ServerProcess::start(&PathBuf::from(env!("CARGO_BIN_EXE_omnigent")), dir.path(), &db.url, free_port(), &[])
                .await;
        let out = tokio::process::Command::new(&python).arg(&script).arg(&server.url).output().await.unwrap();
        assert!(
            out.status.success(),
            "{}: the SDK script failed:\n{}\n{}",
            db.label,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
