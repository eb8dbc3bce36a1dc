-- Per-session settings a client changes with PATCH: archived (listed only on request), and the reasoning effort,
-- model override and external session id (JSON). Folded from the log like the rest of the row.
ALTER TABLE sessions ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
