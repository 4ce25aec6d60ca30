-- Agents at work: the campaigns each may work and their tie-break rank, and the log of
-- every agent state change (the agent time report and the occupancy figures read it).

ALTER TABLE agents ADD COLUMN campaigns TEXT NOT NULL DEFAULT '[]';   -- campaign ids (JSON); empty: all
ALTER TABLE agents ADD COLUMN tie_rank BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE;

CREATE TABLE agent_state_log (
    id {{ID}},
    agent_id BIGINT NOT NULL REFERENCES agents(id),
    state TEXT NOT NULL,                         -- logged_out, ready, reserved, on_call, wrap_up, not_ready
    reason TEXT,                                 -- not-ready reason code
    call_id TEXT,                                -- the call held in reserved / on_call
    at BIGINT NOT NULL                           -- Unix ms; the state lasts until the agent's next row
);
CREATE INDEX agent_state_log_agent ON agent_state_log (agent_id, at);
CREATE INDEX agent_state_log_at ON agent_state_log (at);
