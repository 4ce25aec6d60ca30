-- List filters (field expressions such as `balance < 10`: only matching leads of the list
-- are dialled; empty = every lead), and the index that finds a number's abandoned calls
-- for the lockout, which holds across leads and campaigns.

ALTER TABLE lists ADD COLUMN filter TEXT NOT NULL DEFAULT '';

CREATE INDEX lead_attempts_phone ON lead_attempts (phone, started_at);
