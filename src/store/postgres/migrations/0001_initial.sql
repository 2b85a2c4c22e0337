-- The first schema. Every statement is idempotent (IF NOT EXISTS), so a
-- database whose DDL is not transactional (YugabyteDB before 2.19,
-- CockroachDB's schema changes in a transaction) can re-run it after a
-- partial application. Plain SQL shared by PostgreSQL, CockroachDB and
-- YugabyteDB; no PL/pgSQL, no triggers.
--
-- Times are Unix milliseconds (bigint), as the domain keeps them. Numbers are
-- E.164 text. A missing campaign is NULL, except where it is part of a key
-- ('' there).

-- The state of each (tenant, number). `seq` counts the events appended for
-- it, so the next one is seq + 1: the order of a number's history is decided
-- under this row's lock, never by clocks. A bulk import writes rows with
-- source 'import', imported_at set and no event (history shows one
-- synthesized 'import' event at imported_at, before the number's own events).
CREATE TABLE IF NOT EXISTS suppressions (
    tenant      text    NOT NULL,
    number      text    NOT NULL,
    suppressed  boolean NOT NULL,
    updated     bigint  NOT NULL,
    source      text    NOT NULL,
    reason      text,
    campaign    text,
    imported_at bigint,
    seq         bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, number)
);

-- Re-subscribed numbers: what a bulk import must not overwrite, found without
-- reading the tenant's whole list.
CREATE INDEX IF NOT EXISTS suppressions_subscribed
    ON suppressions (tenant, number) WHERE NOT suppressed;

-- The append-only audit history.
CREATE TABLE IF NOT EXISTS events (
    tenant   text   NOT NULL,
    number   text   NOT NULL,
    seq      bigint NOT NULL,
    at       bigint NOT NULL,
    action   text   NOT NULL,
    source   text   NOT NULL,
    campaign text,
    reason   text,
    raw_text text,
    PRIMARY KEY (tenant, number, seq)
);

-- Opt-out links: the code, and one code per (tenant, number, campaign).
CREATE TABLE IF NOT EXISTS links (
    code     text   PRIMARY KEY,
    tenant   text   NOT NULL,
    number   text   NOT NULL,
    campaign text   NOT NULL,
    created  bigint NOT NULL,
    CONSTRAINT links_key UNIQUE (tenant, number, campaign)
);

-- The last marketing send per (number, short code, tenant): attribution.
CREATE TABLE IF NOT EXISTS sends (
    number    text   NOT NULL,
    shortcode text   NOT NULL,
    tenant    text   NOT NULL,
    at        bigint NOT NULL,
    campaign  text,
    PRIMARY KEY (number, shortcode, tenant)
);

CREATE SEQUENCE IF NOT EXISTS possible_optout_ids;

CREATE TABLE IF NOT EXISTS possible_optouts (
    id        bigint PRIMARY KEY,
    at        bigint NOT NULL,
    number    text   NOT NULL,
    shortcode text   NOT NULL,
    tenants   text[] NOT NULL,
    raw_text  text   NOT NULL
);

-- Idempotency records of send requests with a `reference`.
CREATE TABLE IF NOT EXISTS requests (
    tenant      text    NOT NULL,
    reference   text    NOT NULL,
    done        boolean NOT NULL,
    at          bigint  NOT NULL,
    fingerprint bytea   NOT NULL,
    response    bytea,
    PRIMARY KEY (tenant, reference)
);

CREATE INDEX IF NOT EXISTS requests_at ON requests (at);

-- Per-campaign counters ('' is "no campaign"): `sent`, `optout:<source>`,
-- `reason:<reason>`, updated in the transaction of what they count.
CREATE TABLE IF NOT EXISTS insights (
    tenant   text   NOT NULL,
    campaign text   NOT NULL,
    counter  text   NOT NULL,
    n        bigint NOT NULL,
    PRIMARY KEY (tenant, campaign, counter)
);

-- One row per running node, rewritten by every readiness check: a write the
-- database must accept for /readyz to say ready.
CREATE TABLE IF NOT EXISTS heartbeat (
    node text   PRIMARY KEY,
    at   bigint NOT NULL
);
