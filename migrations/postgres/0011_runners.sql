-- Runners: machines that run the turns of the sessions bound to them (`omnigent runner`). A runner proves who it
-- is with its token, kept here only as a SHA-256 digest. `connected_to` names the server process holding its
-- tunnel (NULL: offline).
CREATE TABLE runners (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    token_sha256    TEXT NOT NULL,
    created_at_us   BIGINT NOT NULL,
    last_seen_at_us BIGINT,
    connected_to    TEXT
);
