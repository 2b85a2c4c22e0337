-- Message records, their providers' ids, and the outbox. Idempotent like
-- 0001. The record itself is kept as JSON (`record`), with the columns a
-- listing filters on beside it.

CREATE TABLE IF NOT EXISTS messages (
    id        text   PRIMARY KEY,  -- msg_..., which sorts by creation time
    tenant    text   NOT NULL,
    created   bigint NOT NULL,
    status    text   NOT NULL,     -- the current (most final) status
    campaign  text,
    recipient text   NOT NULL,
    record    text   NOT NULL
);

CREATE INDEX IF NOT EXISTS messages_tenant ON messages (tenant, id);
CREATE INDEX IF NOT EXISTS messages_created ON messages (created);

-- A report names the provider's id; a message split into parts has one per part.
CREATE TABLE IF NOT EXISTS message_providers (
    provider    text NOT NULL,
    provider_id text NOT NULL,
    id          text NOT NULL,
    PRIMARY KEY (provider, provider_id)
);

CREATE INDEX IF NOT EXISTS message_providers_id ON message_providers (id);

-- Notifications to deliver. `order_key` items go out one at a time in id
-- order; `failed` ones were given up on and are kept for listing.
CREATE SEQUENCE IF NOT EXISTS outbox_ids;

CREATE TABLE IF NOT EXISTS outbox (
    id           bigint  PRIMARY KEY,
    order_key    text,
    tenant       text,
    notification text    NOT NULL,
    created      bigint  NOT NULL,
    due          bigint  NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    lease_until  bigint  NOT NULL DEFAULT 0,
    last_error   text,
    failed       boolean NOT NULL DEFAULT false
);

CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due) WHERE NOT failed;
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (order_key, id) WHERE NOT failed;
CREATE INDEX IF NOT EXISTS outbox_failed_tenant ON outbox (tenant, id) WHERE failed;
