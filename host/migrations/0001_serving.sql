-- The serving store: handler versions, endpoints, API keys, models, and the
-- durable job queue with its stream chunks. Times are milliseconds since the
-- Unix epoch.

CREATE TABLE handlers (
    digest      TEXT PRIMARY KEY,          -- sha256 of the component bytes, hex
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE endpoints (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    handler     TEXT NOT NULL REFERENCES handlers(digest),
    config      TEXT NOT NULL,             -- JSON: EndpointConfig
    generation  INTEGER NOT NULL DEFAULT 1,-- bumped on every update (hot swap)
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE jobs (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT, -- FIFO order
    id                   TEXT NOT NULL UNIQUE,
    endpoint_id          TEXT NOT NULL,
    status               TEXT NOT NULL,
    input                TEXT NOT NULL,    -- JSON
    output               TEXT,             -- JSON
    error                TEXT,
    progress             TEXT,             -- JSON, while IN_PROGRESS
    webhook              TEXT,
    execution_timeout_ms INTEGER,          -- policy override
    ttl_ms               INTEGER NOT NULL,
    low_priority         INTEGER NOT NULL DEFAULT 0,
    sync                 INTEGER NOT NULL DEFAULT 0,
    retries              INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    queued_at            INTEGER NOT NULL, -- last time it entered the queue
    started_at           INTEGER,
    completed_at         INTEGER,
    delay_ms             INTEGER,
    execution_ms         INTEGER,
    expires_at           INTEGER,          -- purged after this (final jobs)
    worker_id            TEXT,
    host_id              TEXT,             -- the host process that claimed it
    handler              TEXT,             -- handler digest that ran it
    webhook_state        TEXT,             -- NULL | pending | delivered | failed
    webhook_attempts     INTEGER NOT NULL DEFAULT 0,
    webhook_next_at      INTEGER,
    webhook_error        TEXT
);
CREATE INDEX jobs_queue ON jobs (endpoint_id, status, low_priority, seq);
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX jobs_webhooks ON jobs (webhook_next_at) WHERE webhook_state = 'pending';

CREATE TABLE job_stream (
    job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt    INTEGER NOT NULL,
    idx        INTEGER NOT NULL,
    chunk      TEXT NOT NULL,              -- JSON
    delivered  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, attempt, idx)
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,      -- sha256 of the key, hex
    prefix      TEXT NOT NULL,             -- first characters, to recognise it
    scope       TEXT NOT NULL,             -- admin | invoke
    endpoint_id TEXT,                      -- for invoke keys
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE model_files (
    model       TEXT NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (model, path)
);
