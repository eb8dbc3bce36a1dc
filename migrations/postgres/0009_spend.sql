-- What model calls cost, per UTC day: added to in the transaction that records a turn's end, so `GET /v1/usage`
-- reads days, not logs (and a fork, whose log copies its source's usage, adds nothing).
CREATE TABLE daily_spend (
    day      TEXT PRIMARY KEY,
    cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0
);
