-- Web sessions of agents (the agent desktop), beside the users' web_sessions: agents are
-- not users and get no API access, only their own desktop's CTI socket.
CREATE TABLE agent_sessions (
    id_hash TEXT PRIMARY KEY,                    -- hex SHA-256 of the cookie value
    agent_id BIGINT NOT NULL REFERENCES agents(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX agent_sessions_expiry ON agent_sessions (expires_at);
-- The callback a call served is closed by lead: without this, every outcome scanned them all.
CREATE INDEX callbacks_lead ON callbacks (lead_id, done_at);
