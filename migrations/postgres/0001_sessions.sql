-- Sessions and their event log. The log is the source of truth; `sessions` and `items` are cached folds of it,
-- written in the same transaction as the events they fold.
CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    created_at_us     BIGINT NOT NULL,
    updated_at_us     BIGINT NOT NULL,
    title             TEXT,
    labels            TEXT NOT NULL DEFAULT '{}',
    status            TEXT NOT NULL,
    last_task_error   TEXT,
    config            TEXT NOT NULL DEFAULT '{}',
    agent_id          TEXT,
    kind              TEXT NOT NULL DEFAULT 'default',
    parent_session_id TEXT,
    last_seq          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_created ON sessions (created_at_us, id);
CREATE INDEX sessions_by_status ON sessions (status, created_at_us, id);

CREATE TABLE events (
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    type          TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE items (
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    position      BIGINT NOT NULL,
    response_id   TEXT,
    type          TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at_us BIGINT NOT NULL,
    data          TEXT NOT NULL,
    created_by    TEXT,
    PRIMARY KEY (session_id, id)
);
CREATE INDEX items_by_position ON items (session_id, position);
