-- The writer's fence (host/src/cluster): a replica that takes a session's lock bumps its epoch before it reads the
-- session, and every commit is guarded by the epoch its writer read. A replica that lost the lock without noticing
-- yet cannot commit once another has claimed the session, so the rightful writer never meets a stale one's commit.
ALTER TABLE sessions ADD COLUMN writer_epoch BIGINT NOT NULL DEFAULT 0;
