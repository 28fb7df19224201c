-- Batch jobs (RunPod's batch API): a named set of requests of one endpoint.
-- A DRAFT batch's requests wait in batch_requests, apart from the queue;
-- finalizing moves them, in one transaction, into jobs as low-priority jobs
-- that remember their batch and position (the claim order runs them behind
-- every normal job). A batch and its jobs are purged together at
-- expires_at: a retention after its last request finished (a draft: after
-- its last change).

CREATE TABLE batches (
    id            TEXT PRIMARY KEY,
    endpoint_id   TEXT NOT NULL,
    name          TEXT,
    status        TEXT NOT NULL,           -- DRAFT | FINALIZED | CANCELLED | FAILED
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finalized_at  INTEGER,
    expires_at    INTEGER                  -- NULL while finalized requests remain
);
CREATE INDEX batches_endpoint ON batches (endpoint_id, created_at);

CREATE TABLE batch_requests (
    batch_id  TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,            -- order of addition
    id        TEXT NOT NULL UNIQUE,        -- the job id it becomes
    input     TEXT NOT NULL,               -- JSON, as the client sent it
    PRIMARY KEY (batch_id, idx)
);

ALTER TABLE jobs ADD COLUMN batch_id TEXT;
ALTER TABLE jobs ADD COLUMN batch_idx INTEGER;
CREATE INDEX jobs_batch ON jobs (batch_id, batch_idx) WHERE batch_id IS NOT NULL;
