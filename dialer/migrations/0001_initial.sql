-- Pacer's first schema. One text for SQLite and PostgreSQL: `{{ID}}` becomes the
-- dialect's auto-increment primary key. Times are Unix milliseconds (BIGINT), JSON is TEXT,
-- so the same queries and types serve both databases.

CREATE TABLE campaigns (
    id {{ID}},
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'draft',       -- draft, running, paused, stopped, archived
    dial_mode TEXT NOT NULL DEFAULT 'predictive', -- preview, progressive, power, predictive
    settings TEXT NOT NULL DEFAULT '{}',         -- pacing, caller ID, windows, retry rules (JSON)
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE lists (
    id {{ID}},
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    name TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    UNIQUE (campaign_id, name)
);

CREATE TABLE leads (
    id {{ID}},
    list_id BIGINT NOT NULL REFERENCES lists(id),
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    phone TEXT NOT NULL,                         -- E.164
    alt_phones TEXT NOT NULL DEFAULT '[]',       -- JSON array of E.164 numbers
    name TEXT NOT NULL DEFAULT '',
    time_zone TEXT,                              -- IANA name; NULL when unknown
    postal_code TEXT,
    fields TEXT NOT NULL DEFAULT '{}',           -- custom fields (JSON object)
    state TEXT NOT NULL DEFAULT 'new',           -- new, hopper, dialling, retry, callback, done, dnc
    attempts INTEGER NOT NULL DEFAULT 0,
    next_due_at BIGINT,                          -- earliest next dial (retry/callback)
    owner_agent_id BIGINT,                       -- dedicated agent, if any
    lease_owner TEXT,                            -- node holding the claim
    lease_until BIGINT,                          -- claim expiry
    last_outcome TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX leads_claim ON leads (campaign_id, state, next_due_at);
CREATE INDEX leads_phone ON leads (campaign_id, phone);
CREATE INDEX leads_lease ON leads (lease_until);

CREATE TABLE dispositions (
    code TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    system BOOLEAN NOT NULL DEFAULT FALSE,
    human_contact BOOLEAN NOT NULL DEFAULT FALSE,
    sale BOOLEAN NOT NULL DEFAULT FALSE,
    callback BOOLEAN NOT NULL DEFAULT FALSE,
    dnc BOOLEAN NOT NULL DEFAULT FALSE
);
INSERT INTO dispositions (code, label, system, human_contact, sale, callback, dnc) VALUES
    ('answered', 'Answered', TRUE, TRUE, FALSE, FALSE, FALSE),
    ('no_answer', 'No answer', TRUE, FALSE, FALSE, FALSE, FALSE),
    ('busy', 'Busy', TRUE, FALSE, FALSE, FALSE, FALSE),
    ('invalid_number', 'Invalid number', TRUE, FALSE, FALSE, FALSE, FALSE),
    ('congestion', 'Congestion', TRUE, FALSE, FALSE, FALSE, FALSE),
    ('machine', 'Answering machine', TRUE, FALSE, FALSE, FALSE, FALSE),
    ('abandoned', 'Abandoned', TRUE, TRUE, FALSE, FALSE, FALSE),
    ('dnc', 'Do not call', TRUE, TRUE, FALSE, FALSE, TRUE);

CREATE TABLE lead_attempts (
    id {{ID}},
    lead_id BIGINT NOT NULL REFERENCES leads(id),
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    phone TEXT NOT NULL,
    call_id TEXT,                                -- SIP Call-ID of the trunk leg
    trunk TEXT,
    started_at BIGINT NOT NULL,
    answered_at BIGINT,
    connected_at BIGINT,                         -- agent connected
    ended_at BIGINT,
    sip_status INTEGER,
    q850_cause INTEGER,
    outcome TEXT NOT NULL,                       -- system disposition code
    answered_by TEXT,                            -- human, machine, unknown
    agent_id BIGINT,
    disposition TEXT REFERENCES dispositions(code),
    abandoned BOOLEAN NOT NULL DEFAULT FALSE,
    talk_s DOUBLE PRECISION NOT NULL DEFAULT 0,
    wrap_s DOUBLE PRECISION NOT NULL DEFAULT 0,
    recording_path TEXT,
    notes TEXT
);
CREATE INDEX lead_attempts_lead ON lead_attempts (lead_id);
CREATE INDEX lead_attempts_campaign ON lead_attempts (campaign_id, started_at);

CREATE TABLE dnc (
    id {{ID}},
    campaign_id BIGINT NOT NULL DEFAULT 0,       -- 0: the system-wide list
    phone TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    added_at BIGINT NOT NULL,
    UNIQUE (campaign_id, phone)
);

CREATE TABLE callbacks (
    id {{ID}},
    lead_id BIGINT NOT NULL REFERENCES leads(id),
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
    agent_id BIGINT,                             -- NULL: anyone
    due_at BIGINT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    done_at BIGINT
);
CREATE INDEX callbacks_due ON callbacks (campaign_id, done_at, due_at);

CREATE TABLE agents (
    id {{ID}},
    username TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL DEFAULT '',
    skills TEXT NOT NULL DEFAULT '{}',           -- skill -> level 1..10 (JSON)
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id {{ID}},
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,                          -- admin, manager, supervisor, agent
    created_at BIGINT NOT NULL
);
