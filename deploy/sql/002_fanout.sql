-- Parley schema, version 2: the fanout's batch acceptance and the pruning of `sends`.
--
-- parley_accept_batch takes every send of one fanout batch as parallel arrays, so a batch costs
-- one round trip and one transaction. Sends are handled in array order; each one gets exactly
-- one result row and a send that is rejected queues nothing while the others go on.
--
-- Concurrency: before looking at any send, the function locks every device row of every
-- recipient of the batch in (account_id, device_id) order. Two fanouts (or a fanout and the
-- gateway's ack path, if that updates devices in the same order) therefore never deadlock on
-- device rows, the device set cannot change under a check, and a device's envelope ids are
-- allocated and committed in ascending order (a drain never skips a lower id committed later).
-- Two fanouts that process the same send (a reclaimed entry) serialise on the recipient's device
-- rows, so the second one sees the first one's `sends` row and answers it as a duplicate.

CREATE FUNCTION parley_accept_batch(
    p_senders        text[],     -- per send: sender account (normalised name)
    p_sender_devices integer[],  -- per send: sending device
    p_client_ids     bigint[],   -- per send: client id (the uint64 reinterpreted as signed)
    p_recipients     text[],     -- per send: recipient account (normalised name)
    p_urgent         boolean[],  -- per send
    p_env_send       integer[],  -- per envelope: 0-based index of its send, non-decreasing
    p_env_device     integer[],  -- per envelope: addressed device
    p_env_reg        integer[],  -- per envelope: registration id the sender believes current
    p_env_len        integer[],  -- per envelope: length of its content within p_contents
    p_contents       bytea,      -- every content of the batch, concatenated in envelope order
    p_queue_max      integer)    -- a device with this many queued envelopes takes no more
RETURNS TABLE (
    r_send           integer,    -- 0-based send index
    r_status         text,       -- accepted duplicate unknown_sender unknown_account invalid
                                 -- mismatch queue_full
    r_device_ids     integer[],  -- accepted/duplicate: device of each stored envelope
    r_envelope_ids   bigint[],   -- accepted/duplicate: envelope id for that device
    r_created_ms     bigint,     -- accepted: timestamp of the new envelopes
    r_missing        integer[],  -- mismatch
    r_extra          integer[],  -- mismatch
    r_stale          integer[],  -- mismatch
    r_full           integer[],  -- queue_full
    r_queued_devices integer[],  -- duplicate: envelopes of that send still queued, so that the
    r_queued_ids     bigint[],   -- fanout can re-push them (a fanout may have died between
    r_queued_created bigint[],   -- commit and push)
    r_queued_content bytea[])
LANGUAGE plpgsql
AS $fn$
DECLARE
    n_sends  integer := coalesce(array_length(p_senders, 1), 0);
    n_env    integer := coalesce(array_length(p_env_send, 1), 0);
    v_now_ms bigint;
    v_k      integer := 1;           -- next envelope (1-based)
    v_pos    integer := 1;           -- next content byte (1-based, for substring)
    v_sender bigint;
    v_rcpt   bigint;
    v_own    boolean;
    v_sdev   integer;
    v_addr   integer[];
    v_reg    integer[];
    v_content bytea[];
    v_bad    boolean;
    v_ids    bigint[];
    v_len    integer;
BEGIN
    IF coalesce(array_length(p_sender_devices, 1), 0) <> n_sends
       OR coalesce(array_length(p_client_ids, 1), 0) <> n_sends
       OR coalesce(array_length(p_recipients, 1), 0) <> n_sends
       OR coalesce(array_length(p_urgent, 1), 0) <> n_sends
       OR coalesce(array_length(p_env_device, 1), 0) <> n_env
       OR coalesce(array_length(p_env_reg, 1), 0) <> n_env
       OR coalesce(array_length(p_env_len, 1), 0) <> n_env
       OR (SELECT coalesce(sum(l), 0) FROM unnest(p_env_len) l) <> octet_length(p_contents)
       OR EXISTS (SELECT 1 FROM unnest(p_env_len) l WHERE l IS NULL OR l < 0)
       OR EXISTS (SELECT 1 FROM unnest(p_env_send) WITH ORDINALITY s(i, o)
                  WHERE i IS NULL OR i < 0 OR i >= n_sends
                     OR (o > 1 AND i < p_env_send[o::integer - 1]))
       OR p_queue_max IS NULL THEN
        RAISE EXCEPTION 'parley_accept_batch: inconsistent batch arrays'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM 1
       FROM devices d
      WHERE d.account_id IN (SELECT a.id FROM accounts a WHERE a.username = ANY (p_recipients))
      ORDER BY d.account_id, d.device_id
        FOR NO KEY UPDATE OF d;
    v_now_ms := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;

    FOR i IN 0 .. n_sends - 1 LOOP
        r_send := i;
        r_status := NULL;
        r_device_ids := NULL; r_envelope_ids := NULL; r_created_ms := NULL;
        r_missing := NULL; r_extra := NULL; r_stale := NULL; r_full := NULL;
        r_queued_devices := NULL; r_queued_ids := NULL; r_queued_created := NULL;
        r_queued_content := NULL;

        -- this send's envelopes
        v_addr := '{}'; v_reg := '{}'; v_content := '{}'; v_bad := false;
        WHILE v_k <= n_env AND p_env_send[v_k] = i LOOP
            v_len := p_env_len[v_k];
            IF p_env_device[v_k] IS NULL OR p_env_device[v_k] <= 0
               OR p_env_reg[v_k] IS NULL OR p_env_reg[v_k] <= 0 OR v_len = 0
               OR p_env_device[v_k] = ANY (v_addr) THEN
                v_bad := true;
            END IF;
            v_addr := v_addr || p_env_device[v_k];
            v_reg := v_reg || p_env_reg[v_k];
            v_content := v_content || substring(p_contents FROM v_pos FOR v_len);
            v_pos := v_pos + v_len;
            v_k := v_k + 1;
        END LOOP;
        v_sdev := p_sender_devices[i + 1];

        SELECT a.id INTO v_sender FROM accounts a WHERE a.username = p_senders[i + 1];
        IF NOT FOUND THEN
            r_status := 'unknown_sender';
            RETURN NEXT;
            CONTINUE;
        END IF;

        SELECT s.device_ids, s.envelope_ids INTO r_device_ids, r_envelope_ids
          FROM sends s
         WHERE s.sender_account = v_sender AND s.sender_device = v_sdev
           AND s.client_id = p_client_ids[i + 1];
        IF FOUND THEN
            r_status := 'duplicate';
            SELECT array_agg(e.device_id ORDER BY e.id), array_agg(e.id ORDER BY e.id),
                   array_agg(e.created_ms ORDER BY e.id), array_agg(e.content ORDER BY e.id)
              INTO r_queued_devices, r_queued_ids, r_queued_created, r_queued_content
              FROM envelopes e
             WHERE e.id = ANY (r_envelope_ids)
               -- a client_id reused for another recipient must not push the first send's
               -- envelopes to the second recipient
               AND e.account_id = (SELECT a.id FROM accounts a
                                    WHERE a.username = p_recipients[i + 1]);
            RETURN NEXT;
            CONTINUE;
        END IF;

        SELECT a.id INTO v_rcpt FROM accounts a WHERE a.username = p_recipients[i + 1];
        IF NOT FOUND THEN
            r_status := 'unknown_account';
            RETURN NEXT;
            CONTINUE;
        END IF;

        IF v_bad OR cardinality(v_addr) = 0 OR v_sdev IS NULL
           OR p_client_ids[i + 1] IS NULL OR p_client_ids[i + 1] = 0 THEN
            r_status := 'invalid';
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- DESIGN invariant 5: exactly the current devices (for the own account: all but the
        -- sending one), each with its current registration id
        v_own := v_rcpt = v_sender;
        SELECT coalesce((SELECT array_agg(d.device_id ORDER BY d.device_id)
                           FROM devices d
                          WHERE d.account_id = v_rcpt
                            AND NOT (v_own AND d.device_id = v_sdev)
                            AND d.device_id <> ALL (v_addr)), '{}'),
               coalesce((SELECT array_agg(x.dev ORDER BY x.dev)
                           FROM unnest(v_addr) x(dev)
                          WHERE (v_own AND x.dev = v_sdev)
                             OR NOT EXISTS (SELECT 1 FROM devices d
                                             WHERE d.account_id = v_rcpt
                                               AND d.device_id = x.dev)), '{}'),
               coalesce((SELECT array_agg(x.dev ORDER BY x.dev)
                           FROM unnest(v_addr, v_reg) x(dev, reg)
                           JOIN devices d ON d.account_id = v_rcpt AND d.device_id = x.dev
                          WHERE d.registration_id <> x.reg
                            AND NOT (v_own AND x.dev = v_sdev)), '{}')
          INTO r_missing, r_extra, r_stale;
        IF cardinality(r_missing) > 0 OR cardinality(r_extra) > 0
           OR cardinality(r_stale) > 0 THEN
            r_status := 'mismatch';
            RETURN NEXT;
            CONTINUE;
        END IF;
        r_missing := NULL; r_extra := NULL; r_stale := NULL;

        SELECT array_agg(d.device_id ORDER BY d.device_id) INTO r_full
          FROM devices d
         WHERE d.account_id = v_rcpt AND d.device_id = ANY (v_addr)
           AND d.queue_len >= p_queue_max;
        IF r_full IS NOT NULL THEN
            r_status := 'queue_full';
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- ids first, so that the sends row claims the client id before anything is queued
        v_ids := ARRAY(SELECT nextval(pg_get_serial_sequence('envelopes', 'id'))
                         FROM generate_series(1, cardinality(v_addr)));
        INSERT INTO sends (sender_account, sender_device, client_id, device_ids, envelope_ids)
        VALUES (v_sender, v_sdev, p_client_ids[i + 1], v_addr, v_ids)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            -- the same client id committed meanwhile by a send to another recipient (a client
            -- bug: a client id names one logical send); answer with the stored ids
            r_status := 'duplicate';
            SELECT s.device_ids, s.envelope_ids INTO r_device_ids, r_envelope_ids
              FROM sends s
             WHERE s.sender_account = v_sender AND s.sender_device = v_sdev
               AND s.client_id = p_client_ids[i + 1];
            RETURN NEXT;
            CONTINUE;
        END IF;

        INSERT INTO envelopes (id, account_id, device_id, sender, sender_device, created_ms,
                               urgent, content)
        SELECT u.id, v_rcpt, u.dev, p_senders[i + 1], v_sdev, v_now_ms,
               coalesce(p_urgent[i + 1], false), u.content
          FROM unnest(v_ids, v_addr, v_content) u(id, dev, content);
        UPDATE devices d SET queue_len = d.queue_len + 1
         WHERE d.account_id = v_rcpt AND d.device_id = ANY (v_addr);

        r_status := 'accepted';
        r_device_ids := v_addr;
        r_envelope_ids := v_ids;
        r_created_ms := v_now_ms;
        RETURN NEXT;
    END LOOP;
END
$fn$;

-- Forgets accepted sends older than the idempotency window (PARLEY_SEND_DEDUP_SECONDS), at most
-- p_limit rows per call so that no call holds locks for long; returns the rows deleted. The
-- fanout calls it on a slow timer and again at once while it returns p_limit.
CREATE FUNCTION parley_prune_sends(p_max_age_seconds integer, p_limit integer)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    n integer;
BEGIN
    DELETE FROM sends s
     USING (SELECT o.sender_account, o.sender_device, o.client_id
              FROM sends o
             WHERE o.created_at < now() - make_interval(secs => p_max_age_seconds)
             ORDER BY o.created_at
             LIMIT p_limit) old
     WHERE s.sender_account = old.sender_account AND s.sender_device = old.sender_device
       AND s.client_id = old.client_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
