-- Session files: uploads and artifacts written by harnesses. The content lives here (not in the event log, which
-- announces each file with an event).
CREATE TABLE files (
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    content       BLOB NOT NULL,
    source        TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (session_id, id)
);
CREATE INDEX files_by_created ON files (session_id, created_at_us, id);
