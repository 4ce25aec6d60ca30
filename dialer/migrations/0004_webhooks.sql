-- Webhook deliveries: an outbox, so that an event survives a restart and is retried until
-- the receiver takes it (or the attempts run out).

CREATE TABLE webhook_outbox (
    id {{ID}},
    node TEXT NOT NULL,                          -- the node that delivers it
    url TEXT NOT NULL,
    event TEXT NOT NULL,                         -- call.ended, call.dispositioned
    body TEXT NOT NULL,                          -- the JSON sent
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL,                     -- Unix ms of the next try
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (node, delivered_at, next_at);
