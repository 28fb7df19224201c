-- API keys are hashed with the install's secret (HMAC-SHA256 keyed with
-- <home>/key.secret) instead of a plain sha256, so a low-entropy key cannot
-- be recovered from the database alone. Rows written before keep their
-- sha256 until the key is next used (or, for WASMPOD_ADMIN_KEY, the next
-- start), when they are re-hashed.
ALTER TABLE api_keys ADD COLUMN hash_scheme TEXT NOT NULL DEFAULT 'sha256'; -- sha256 | hmac-sha256

-- An operator-chosen key's first characters are part of the secret: no
-- longer kept. (Generated keys keep theirs: "wpk_" and 6 of 64 random hex
-- digits.)
UPDATE api_keys SET prefix = ''
 WHERE name = 'bootstrap (WASMPOD_ADMIN_KEY)' OR prefix NOT LIKE 'wpk_%';
