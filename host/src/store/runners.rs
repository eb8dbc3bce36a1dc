//! The `runners` table: machines that run the turns of the sessions bound to them (`omnigent runner`). A runner's
//! token is kept only as its SHA-256 digest; `connected_to` names the server process that holds its tunnel.

use super::{Backend, Result, Store, on_pool, row};

/// A registered runner.
#[derive(Clone, Debug, PartialEq)]
pub struct RunnerRecord {
    pub id: String,
    pub name: String,
    pub created_at_us: i64,
    pub last_seen_at_us: Option<i64>,
    /// The server process (its replica id, or `local`) whose tunnel the runner is connected to; None: offline.
    pub connected_to: Option<String>,
}

row! {
    struct RunnerRow {
        id: String,
        name: String,
        created_at_us: i64,
        last_seen_at_us: Option<i64>,
        connected_to: Option<String>,
    }
}

impl From<RunnerRow> for RunnerRecord {
    fn from(r: RunnerRow) -> Self {
        RunnerRecord {
            id: r.id,
            name: r.name,
            created_at_us: r.created_at_us,
            last_seen_at_us: r.last_seen_at_us,
            connected_to: r.connected_to,
        }
    }
}

const COLUMNS: &str = "id, name, created_at_us, last_seen_at_us, connected_to";

impl Store {
    pub async fn create_runner(&self, runner: &RunnerRecord, token_sha256: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            sqlx::query("INSERT INTO runners (id, name, token_sha256, created_at_us) VALUES ($1, $2, $3, $4)")
                .bind(&runner.id)
                .bind(&runner.name)
                .bind(token_sha256)
                .bind(runner.created_at_us)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn list_runners(&self) -> Result<Vec<RunnerRecord>> {
        let query = format!("SELECT {COLUMNS} FROM runners ORDER BY created_at_us, id");
        let rows: Vec<RunnerRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(query)).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(RunnerRecord::from).collect())
    }

    pub async fn get_runner(&self, id: &str) -> Result<Option<RunnerRecord>> {
        let query = format!("SELECT {COLUMNS} FROM runners WHERE id = $1");
        let row: Option<RunnerRow> = on_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(query)).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(RunnerRecord::from))
    }

    /// The digest of a runner's token, to check one presented.
    pub async fn runner_token_digest(&self, id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT token_sha256 FROM runners WHERE id = $1").bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(|(d,)| d))
    }

    /// Records that a runner's tunnel opened on server process `to` (or closed there: None), at `now_us`. A close
    /// only clears a connection that is still the one recorded (the runner may have reconnected elsewhere).
    pub async fn runner_connected(&self, id: &str, to: Option<&str>, from: &str, now_us: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            match to {
                Some(to) => {
                    sqlx::query("UPDATE runners SET connected_to = $2, last_seen_at_us = $3 WHERE id = $1")
                        .bind(id)
                        .bind(to)
                        .bind(now_us)
                        .execute(pool)
                        .await?;
                }
                None => {
                    sqlx::query(
                        "UPDATE runners SET connected_to = NULL, last_seen_at_us = $3 WHERE id = $1 AND connected_to = $2",
                    )
                    .bind(id)
                    .bind(from)
                    .bind(now_us)
                    .execute(pool)
                    .await?;
                }
            }
        });
        Ok(())
    }
}
