-- Logs (as host/migrations/0006_logs.sql): what handlers log and print, per
-- job and per worker, and the workers' lifecycle events, one stream per
-- endpoint; every host of a cluster writes its workers' lines here.

CREATE TABLE logs (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- order of arrival
    endpoint_id  TEXT NOT NULL,
    worker_id    TEXT,
    job_id       TEXT,
    at           BIGINT NOT NULL,          -- ms since the Unix epoch
    source       TEXT NOT NULL,            -- log | stdout | stderr | system
    level        TEXT NOT NULL,            -- debug | info | warn | error
    message      TEXT NOT NULL
);
CREATE INDEX logs_endpoint ON logs (endpoint_id, seq);
CREATE INDEX logs_job ON logs (job_id, seq) WHERE job_id IS NOT NULL;
CREATE INDEX logs_at ON logs (at);
