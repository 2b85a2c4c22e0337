-- Consents with their history, erased opt-outs and the audit of erasures
-- (issue 14). Idempotent like 0001: only IF NOT EXISTS statements.

-- The current consent of each (tenant, number, list). Its last double
-- opt-in request is request_at/request_expires/request_via (JSON of where
-- the answer is expected)/request_answered; request_code is its
-- confirmation link's code.
CREATE TABLE IF NOT EXISTS consents (
    tenant          text   NOT NULL,
    number          text   NOT NULL,
    list            text   NOT NULL,
    status          text   NOT NULL,   -- pending | given | withdrawn
    since           bigint NOT NULL,
    source          text   NOT NULL,
    given_at        bigint,
    request_at      bigint,
    request_expires bigint,
    request_via     text,
    request_code    text,
    request_answered bigint,
    proof           text,              -- of the event that set the status
    recorded_by     text,
    updated         bigint NOT NULL,
    PRIMARY KEY (tenant, number, list)
);

CREATE UNIQUE INDEX IF NOT EXISTS consents_request_code
    ON consents (request_code) WHERE request_code IS NOT NULL;

-- Listing one list of a tenant in number order; insights by state.
CREATE INDEX IF NOT EXISTS consents_list ON consents (tenant, list, number);

-- The append-only consent history, in the order events were applied.
CREATE SEQUENCE IF NOT EXISTS consent_event_ids;

CREATE TABLE IF NOT EXISTS consent_events (
    id          bigint PRIMARY KEY,
    tenant      text   NOT NULL,
    number      text   NOT NULL,
    list        text   NOT NULL,
    at          bigint NOT NULL,
    action      text   NOT NULL,   -- requested | given | withdrawn
    source      text   NOT NULL,
    proof       text,
    recorded_by text,
    expires     bigint,
    via         text
);

CREATE INDEX IF NOT EXISTS consent_events_number ON consent_events (tenant, number, id);

-- What stays of an opt-out whose number was erased: a keyed hash (HMAC-SHA256
-- of tenant and number under store_secrets 'subject_key'), when the number
-- opted out, how, and when it was erased.
CREATE TABLE IF NOT EXISTS erased (
    tenant text   NOT NULL,
    hash   bytea  NOT NULL,
    since  bigint NOT NULL,
    source text   NOT NULL,
    erased bigint NOT NULL,
    PRIMARY KEY (tenant, hash)
);

-- The audit of each erasure (JSON: when, what was removed, the opt-out kept).
CREATE SEQUENCE IF NOT EXISTS erasure_ids;

CREATE TABLE IF NOT EXISTS erasures (
    tenant  text   NOT NULL,
    hash    bytea  NOT NULL,
    id      bigint NOT NULL,
    erasure text   NOT NULL,
    PRIMARY KEY (tenant, hash, id)
);

-- Keys the store draws once and every node shares.
CREATE TABLE IF NOT EXISTS store_secrets (
    name  text  PRIMARY KEY,
    value bytea NOT NULL
);

-- Access and erasure find a tenant's records to one number.
CREATE INDEX IF NOT EXISTS messages_recipient ON messages (tenant, recipient);
