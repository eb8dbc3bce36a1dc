-- Folds the snapshot shows: the response in progress and the usage so far, per model.
ALTER TABLE sessions ADD COLUMN active_response_id TEXT;
ALTER TABLE sessions ADD COLUMN usage_by_model TEXT NOT NULL DEFAULT '{}';
