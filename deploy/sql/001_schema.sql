-- Parley schema, version 1: accounts, devices and the per-device envelope queues.
-- PostgreSQL is the truth (DESIGN.md); Redis holds nothing that cannot be rebuilt.

CREATE TABLE accounts (
    id          bigserial PRIMARY KEY,
    username    text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9_.]{3,32}$'),
    account_key bytea NOT NULL CHECK (length(account_key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    account_id      bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id       integer NOT NULL CHECK (device_id > 0),
    registration_id integer NOT NULL CHECK (registration_id > 0),
    signing_key     bytea NOT NULL CHECK (length(signing_key) = 32),
    identity_key    bytea NOT NULL CHECK (length(identity_key) = 32),
    -- envelopes waiting in this device's queue; kept in step by the insert and ack paths so
    -- the queue limit is checked without counting rows
    queue_len       integer NOT NULL DEFAULT 0 CHECK (queue_len >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, device_id)
);

-- One row per envelope waiting for one device. A row leaves only when that device acks it,
-- or when retention expires it (counted in a metric).
CREATE TABLE envelopes (
    id            bigserial PRIMARY KEY,
    account_id    bigint NOT NULL,
    device_id     integer NOT NULL,
    sender        text NOT NULL,
    sender_device integer NOT NULL,
    created_ms    bigint NOT NULL,
    urgent        boolean NOT NULL DEFAULT false,
    content       bytea NOT NULL,
    FOREIGN KEY (account_id, device_id) REFERENCES devices (account_id, device_id) ON DELETE CASCADE
);
CREATE INDEX envelopes_queue ON envelopes (account_id, device_id, id);

-- Accepted sends, so that a resend of the same client_id returns the first answer instead of
-- queueing a second copy. Pruned after the idempotency window.
CREATE TABLE sends (
    sender_account bigint NOT NULL,
    sender_device  integer NOT NULL,
    client_id      bigint NOT NULL,
    device_ids     integer[] NOT NULL,
    envelope_ids   bigint[] NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender_account, sender_device, client_id)
);
CREATE INDEX sends_created ON sends (created_at);
