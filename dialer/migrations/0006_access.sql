-- Access: API tokens for integrations, web sessions, and the audit log. Tokens and
-- session ids are stored only as SHA-256 hashes: a copy of the database opens nothing.

CREATE TABLE api_tokens (
    id {{ID}},
    user_id BIGINT NOT NULL REFERENCES users(id),
    name TEXT NOT NULL,                          -- what it is for ("crm", "grafana")
    token_hash TEXT NOT NULL UNIQUE,             -- hex SHA-256 of the token
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY,                    -- hex SHA-256 of the cookie value
    user_id BIGINT NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,                          -- the token unsafe requests must echo
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

CREATE TABLE audit_log (
    id {{ID}},
    at BIGINT NOT NULL,                          -- Unix ms
    actor TEXT NOT NULL,                         -- user name, agent:NAME, or token:ID
    action TEXT NOT NULL,                        -- login, login_failed, api, recording, listen …
    target TEXT NOT NULL DEFAULT '',             -- what it acted on (a route, a call, a user)
    detail TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT ''              -- client address when known
);
CREATE INDEX audit_log_at ON audit_log (at);
