-- API keys can expire and be revoked, and say when they were last used. All three are NULL for
-- "never": a key made before this migration never expires, is not revoked and was not seen.
-- `last_used_us` is written at most about once a minute per key, not on every request.
ALTER TABLE api_keys ADD COLUMN expires_us BIGINT;
ALTER TABLE api_keys ADD COLUMN revoked_us BIGINT;
ALTER TABLE api_keys ADD COLUMN last_used_us BIGINT;
CREATE INDEX api_keys_by_financier ON api_keys (financier_id);
