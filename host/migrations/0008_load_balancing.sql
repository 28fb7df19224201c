-- Load-balancing endpoints: which world each handler version is of
-- ("handler": jobs through /v2; "http-handler": HTTP requests through /lb),
-- so an endpoint's type can be checked against its handler.

ALTER TABLE handlers ADD COLUMN world TEXT NOT NULL DEFAULT 'handler';
