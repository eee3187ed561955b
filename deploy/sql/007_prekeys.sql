-- Parley schema, version 7: X3DH prekeys (docs/PROTOCOL.md, "Prekeys").
--
-- Per device: one current signed prekey and a pool of one-time prekeys. The server hands each
-- one-time prekey out at most once: a claim deletes it in the statement that returns it.
--
-- Locks. device_prekeys holds one row per device that ever uploaded; it is that device's
-- prekey lock. Whatever changes a device's prekeys (an upload, a claim) first takes the
-- device's device_prekeys row FOR NO KEY UPDATE, and a request that touches several devices
-- takes them in (account_id, device_id) order, the order every other path of the schema
-- locks device rows in (002, 004, 005). So two uploads or claims of one device run one after
-- the other, and uploads and claims never deadlock with each other. Neither locks `devices`
-- or `accounts` rows beyond the FOR KEY SHARE of a foreign key check, so prekey traffic never
-- waits for a fanout batch or an ack, nor they for it.

-- One row per device that uploaded prekeys: its current signed prekey (NULL until one was
-- uploaded), the one-time prekeys it has in one_time_prekeys (kept in step by the functions
-- below, so logins and claims read a count instead of counting rows) and the highest
-- one-time prekey id ever stored since the last reset: an id at or below it that is no longer
-- in the pool was handed out already, so a retried upload does not put it back.
CREATE TABLE device_prekeys (
    account_id    bigint NOT NULL,
    device_id     integer NOT NULL,
    spk_id        bigint CHECK (spk_id BETWEEN 1 AND 4294967295),
    spk_public    bytea CHECK (length(spk_public) = 32),
    spk_signature bytea CHECK (length(spk_signature) = 64),
    spk_at        timestamptz,
    otk_count     integer NOT NULL DEFAULT 0 CHECK (otk_count >= 0),
    otk_max_id    bigint NOT NULL DEFAULT 0 CHECK (otk_max_id BETWEEN 0 AND 4294967295),
    PRIMARY KEY (account_id, device_id),
    CHECK ((spk_id IS NULL) = (spk_public IS NULL) AND (spk_id IS NULL) = (spk_signature IS NULL)),
    FOREIGN KEY (account_id, device_id) REFERENCES devices (account_id, device_id)
        ON DELETE CASCADE ON UPDATE CASCADE
);

-- The pool of one-time prekeys of a device; claimed lowest id first.
CREATE TABLE one_time_prekeys (
    account_id bigint NOT NULL,
    device_id  integer NOT NULL,
    key_id     bigint NOT NULL CHECK (key_id BETWEEN 1 AND 4294967295),
    public_key bytea NOT NULL CHECK (length(public_key) = 32),
    PRIMARY KEY (account_id, device_id, key_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices (account_id, device_id)
        ON DELETE CASCADE ON UPDATE CASCADE
);

-- Stores an upload of device (p_account, p_device), all or nothing. The gateway checked the
-- lengths, the id ranges, that no one-time id occurs twice, and the signature of the signed
-- prekey. Result: one row, r_status
--   ok           stored; r_otk_count / r_spk_id are the device's prekeys now (r_spk_id 0: none)
--   no_device    the device does not exist (any more)
--   spk_conflict the current signed prekey has id p_spk_id and another public key
--                (r_detail: that id)
--   otk_conflict a one-time prekey of the pool has this id and another public key
--                (r_detail: the id)
--   pool_full    the pool would hold more than p_pool_max (r_detail: how many it would hold)
-- and for anything but ok nothing changed. A one-time prekey already in the pool with the same
-- key is left as it is (a retried upload); one whose id is at or below otk_max_id and not in
-- the pool was claimed already and is skipped. p_replace empties the pool and forgets
-- otk_max_id first (a reinstalled device starts its ids over).
CREATE FUNCTION parley_prekeys_upload(
    p_account       bigint,
    p_device        integer,
    p_spk_id        bigint,      -- NULL: keep the current signed prekey
    p_spk_public    bytea,
    p_spk_signature bytea,
    p_otk_ids       bigint[],    -- one-time prekey ids, may be empty
    p_otk_publics   bytea,       -- their public keys, 32 bytes each, in the same order
    p_replace       boolean,
    p_pool_max      integer)
RETURNS TABLE (r_status text, r_detail bigint, r_otk_count integer, r_spk_id bigint)
LANGUAGE plpgsql
AS $fn$
DECLARE
    n_otk     integer := coalesce(array_length(p_otk_ids, 1), 0);
    v_state   device_prekeys%ROWTYPE;
    v_max     bigint;
    v_bad     bigint;
    v_new     bigint[];
    v_new_pk  bytea[];
    v_keep    integer;
BEGIN
    IF octet_length(coalesce(p_otk_publics, ''::bytea)) <> 32 * n_otk
       OR (p_spk_id IS NULL) <> (p_spk_public IS NULL)
       OR (p_spk_id IS NULL) <> (p_spk_signature IS NULL) THEN
        RAISE EXCEPTION 'parley_prekeys_upload: inconsistent arguments'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM 1 FROM devices d WHERE d.account_id = p_account AND d.device_id = p_device
        FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_device'::text, NULL::bigint, 0, 0::bigint;
        RETURN;
    END IF;
    INSERT INTO device_prekeys (account_id, device_id) VALUES (p_account, p_device)
        ON CONFLICT DO NOTHING;
    SELECT * INTO v_state FROM device_prekeys p
     WHERE p.account_id = p_account AND p.device_id = p_device
       FOR NO KEY UPDATE;

    IF p_spk_id IS NOT NULL AND v_state.spk_id = p_spk_id
       AND v_state.spk_public <> p_spk_public THEN
        RETURN QUERY SELECT 'spk_conflict'::text, p_spk_id, v_state.otk_count,
                            coalesce(v_state.spk_id, 0);
        RETURN;
    END IF;

    WITH u AS (
        SELECT x.id, substring(p_otk_publics FROM ((x.o - 1) * 32 + 1)::integer FOR 32) AS pk
          FROM unnest(p_otk_ids) WITH ORDINALITY x(id, o)
    )
    SELECT (SELECT min(u.id) FROM u JOIN one_time_prekeys k
              ON k.account_id = p_account AND k.device_id = p_device AND k.key_id = u.id
             WHERE k.public_key <> u.pk AND NOT p_replace),
           -- new: not in the pool, and above the high-water mark (below it: claimed already)
           coalesce((SELECT array_agg(u.id ORDER BY u.id) FROM u
                      WHERE (p_replace OR u.id > v_state.otk_max_id)
                        AND (p_replace OR NOT EXISTS (
                              SELECT 1 FROM one_time_prekeys k
                               WHERE k.account_id = p_account AND k.device_id = p_device
                                 AND k.key_id = u.id))), '{}'),
           coalesce((SELECT array_agg(u.pk ORDER BY u.id) FROM u
                      WHERE (p_replace OR u.id > v_state.otk_max_id)
                        AND (p_replace OR NOT EXISTS (
                              SELECT 1 FROM one_time_prekeys k
                               WHERE k.account_id = p_account AND k.device_id = p_device
                                 AND k.key_id = u.id))), '{}')
      INTO v_bad, v_new, v_new_pk;
    IF v_bad IS NOT NULL THEN
        RETURN QUERY SELECT 'otk_conflict'::text, v_bad, v_state.otk_count,
                            coalesce(v_state.spk_id, 0);
        RETURN;
    END IF;

    v_keep := CASE WHEN p_replace THEN 0 ELSE v_state.otk_count END;
    IF v_keep + cardinality(v_new) > p_pool_max THEN
        RETURN QUERY SELECT 'pool_full'::text, (v_keep + cardinality(v_new))::bigint,
                            v_state.otk_count, coalesce(v_state.spk_id, 0);
        RETURN;
    END IF;

    IF p_replace THEN
        DELETE FROM one_time_prekeys k WHERE k.account_id = p_account AND k.device_id = p_device;
        v_max := 0;
    ELSE
        v_max := v_state.otk_max_id;
    END IF;
    INSERT INTO one_time_prekeys (account_id, device_id, key_id, public_key)
    SELECT p_account, p_device, x.id, x.pk FROM unnest(v_new, v_new_pk) x(id, pk);

    UPDATE device_prekeys p
       SET spk_id        = coalesce(p_spk_id, p.spk_id),
           spk_public    = coalesce(p_spk_public, p.spk_public),
           spk_signature = coalesce(p_spk_signature, p.spk_signature),
           spk_at        = CASE WHEN p_spk_id IS NULL THEN p.spk_at ELSE now() END,
           otk_count     = v_keep + cardinality(v_new),
           otk_max_id    = greatest(v_max, coalesce((SELECT max(i) FROM unnest(v_new) i), 0))
     WHERE p.account_id = p_account AND p.device_id = p_device
    RETURNING 'ok'::text, NULL::bigint, p.otk_count, coalesce(p.spk_id, 0)
      INTO r_status, r_detail, r_otk_count, r_spk_id;
    RETURN NEXT;
END
$fn$;

-- The prekey bundles of account p_account for one fetch: one row per current device (only
-- those in p_devices unless it is NULL; never device p_req_device of account p_req_account,
-- the requester itself), in device_id order, each with the device's keys, its signed prekey
-- (NULL columns if none) and ONE one-time prekey claimed for this fetch: deleted in the
-- statement that returns it, so no two fetches ever get the same one (NULL when the pool is
-- empty). r_otk_left is what the pool holds afterwards.
-- No rows: no such account. One row with r_device_id NULL: the account exists but no device
-- matched.
CREATE FUNCTION parley_prekeys_claim(
    p_account     text,
    p_req_account bigint,
    p_req_device  integer,
    p_devices     integer[])
RETURNS TABLE (r_device_id integer, r_registration_id integer, r_signing_key bytea,
               r_identity_key bytea, r_spk_id bigint, r_spk_public bytea,
               r_spk_signature bytea, r_otk_id bigint, r_otk_public bytea,
               r_otk_left integer)
LANGUAGE plpgsql
AS $fn$
DECLARE
    v_acct  bigint;
    v_any   boolean := false;
    d       record;
BEGIN
    SELECT a.id INTO v_acct FROM accounts a WHERE a.username = p_account;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    FOR d IN SELECT dv.device_id, dv.registration_id, dv.signing_key, dv.identity_key
               FROM devices dv
              WHERE dv.account_id = v_acct
                AND (p_devices IS NULL OR dv.device_id = ANY (p_devices))
                AND NOT (v_acct = p_req_account AND dv.device_id = p_req_device)
              ORDER BY dv.device_id LOOP
        v_any := true;
        r_device_id := d.device_id;
        r_registration_id := d.registration_id;
        r_signing_key := d.signing_key;
        r_identity_key := d.identity_key;
        r_spk_id := NULL; r_spk_public := NULL; r_spk_signature := NULL;
        r_otk_id := NULL; r_otk_public := NULL; r_otk_left := 0;
        -- the device's prekey lock, in device order (see the header)
        SELECT p.spk_id, p.spk_public, p.spk_signature, p.otk_count
          INTO r_spk_id, r_spk_public, r_spk_signature, r_otk_left
          FROM device_prekeys p
         WHERE p.account_id = v_acct AND p.device_id = d.device_id
           FOR NO KEY UPDATE;
        IF FOUND AND r_otk_left > 0 THEN
            -- SKIP LOCKED: a row another transaction is claiming (or deleting with its
            -- device) is never waited for, nor returned twice
            DELETE FROM one_time_prekeys k
             WHERE k.account_id = v_acct AND k.device_id = d.device_id
               AND k.key_id = (SELECT o.key_id FROM one_time_prekeys o
                                WHERE o.account_id = v_acct AND o.device_id = d.device_id
                                ORDER BY o.key_id
                                LIMIT 1
                                  FOR UPDATE SKIP LOCKED)
            RETURNING k.key_id, k.public_key INTO r_otk_id, r_otk_public;
            IF FOUND THEN
                UPDATE device_prekeys p SET otk_count = greatest(p.otk_count - 1, 0)
                 WHERE p.account_id = v_acct AND p.device_id = d.device_id
                RETURNING p.otk_count INTO r_otk_left;
            END IF;
        END IF;
        r_otk_left := coalesce(r_otk_left, 0);
        RETURN NEXT;
    END LOOP;
    IF NOT v_any THEN
        r_device_id := NULL; r_registration_id := NULL; r_signing_key := NULL;
        r_identity_key := NULL; r_spk_id := NULL; r_spk_public := NULL;
        r_spk_signature := NULL; r_otk_id := NULL; r_otk_public := NULL; r_otk_left := NULL;
        RETURN NEXT;
    END IF;
END
$fn$;
