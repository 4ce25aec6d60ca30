-- The global kill switch, one row shared by every node: while `engaged`, no node starts a
-- call (calls in progress finish). Set by the API or `pacer kill`, read by each node's
-- dialer every second, so it survives restarts and reaches nodes whose HTTP is down.
-- And `blocked`: the outcome of a call the toll-fraud guard refused to place.

CREATE TABLE kill_switch (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    engaged BOOLEAN NOT NULL DEFAULT FALSE,
    changed_at BIGINT NOT NULL DEFAULT 0,
    changed_by TEXT NOT NULL DEFAULT ''
);
INSERT INTO kill_switch (id, engaged, changed_at, changed_by) VALUES (1, FALSE, 0, '');

INSERT INTO dispositions (code, label, system, human_contact, sale, callback, dnc) VALUES
    ('blocked', 'Blocked (toll-fraud guard)', TRUE, FALSE, FALSE, FALSE, FALSE);
