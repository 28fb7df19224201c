-- Logs: what handlers log and print, per job and per worker, and the
-- workers' lifecycle events, as one stream per endpoint. Bounded by age and
-- by row count (the serve --log-* settings); lines of a job outlive the job
-- row itself, which is purged after its retention.

CREATE TABLE logs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- order of arrival
    endpoint_id  TEXT NOT NULL,
    worker_id    TEXT,
    job_id       TEXT,
    at           INTEGER NOT NULL,         -- ms since the Unix epoch
    source       TEXT NOT NULL,            -- log | stdout | stderr | system
    level        TEXT NOT NULL,            -- debug | info | warn | error
    message      TEXT NOT NULL
);
CREATE INDEX logs_endpoint ON logs (endpoint_id, seq);
CREATE INDEX logs_job ON logs (job_id, seq) WHERE job_id IS NOT NULL;
CREATE INDEX logs_at ON logs (at);
