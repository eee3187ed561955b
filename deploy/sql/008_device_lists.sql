-- Parley schema, version 8: signed device lists (common/devlist.h, docs/PROTOCOL.md "Device
-- lists").
--
-- Every version of an account's device list is kept as the client signed it (body and
-- signature, byte for byte), and accounts.devlist_version names the current one. Accounts
-- registered before this version have devlist_version 0 and no list: their first published
-- list is version 1. The device rows stay the server's working copy (fanout's device-set check,
-- auth, prekeys); a published list is applied to them in the same transaction that stores it,
-- so after a publish the rows are exactly the list's devices.
--
-- Locks. parley_devlist_apply follows 004's rule: whatever adds or removes a device of an
-- existing account first takes the account row FOR NO KEY UPDATE, as fanout batches take their
-- recipients' rows, so a batch sees the device set before or after a publish, never half of
-- it. The removed devices' envelopes are deleted before their device rows, the order the ack
-- path (005) takes them in, so the two never deadlock; prekeys (007) go with the device row
-- (ON DELETE CASCADE), which waits for an upload or claim of that device to finish.

ALTER TABLE accounts ADD COLUMN devlist_version bigint NOT NULL DEFAULT 0
    CHECK (devlist_version >= 0);

CREATE TABLE device_lists (
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    version    bigint NOT NULL CHECK (version >= 1),
    body       bytea NOT NULL CHECK (length(body) BETWEEN 1 AND 2048),
    signature  bytea NOT NULL CHECK (length(signature) = 64),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, version)
);

-- The devices of parley_devlist_apply's arguments as rows.
CREATE FUNCTION parley_devlist_rows(p_ids integer[], p_regs integer[], p_keys bytea)
RETURNS TABLE (device_id integer, registration_id integer, signing_key bytea,
               identity_key bytea)
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT u.dev, u.reg, substring(p_keys FROM (u.o::integer - 1) * 64 + 1 FOR 32),
           substring(p_keys FROM (u.o::integer - 1) * 64 + 33 FOR 32)
      FROM unnest(p_ids, p_regs) WITH ORDINALITY u(dev, reg, o)
$fn$;

-- Stores version p_version of p_account's list and makes the device rows match it, all or
-- nothing. The gateway has parsed the body, checked its signature and that it follows the
-- version it read as current (common/devlist.h pdl_check_next); here the current version is
-- checked again under the account lock, so two publishes of the same version cannot both win.
-- p_ids / p_regs / p_keys are the listed devices (p_keys: signing key || identity key, 64
-- bytes per device, in p_ids order). Result: one row, r_status
--   ok          stored; r_added / r_removed are the device rows inserted / deleted
--   conflict    the current version is not p_version - 1 (r_current: what it is)
--   no_account  the account does not exist (any more)
-- A row whose id is listed with other keys or another registration id (a row the list never
-- had, e.g. written straight into the table) is deleted and inserted as listed.
CREATE FUNCTION parley_devlist_apply(
    p_account   text,
    p_version   bigint,
    p_body      bytea,
    p_signature bytea,
    p_ids       integer[],
    p_regs      integer[],
    p_keys      bytea)
RETURNS TABLE (r_status text, r_current bigint, r_added integer[], r_removed integer[])
LANGUAGE plpgsql
AS $fn$
DECLARE
    n         integer := coalesce(array_length(p_ids, 1), 0);
    v_account bigint;
    v_current bigint;
    v_added   integer[];
    v_removed integer[];
BEGIN
    IF n = 0 OR coalesce(array_length(p_regs, 1), 0) <> n
       OR octet_length(coalesce(p_keys, ''::bytea)) <> 64 * n OR p_version IS NULL
       OR p_version < 1 THEN
        RAISE EXCEPTION 'parley_devlist_apply: inconsistent arguments'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT a.id, a.devlist_version INTO v_account, v_current
      FROM accounts a WHERE a.username = p_account
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_account'::text, 0::bigint, '{}'::integer[], '{}'::integer[];
        RETURN;
    END IF;
    IF v_current <> p_version - 1 THEN
        RETURN QUERY SELECT 'conflict'::text, v_current, '{}'::integer[], '{}'::integer[];
        RETURN;
    END IF;

    -- a row not listed exactly as it is goes, its queue first (see the header)
    SELECT array_agg(d.device_id ORDER BY d.device_id) INTO v_removed
      FROM devices d
     WHERE d.account_id = v_account
       AND NOT EXISTS (SELECT 1 FROM parley_devlist_rows(p_ids, p_regs, p_keys) l
                        WHERE l.device_id = d.device_id
                          AND l.registration_id = d.registration_id
                          AND l.signing_key = d.signing_key
                          AND l.identity_key = d.identity_key);
    IF v_removed IS NOT NULL THEN
        DELETE FROM envelopes e WHERE e.account_id = v_account AND e.device_id = ANY (v_removed);
        DELETE FROM sends s
         WHERE s.sender_account = v_account AND s.sender_device = ANY (v_removed);
        DELETE FROM devices d WHERE d.account_id = v_account AND d.device_id = ANY (v_removed);
    END IF;

    WITH ins AS (
        INSERT INTO devices (account_id, device_id, registration_id, signing_key, identity_key)
        SELECT v_account, l.device_id, l.registration_id, l.signing_key, l.identity_key
          FROM parley_devlist_rows(p_ids, p_regs, p_keys) l
         WHERE NOT EXISTS (SELECT 1 FROM devices d
                            WHERE d.account_id = v_account AND d.device_id = l.device_id)
         ORDER BY l.device_id
        RETURNING device_id
    )
    SELECT array_agg(ins.device_id ORDER BY ins.device_id) INTO v_added FROM ins;

    -- versions above the current one exist only after hand edits of the table: the new
    -- version replaces them
    DELETE FROM device_lists x WHERE x.account_id = v_account AND x.version >= p_version;
    INSERT INTO device_lists (account_id, version, body, signature)
    VALUES (v_account, p_version, p_body, p_signature);
    UPDATE accounts SET devlist_version = p_version WHERE id = v_account;

    RETURN QUERY SELECT 'ok'::text, p_version, coalesce(v_added, '{}'::integer[]),
                        coalesce(v_removed, '{}'::integer[]);
END
$fn$;
