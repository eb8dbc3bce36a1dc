-- The policy fold of a session (its REST-added policies, its policy state, pending and answered elicitations), and
-- the journal of the turn in progress: each harness host-call result, so a turn cut by a restart is replayed
-- without repeating a model or tool call. A turn's journal is deleted in the transaction that ends the turn.
ALTER TABLE sessions ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';

CREATE TABLE turn_journal (
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    response_id TEXT NOT NULL,
    entry       TEXT NOT NULL,
    PRIMARY KEY (session_id, idx)
);
