-- The ttl sweep (every 500 ms) finds queued jobs past their ttl through
-- this index instead of scanning every retained job.
CREATE INDEX jobs_ttl ON jobs ((queued_at + ttl_ms)) WHERE status = 'IN_QUEUE';
