-- Parley schema, version 4: parley_accept_batch decides and stores a whole batch with one
-- set-based statement instead of a PL/pgSQL loop that ran about ten statements per send, and
-- holds the locks that the gateway's acks also need only for the last moment of the batch.
--
-- Same signature, same result rows and same rules as version 2 (read its header): sends are
-- judged in array order, checks in the order unknown_sender, duplicate, unknown_account,
-- invalid, mismatch, queue_full; envelope ids are taken from the sequence after the locks below
-- and handed out in (send, envelope) order, so a device's ids rise in the order its sends were
-- read and committed.
--
-- Locks. Version 2 locked every recipient device row for the whole batch, and the ack path
-- (parley_gw_ack) updates the same rows, so a batch and the acks of its recipients ran one
-- after the other. Now:
--  1. first the recipients' account rows, FOR NO KEY UPDATE in id order: this serialises
--     batches with a common recipient (so their ids, duplicates and queue checks come one after
--     the other) and keeps the recipients' device sets fixed. Nothing but a batch locks
--     account rows; whatever adds, removes or re-registers a device of an existing account must
--     take its account row the same way first.
--  2. then the whole batch is decided and stored, reading queue_len without a device lock: an
--     ack committing meanwhile only makes a queue look longer than it is, never shorter;
--  3. last, the device rows whose queue grew, FOR NO KEY UPDATE in (account_id, device_id)
--     order like the ack path takes them, and queue_len += the new envelopes. So an ack waits
--     at most for this last step and the commit, and the two never deadlock.
--
-- The set-based statement is exact whenever the outcome of a send cannot depend on an earlier
-- send of the same batch. Two cases can, and such a batch goes through the version 2 loop,
-- kept as parley_accept_batch_serial:
--  - a client id that occurs twice in the batch (the second is a duplicate only if the first is
--    accepted);
--  - a device whose queue fills up within the batch (whether a send still fits depends on which
--    earlier sends were accepted). A device that is already full at the start of the batch
--    rejects every send addressed to it, in any order, so that case stays set-based.
-- A client id committed meanwhile by another transaction for another recipient (a client bug)
-- is answered from the stored row as a duplicate, as version 2 does.

ALTER FUNCTION parley_accept_batch(text[], integer[], bigint[], text[], boolean[], integer[],
                                   integer[], integer[], integer[], bytea, integer)
    RENAME TO parley_accept_batch_serial;

-- One result row of parley_accept_batch (its RETURNS TABLE), held in a variable until the device
-- rows are locked.
CREATE TYPE parley_accept_row AS (
    r_send           integer,
    r_status         text,
    r_device_ids     integer[],
    r_envelope_ids   bigint[],
    r_created_ms     bigint,
    r_missing        integer[],
    r_extra          integer[],
    r_stale          integer[],
    r_full           integer[],
    r_queued_devices integer[],
    r_queued_ids     bigint[],
    r_queued_created bigint[],
    r_queued_content bytea[]);

CREATE FUNCTION parley_accept_batch(
    p_senders        text[],
    p_sender_devices integer[],
    p_client_ids     bigint[],
    p_recipients     text[],
    p_urgent         boolean[],
    p_env_send       integer[],
    p_env_device     integer[],
    p_env_reg        integer[],
    p_env_len        integer[],
    p_contents       bytea,
    p_queue_max      integer)
RETURNS TABLE (
    r_send           integer,
    r_status         text,
    r_device_ids     integer[],
    r_envelope_ids   bigint[],
    r_created_ms     bigint,
    r_missing        integer[],
    r_extra          integer[],
    r_stale          integer[],
    r_full           integer[],
    r_queued_devices integer[],
    r_queued_ids     bigint[],
    r_queued_created bigint[],
    r_queued_content bytea[])
LANGUAGE plpgsql
-- the planner's cost of a large batch passes jit_above_cost, and compiling the statement takes
-- longer than running it many times over
SET jit = off
AS $fn$
DECLARE
    n_sends  integer := coalesce(array_length(p_senders, 1), 0);
    n_env    integer := coalesce(array_length(p_env_send, 1), 0);
    v_now_ms bigint;
    v_rows   parley_accept_row[];
    v_rcpt_names text[];             -- the recipients that exist, and their account ids
    v_rcpt_ids   bigint[];
    v_grow_a bigint[];               -- devices whose queue grew, in lock order, and by how much
    v_grow_d integer[];
    v_grow_n integer[];
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
    IF n_sends = 0 THEN
        RETURN;
    END IF;

    SELECT array_agg(x.username), array_agg(x.id) INTO v_rcpt_names, v_rcpt_ids
      FROM (SELECT a.username, a.id
              FROM accounts a
             WHERE a.username = ANY (p_recipients)
             ORDER BY a.id
               FOR NO KEY UPDATE OF a) x;
    v_now_ms := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;

    -- One statement, one snapshot taken after the account locks. It yields no rows when the
    -- batch needs the serial path (see the header), and then has stored nothing. Every step
    -- keeps one row per send (or per envelope) and carries what later steps need, so that no
    -- step joins two large intermediate results on an estimate the planner cannot make.
    WITH s AS (
        SELECT (u.o - 1)::integer AS k, u.sn, u.sd, u.cid, u.rn, coalesce(u.urg, false) AS urg,
               (SELECT a.id FROM accounts a WHERE a.username = u.sn) AS sender_id,
               r.id AS rcpt_id
          FROM unnest(p_senders, p_sender_devices, p_client_ids, p_recipients, p_urgent)
               WITH ORDINALITY u(sn, sd, cid, rn, urg, o)
          LEFT JOIN unnest(v_rcpt_names, v_rcpt_ids) r(name, id) ON r.name = u.rn
    ), e AS (
        SELECT u.k, u.j, u.dev, u.reg, u.len, sum(u.len) OVER (ORDER BY u.j) - u.len AS off
          FROM unnest(p_env_send, p_env_device, p_env_reg, p_env_len)
               WITH ORDINALITY u(k, dev, reg, len, j)
    ), shape AS (
        -- a send's envelopes, in order; invalid unless each device comes once with an id, a
        -- registration id and content
        SELECT e.k, count(*)::integer AS n,
               bool_or(e.dev IS NULL OR e.dev <= 0 OR e.reg IS NULL OR e.reg <= 0 OR e.len = 0)
               OR count(DISTINCT e.dev) <> count(*) AS bad,
               array_agg(e.dev ORDER BY e.j) AS devs, array_agg(e.off ORDER BY e.j) AS offs,
               array_agg(e.len ORDER BY e.j) AS lens
          FROM e GROUP BY e.k
    ), c AS (
        SELECT s.*, x.device_ids AS dup_devices, x.envelope_ids AS dup_ids, sh.n, sh.devs,
               sh.offs, sh.lens,
               CASE WHEN s.sender_id IS NULL THEN 'unknown_sender'
                    WHEN x.client_id IS NOT NULL THEN 'duplicate'
                    WHEN s.rcpt_id IS NULL THEN 'unknown_account'
                    WHEN coalesce(sh.bad, true) OR s.sd IS NULL OR s.cid IS NULL OR s.cid = 0
                        THEN 'invalid'
               END AS status
          FROM s
          LEFT JOIN sends x ON x.sender_account = s.sender_id AND x.sender_device = s.sd
                           AND x.client_id = s.cid
          LEFT JOIN shape sh ON sh.k = s.k
    ), want AS (
        -- DESIGN invariant 5: the devices a send must address (own account: all but the
        -- sending one), with their registration ids
        SELECT c.k, d.device_id AS dev, d.registration_id AS reg, d.queue_len
          FROM c CROSS JOIN LATERAL (
                   -- by index, account by account: a batch reads a few rows of a large table
                   -- (OFFSET 0 keeps the planner from turning this into a scan of all of it)
                   SELECT x.device_id, x.registration_id, x.queue_len
                     FROM devices x WHERE x.account_id = c.rcpt_id OFFSET 0) d
         WHERE NOT (c.rcpt_id = c.sender_id AND d.device_id = c.sd)
    ), cmp AS (
        SELECT coalesce(w.k, g.k) AS k,
               bool_or(w.k IS NULL OR g.k IS NULL OR g.reg <> w.reg) AS mismatch,
               coalesce(array_agg(w.dev ORDER BY w.dev) FILTER (WHERE g.k IS NULL), '{}') AS missing,
               coalesce(array_agg(g.dev ORDER BY g.dev) FILTER (WHERE w.k IS NULL), '{}') AS extra,
               coalesce(array_agg(g.dev ORDER BY g.dev) FILTER (WHERE g.reg <> w.reg), '{}') AS stale,
               bool_or(w.queue_len >= p_queue_max) AS full_now,
               -- each addressed device's queue_len, in envelope order like devs
               array_agg(w.queue_len ORDER BY g.j) AS qlens
          FROM want w FULL JOIN e g ON g.k = w.k AND g.dev = w.dev
         GROUP BY 1
    ), v AS (
        -- verdict NULL: the send is stored (a device already full rejects a send whatever
        -- the order, see the header)
        SELECT c.*, m.missing, m.extra, m.stale, m.qlens,
               coalesce(c.status, CASE WHEN m.mismatch THEN 'mismatch'
                                       WHEN m.full_now THEN 'queue_full' END) AS verdict
          FROM c LEFT JOIN cmp m ON m.k = c.k
    ), v2 AS (
        -- eoff: envelopes of the stored sends before this one, its place in the id list
        SELECT v.*, coalesce(sum(v.n) FILTER (WHERE v.verdict IS NULL)
                                 OVER (ORDER BY v.k ROWS BETWEEN UNBOUNDED PRECEDING
                                                             AND 1 PRECEDING), 0)::integer AS eoff
          FROM v
    ), addr AS (
        -- one row per device and send that stores or was refused as full (both address
        -- exactly the recipient's devices, so every one has its queue_len)
        SELECT v2.k, v2.rcpt_id, u.dev, u.queue_len, v2.verdict
          FROM v2, unnest(v2.devs, v2.qlens) u(dev, queue_len)
         WHERE v2.verdict IS NULL OR v2.verdict = 'queue_full'
    ), cnt AS (
        SELECT a.rcpt_id, a.dev, count(*) AS n, max(a.queue_len) AS queue_len
          FROM addr a WHERE a.verdict IS NULL GROUP BY 1, 2
    ), decide AS (
        SELECT NOT EXISTS (SELECT 1 FROM s GROUP BY s.sn, s.sd, s.cid HAVING count(*) > 1)
           AND NOT EXISTS (SELECT 1 FROM cnt WHERE cnt.queue_len + cnt.n > p_queue_max) AS fast
    ), fl AS (
        -- the full devices of a refused send, counting what earlier sends of the batch queued
        SELECT y.k, array_agg(y.dev ORDER BY y.dev) AS devs
          FROM (SELECT a.k, a.dev, a.verdict, a.queue_len,
                       count(*) FILTER (WHERE a.verdict IS NULL)
                           OVER (PARTITION BY a.rcpt_id, a.dev ORDER BY a.k
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
                  FROM addr a
                 WHERE (SELECT bool_or(v.verdict = 'queue_full') FROM v)) y
         WHERE y.verdict = 'queue_full' AND y.queue_len + y.before >= p_queue_max
         GROUP BY y.k
    ), ids AS (
        -- taken in one go after the locks; the n-th smallest goes to the n-th envelope
        SELECT array_agg(x.id ORDER BY x.id) AS ids
          FROM (SELECT nextval('envelopes_id_seq'::regclass) AS id
                  FROM generate_series(1, (SELECT sum(v.n)::integer FROM v WHERE v.verdict IS NULL))
                 WHERE (SELECT fast FROM decide)) x
    ), st AS (
        SELECT v2.*, ((SELECT ids FROM ids))[v2.eoff + 1 : v2.eoff + v2.n] AS ids
          FROM v2
         WHERE v2.verdict IS NULL AND (SELECT fast FROM decide)
    ), ins_sends AS (
        -- a conflict is the same client id committed meanwhile for another recipient: the
        -- no-op update locks that row and returns it, so the send is answered from it
        INSERT INTO sends AS t (sender_account, sender_device, client_id, device_ids, envelope_ids)
        SELECT st.sender_id, st.sd, st.cid, st.devs, st.ids FROM st
        ON CONFLICT (sender_account, sender_device, client_id)
            DO UPDATE SET device_ids = t.device_ids
        RETURNING t.sender_account, t.sender_device, t.client_id, t.device_ids, t.envelope_ids,
                  t.xmax::text <> '0' AS conflict
    ), conflicts AS (
        SELECT * FROM ins_sends WHERE ins_sends.conflict
    ), ins_env AS (
        INSERT INTO envelopes (id, account_id, device_id, sender, sender_device, created_ms,
                               urgent, content)
        SELECT u.id, st.rcpt_id, u.dev, st.sn, st.sd, v_now_ms, st.urg,
               substring(p_contents FROM (u.off + 1)::integer FOR u.len)
          FROM st, unnest(st.devs, st.ids, st.offs, st.lens) u(dev, id, off, len)
         WHERE NOT EXISTS (SELECT 1 FROM conflicts f
                            WHERE f.sender_account = st.sender_id AND f.sender_device = st.sd
                              AND f.client_id = st.cid)
        RETURNING account_id, device_id
    ), grow AS (
        SELECT i.account_id, i.device_id, count(*)::integer AS n
          FROM ins_env i GROUP BY i.account_id, i.device_id
    ), res AS (
        SELECT v2.k,
               CASE WHEN f.sender_account IS NOT NULL THEN 'duplicate'
                    WHEN v2.verdict IS NULL THEN 'accepted'
                    ELSE v2.verdict END AS status,
               CASE WHEN f.sender_account IS NOT NULL THEN f.device_ids
                    WHEN v2.verdict IS NULL THEN v2.devs
                    WHEN v2.verdict = 'duplicate' THEN v2.dup_devices END AS device_ids,
               CASE WHEN f.sender_account IS NOT NULL THEN f.envelope_ids
                    WHEN v2.verdict IS NULL THEN ((SELECT ids FROM ids))[v2.eoff + 1 : v2.eoff + v2.n]
                    WHEN v2.verdict = 'duplicate' THEN v2.dup_ids END AS envelope_ids,
               CASE WHEN v2.verdict IS NULL AND f.sender_account IS NULL THEN v_now_ms END AS created,
               CASE WHEN v2.verdict = 'mismatch' THEN v2.missing END AS missing,
               CASE WHEN v2.verdict = 'mismatch' THEN v2.extra END AS extra,
               CASE WHEN v2.verdict = 'mismatch' THEN v2.stale END AS stale,
               fl.devs AS full_devs,
               q.devs AS q_devs, q.ids AS q_ids, q.created AS q_created, q.content AS q_content
          FROM v2
          LEFT JOIN conflicts f ON v2.verdict IS NULL AND f.sender_account = v2.sender_id
                               AND f.sender_device = v2.sd AND f.client_id = v2.cid
          LEFT JOIN fl ON fl.k = v2.k
          LEFT JOIN LATERAL (
              -- a resend: its envelopes still queued are pushed again (a fanout may have died
              -- between commit and push); only the recipient's, should the client id have
              -- been reused for another one
              SELECT array_agg(q.device_id ORDER BY q.id) AS devs,
                     array_agg(q.id ORDER BY q.id) AS ids,
                     array_agg(q.created_ms ORDER BY q.id) AS created,
                     array_agg(q.content ORDER BY q.id) AS content
                FROM envelopes q
               WHERE v2.verdict = 'duplicate' AND q.id = ANY (v2.dup_ids)
                 AND q.account_id = v2.rcpt_id
          ) q ON true
         WHERE (SELECT fast FROM decide)
    )
    SELECT (SELECT array_agg(ROW(res.k, res.status, res.device_ids, res.envelope_ids,
                                 res.created, res.missing, res.extra, res.stale, res.full_devs,
                                 res.q_devs, res.q_ids, res.q_created,
                                 res.q_content)::parley_accept_row) FROM res),
           (SELECT array_agg(g.account_id ORDER BY g.account_id, g.device_id) FROM grow g),
           (SELECT array_agg(g.device_id ORDER BY g.account_id, g.device_id) FROM grow g),
           (SELECT array_agg(g.n ORDER BY g.account_id, g.device_id) FROM grow g)
      INTO v_rows, v_grow_a, v_grow_d, v_grow_n;

    IF v_rows IS NULL THEN
        RETURN QUERY SELECT * FROM parley_accept_batch_serial(
            p_senders, p_sender_devices, p_client_ids, p_recipients, p_urgent, p_env_send,
            p_env_device, p_env_reg, p_env_len, p_contents, p_queue_max);
        RETURN;
    END IF;

    IF v_grow_a IS NOT NULL THEN
        -- one row after the other in the arrays' (account_id, device_id) order
        PERFORM 1
           FROM unnest(v_grow_a, v_grow_d) u(a, dv)
          CROSS JOIN LATERAL (SELECT 1 FROM devices d
                               WHERE d.account_id = u.a AND d.device_id = u.dv
                                 FOR NO KEY UPDATE OF d) l;
        UPDATE devices d SET queue_len = d.queue_len + u.n
          FROM unnest(v_grow_a, v_grow_d, v_grow_n) u(a, dv, n)
         WHERE d.account_id = u.a AND d.device_id = u.dv;
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_rows);
END
$fn$;
