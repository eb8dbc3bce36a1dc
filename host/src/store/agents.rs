//! The `agents` table: named session configs (`POST /v1/agents`).

use serde_json::Value;

use super::{Backend, Result, Store, StoreError, json_text, on_pool, parse_json, row};

/// A named session config.
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub config: Value,
    pub created_at_us: i64,
}

row! {
    struct AgentRow {
        id: String,
        name: String,
        config: String,
        created_at_us: i64,
    }
}

impl AgentRow {
    fn agent(self) -> Result<Agent> {
        let config = parse_json(&self.config, "agents.config")?;
        Ok(Agent { id: self.id, name: self.name, config, created_at_us: self.created_at_us })
    }
}

impl Store {
    /// Registers a named config. Fails with `NameTaken` when the name is in use (the table's unique constraint
    /// decides, so two servers racing on one Postgres cannot both win).
    pub async fn create_agent(&self, agent: &Agent) -> Result<()> {
        let _turn = self.write_turn().await;
        let result = on_pool!(self, pool => {
            sqlx::query("INSERT INTO agents (id, name, config, created_at_us) VALUES ($1, $2, $3, $4)")
                .bind(&agent.id)
                .bind(&agent.name)
                .bind(json_text(&agent.config))
                .bind(agent.created_at_us)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match result {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::NameTaken(agent.name.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// An agent by id or by name.
    pub async fn get_agent(&self, id_or_name: &str) -> Result<Option<Agent>> {
        let row: Option<AgentRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, config, created_at_us FROM agents WHERE id = $1 OR name = $1")
                .bind(id_or_name)
                .fetch_optional(pool)
                .await?
        });
        row.map(AgentRow::agent).transpose()
    }

    /// Every agent, by name.
    pub async fn list_agents(&self) -> Result<Vec<Agent>> {
        let rows: Vec<AgentRow> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, config, created_at_us FROM agents ORDER BY name").fetch_all(pool).await?
        });
        rows.into_iter().map(AgentRow::agent).collect()
    }
}
