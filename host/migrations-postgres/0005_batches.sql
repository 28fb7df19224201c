-- Batch jobs (RunPod's batch API): see migrations/0009_batches.sql (the
-- SQLite schema) for what each table holds; the same here. Finalizing
-- inserts a batch's requests into jobs in one statement: the jobs_queued
-- trigger's notifications are one per transaction and endpoint (Postgres
-- folds identical payloads), so the other hosts are woken once.

CREATE TABLE batches (
    id            TEXT PRIMARY KEY,
    endpoint_id   TEXT NOT NULL,
    name          TEXT,
    status        TEXT NOT NULL,           -- DRAFT | FINALIZED | CANCELLED | FAILED
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    finalized_at  BIGINT,
    expires_at    BIGINT                   -- NULL while finalized requests remain
);
CREATE INDEX batches_endpoint ON batches (endpoint_id, created_at);

CREATE TABLE batch_requests (
    batch_id  TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    idx       BIGINT NOT NULL,             -- order of addition
    id        TEXT NOT NULL UNIQUE,        -- the job id it becomes
    input     TEXT NOT NULL,               -- JSON, as the client sent it
    PRIMARY KEY (batch_id, idx)
);

ALTER TABLE jobs ADD COLUMN batch_id TEXT;
ALTER TABLE jobs ADD COLUMN batch_idx BIGINT;
CREATE INDEX jobs_batch ON jobs (batch_id, batch_idx) WHERE batch_id IS NOT NULL;
