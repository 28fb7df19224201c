-- The serving store on Postgres (cluster mode): the same tables as the
-- SQLite schema (host/migrations/), plus the hosts of the cluster and the
-- notifications that wake the other hosts. Times are milliseconds since
-- the Unix epoch.

CREATE TABLE handlers (
    digest      TEXT PRIMARY KEY,          -- sha256 of the component bytes, hex
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- The component bytes, so every host can run every handler with no
-- shared filesystem (each caches them under its own --home).
CREATE TABLE handler_bytes (
    digest      TEXT PRIMARY KEY REFERENCES handlers(digest) ON DELETE CASCADE,
    bytes       BYTEA NOT NULL
);

CREATE TABLE endpoints (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    handler     TEXT NOT NULL REFERENCES handlers(digest),
    config      TEXT NOT NULL,             -- JSON: EndpointConfig
    generation  BIGINT NOT NULL DEFAULT 1, -- bumped on every update (hot swap)
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE jobs (
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- FIFO order
    id                   TEXT NOT NULL UNIQUE,
    endpoint_id          TEXT NOT NULL,
    status               TEXT NOT NULL,
    input                TEXT NOT NULL,    -- JSON
    output               TEXT,             -- JSON
    error                TEXT,
    progress             TEXT,             -- JSON, while IN_PROGRESS
    webhook              TEXT,
    execution_timeout_ms BIGINT,           -- policy override
    ttl_ms               BIGINT NOT NULL,
    low_priority         BOOLEAN NOT NULL DEFAULT FALSE,
    sync                 BOOLEAN NOT NULL DEFAULT FALSE,
    retries              BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    queued_at            BIGINT NOT NULL,  -- last time it entered the queue
    started_at           BIGINT,
    completed_at         BIGINT,
    delay_ms             BIGINT,
    execution_ms         BIGINT,
    expires_at           BIGINT,           -- purged after this (final jobs)
    worker_id            TEXT,
    host_id              TEXT,             -- the host that claimed it (its lease: that host's heartbeat)
    handler              TEXT,             -- handler digest that ran it
    webhook_state        TEXT,             -- NULL | pending | delivered | failed
    webhook_attempts     BIGINT NOT NULL DEFAULT 0,
    webhook_next_at      BIGINT,
    webhook_error        TEXT
);
CREATE INDEX jobs_queue ON jobs (endpoint_id, low_priority, seq) WHERE status = 'IN_QUEUE';
CREATE INDEX jobs_running ON jobs (host_id) WHERE status = 'IN_PROGRESS';
CREATE INDEX jobs_endpoint_status ON jobs (endpoint_id, status);
CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX jobs_webhooks ON jobs (webhook_next_at) WHERE webhook_state = 'pending';

CREATE TABLE job_stream (
    job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt    BIGINT NOT NULL,
    idx        BIGINT NOT NULL,
    chunk      TEXT NOT NULL,              -- JSON
    delivered  BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (job_id, attempt, idx)
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,      -- sha256 of the key, hex
    prefix      TEXT NOT NULL,
    scope       TEXT NOT NULL,             -- admin | invoke
    endpoint_id TEXT,                      -- for invoke keys
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE model_files (
    model       TEXT NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (model, path)
);

CREATE TABLE worker_usage (
    endpoint_id  TEXT NOT NULL,
    slice_type   TEXT NOT NULL,
    minute       BIGINT NOT NULL,
    worker_ms    BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, slice_type, minute)
);
CREATE INDEX worker_usage_minute ON worker_usage (minute);

-- The hosts of the cluster. A host's heartbeat is the lease on the jobs it
-- claimed: once it is older than the dead-host time, another host
-- re-queues them.
CREATE TABLE hosts (
    id            TEXT PRIMARY KEY,
    address       TEXT NOT NULL,           -- where its API listens
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL
);

-- Wake-ups for the other hosts, sent when the transaction commits:
-- "wasmpod_queued" (payload: endpoint id) when a job enters the queue, so
-- idle workers anywhere claim it; "wasmpod_final" (payload: endpoint id,
-- job id, status) when a job becomes final, so a /runsync waiting on any
-- host answers and the host running a cancelled job stops it.
CREATE FUNCTION wasmpod_job_notify() RETURNS trigger AS $$
BEGIN
    IF NEW.status = 'IN_QUEUE' THEN
        PERFORM pg_notify('wasmpod_queued', NEW.endpoint_id);
    ELSIF NEW.status IN ('COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT') THEN
        PERFORM pg_notify('wasmpod_final', NEW.endpoint_id || ' ' || NEW.id || ' ' || NEW.status);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER jobs_queued AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.status = 'IN_QUEUE') EXECUTE FUNCTION wasmpod_job_notify();
CREATE TRIGGER jobs_changed AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION wasmpod_job_notify();
