//! Transient database failures — a connection cut (a Postgres backend terminated, a network blip), a database
//! briefly unavailable, SQLite busy — are retried with a short backoff before an operation fails. What still
//! fails after the retries is reported; the session layer then ends the turn `failed` (`storage_error`).

use std::future::Future;
use std::time::Duration;

use super::{Result, StoreError};

/// Waits before each retry (five attempts in all, about 1.5 s).
const BACKOFF: [Duration; 4] =
    [Duration::from_millis(50), Duration::from_millis(150), Duration::from_millis(400), Duration::from_millis(900)];

/// Whether the error may pass on a retry.
pub(super) fn transient(e: &StoreError) -> bool {
    if matches!(e, StoreError::Interrupted) {
        return true;
    }
    let StoreError::Db(e) = e else { return false };
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(d) => d.code().is_some_and(|code| {
            let code = code.as_ref();
            // Postgres: connection exceptions (08…), shutdown by an administrator or a crash (57P0x),
            // serialization failure and deadlock (40001, 40P01). SQLite: busy and locked (5, 6, extended codes).
            code.starts_with("08")
                || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "5" | "6" | "261" | "262" | "517")
        }),
        _ => false,
    }
}

/// Runs `op` until it succeeds, fails for good, or runs out of retries.
pub(super) async fn retrying<T, F, Fut>(what: &str, op: F) -> Result<T>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    retrying_after(&BACKOFF, what, op).await
}

async fn retrying_after<T, F, Fut>(backoff: &[Duration], what: &str, mut op: F) -> Result<T>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match op(attempt).await {
            Err(e) if transient(&e) && attempt < backoff.len() => {
                tracing::warn!(error = %e, attempt = attempt + 1, "{what} failed on a transient database error; retrying");
                tokio::time::sleep(backoff[attempt]).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    async fn retrying<T, F, Fut>(what: &str, op: F) -> Result<T>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        retrying_after(&[Duration::ZERO; 4], what, op).await
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_others_are_not() {
        let calls = AtomicUsize::new(0);
        let flaky = retrying("a read", |attempt| {
            calls.fetch_add(1, Ordering::Relaxed);
            async move { if attempt < 2 { Err(StoreError::Db(sqlx::Error::PoolTimedOut)) } else { Ok(attempt) } }
        });
        assert_eq!(flaky.await.unwrap(), 2);
        assert_eq!(calls.load(Ordering::Relaxed), 3);

        calls.store(0, Ordering::Relaxed);
        let broken = retrying("a read", |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>(StoreError::Corrupt("x".into())) }
        });
        assert!(matches!(broken.await, Err(StoreError::Corrupt(_))));
        assert_eq!(calls.load(Ordering::Relaxed), 1, "a permanent error is not retried");

        calls.store(0, Ordering::Relaxed);
        let down = retrying("a read", |_| {
            calls.fetch_add(1, Ordering::Relaxed);
            async { Err::<(), _>(StoreError::Db(sqlx::Error::PoolTimedOut)) }
        });
        assert!(down.await.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 5, "five attempts, then the error");
    }
}
