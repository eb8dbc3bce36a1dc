-- Several servers on one database (host/src/cluster): each registers here with the address other replicas forward a
-- session's writes to, and the backend pid of the connection that holds its sessions' advisory locks (pg_locks names
-- the pid, this table the replica).
CREATE TABLE replicas (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    backend_pid   INTEGER NOT NULL,
    started_at_us BIGINT NOT NULL
);

-- Every commit that moves a session's log on (and every create and delete) wakes the replicas that follow the
-- session or feed a list of sessions: the payload is `<session id> <last_seq> <writer>` (-1: deleted; the writer is
-- the `omnigent.replica` setting of the connection that wrote, which each omnigent server sets to its replica id). A notification only says "read the log": it is sent on commit,
-- by whichever writer, and a missed one costs a delay, never an event. The channel is per schema, so databases
-- shared through schemas do not wake each other.
CREATE FUNCTION omnigent_session_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('omnigent:' || TG_TABLE_SCHEMA,
            OLD.id || ' -1 ' || coalesce(current_setting('omnigent.replica', true), ''));
        RETURN OLD;
    END IF;
    PERFORM pg_notify('omnigent:' || TG_TABLE_SCHEMA,
        NEW.id || ' ' || NEW.last_seq || ' ' || coalesce(current_setting('omnigent.replica', true), ''));
    RETURN NEW;
END
$$;

CREATE TRIGGER sessions_moved AFTER UPDATE ON sessions FOR EACH ROW
    WHEN (OLD.last_seq IS DISTINCT FROM NEW.last_seq) EXECUTE FUNCTION omnigent_session_moved();
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions FOR EACH ROW EXECUTE FUNCTION omnigent_session_moved();
CREATE TRIGGER sessions_created AFTER INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION omnigent_session_moved();
