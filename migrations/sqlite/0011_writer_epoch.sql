-- The writer's fence, as on Postgres (there, replicas claim sessions and bump it; one SQLite server never does, so
-- it stays 0 and the guard it adds to every commit always holds).
ALTER TABLE sessions ADD COLUMN writer_epoch INTEGER NOT NULL DEFAULT 0;
