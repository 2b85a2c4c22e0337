-- Held messages (send windows, send_at) and the frequency cap's ledgers.
-- Idempotent like 0001.

-- A message waiting for its `due`. `message` is the held message as JSON
-- (its record as held, the final body); the columns beside it are what
-- claims filter and lock on. The row, body included, is deleted at release.
CREATE TABLE IF NOT EXISTS held (
    id          text    PRIMARY KEY,
    tenant      text    NOT NULL,
    due         bigint  NOT NULL,
    lease_until bigint  NOT NULL DEFAULT 0,  -- claimed by a releaser until then
    begun       boolean NOT NULL DEFAULT false,  -- a releaser was about to send it
    message     text    NOT NULL
);

CREATE INDEX IF NOT EXISTS held_due ON held (due, id);

-- Per tenant and recipient: when each counted marketing message goes (JSON),
-- and the newest of those instants, for purging.
CREATE TABLE IF NOT EXISTS frequency (
    tenant text   NOT NULL,
    number text   NOT NULL,
    newest bigint NOT NULL,
    ledger text   NOT NULL,
    PRIMARY KEY (tenant, number)
);

CREATE INDEX IF NOT EXISTS frequency_newest ON frequency (newest);
