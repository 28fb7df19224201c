-- Metering: worker time per endpoint and slice type, the billing basis.
-- A worker is billed while it holds a slice (from placement until it is
-- stopped), in milliseconds, summed into one row per endpoint, slice type
-- and minute so the table stays small and time ranges stay queryable.

CREATE TABLE worker_usage (
    endpoint_id  TEXT NOT NULL,
    slice_type   TEXT NOT NULL,            -- "H100", "2xH100", "MIG-3g.40gb", "cpu"
    minute       INTEGER NOT NULL,         -- start of the minute, ms since the Unix epoch
    worker_ms    INTEGER NOT NULL,
    PRIMARY KEY (endpoint_id, slice_type, minute)
);
CREATE INDEX worker_usage_minute ON worker_usage (minute);
