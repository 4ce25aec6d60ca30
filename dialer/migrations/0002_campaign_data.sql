-- Campaign and list manager: start time for abandon accounting, the zones a campaign
-- covers (for leads whose zone is unknown), and indexes the hopper and reports use.

ALTER TABLE campaigns ADD COLUMN started_at BIGINT;

CREATE TABLE campaign_zones (
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    time_zone TEXT NOT NULL,
    PRIMARY KEY (campaign_id, time_zone)
);

CREATE INDEX leads_new ON leads (list_id, state, id);
CREATE INDEX dnc_phone ON dnc (phone);
CREATE INDEX lead_attempts_abandon ON lead_attempts (campaign_id, abandoned, started_at);

-- One lead per number per campaign: duplicates within a list and across a campaign's
-- lists are refused by the database itself, so concurrent imports cannot race past it.
DROP INDEX leads_phone;
CREATE UNIQUE INDEX leads_campaign_phone ON leads (campaign_id, phone);
