-- Named session configs ("agents"): sessions can be created from one by id or name.
CREATE TABLE agents (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    config        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL
);
