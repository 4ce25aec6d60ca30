-- When answering-machine detection decided, per attempt: `pacer simulate --from-campaign`
-- learns the campaign's detection times from it instead of assuming Pacer's defaults.
ALTER TABLE lead_attempts ADD COLUMN verdict_at BIGINT;
