-- The ttl sweep (every 500 ms) finds queued jobs past their ttl through
-- this index instead of scanning every retained job: that scan held the
-- write lock for as long as it took (tens of ms with 100k retained jobs),
-- and every group commit waited behind it.
CREATE INDEX jobs_ttl ON jobs (queued_at + ttl_ms) WHERE status = 'IN_QUEUE';
