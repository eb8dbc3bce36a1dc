-- Sub-agent child sessions are listed by parent.
CREATE INDEX sessions_by_parent ON sessions (parent_session_id, created_at_us);
