-- Review comments on a session: a fold of its session.comment.* events, written with them.
CREATE TABLE comments (
    session_id    TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    path          TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (session_id, id)
);
CREATE INDEX comments_by_path ON comments (session_id, path, created_at_us);
