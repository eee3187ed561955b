-- Parley schema, version 5: the gateway's batched ack deletes first and locks device rows only
-- for the queue_len update; the queue drain reads each row once.
--
-- Same signatures and results as version 3.
--
-- parley_gw_ack. Version 3 locked the device rows of a whole ack batch before deleting, so acks
-- waited for every fanout batch that queued to those devices, for as long as that batch ran.
-- Now the rows go first: an envelope row is only ever deleted once queued, so deleting needs no
-- device lock (two acks naming the same rows, e.g. after a reconnect, meet on the rows
-- themselves; the acked list is sorted so that they usually delete in the same order, and a
-- rare deadlock between them fails one ack, whose rows are then delivered again). Then the
-- device rows whose queue shrank are locked in (account_id, device_id) order, as
-- parley_accept_batch takes them for its last step, and queue_len drops by the rows deleted.

CREATE OR REPLACE FUNCTION parley_gw_ack(
    p_accounts bigint[],
    p_devices  integer[],
    p_ids      bigint[],
    p_reqs     integer[])
RETURNS TABLE (req integer, deleted bigint)
LANGUAGE plpgsql
-- a large batch's plan cost passes jit_above_cost; compiling costs more than the statement
SET jit = off
AS $fn$
DECLARE
    v_req      integer[];
    v_req_n    bigint[];
    v_shrink_a bigint[];             -- devices whose queue shrank, in lock order, and by how much
    v_shrink_d integer[];
    v_shrink_n integer[];
BEGIN
    IF coalesce(array_length(p_accounts, 1), 0) <> coalesce(array_length(p_devices, 1), 0)
       OR coalesce(array_length(p_accounts, 1), 0) <> coalesce(array_length(p_ids, 1), 0)
       OR coalesce(array_length(p_accounts, 1), 0) <> coalesce(array_length(p_reqs, 1), 0) THEN
        RAISE EXCEPTION 'parley_gw_ack: arrays of different lengths'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    WITH acked AS (
        -- an id acked twice counts once, for the first request that named it
        SELECT DISTINCT ON (u.a, u.dv, u.i) u.a, u.dv, u.i, u.r
          FROM unnest(p_accounts, p_devices, p_ids, p_reqs) AS u(a, dv, i, r)
         ORDER BY u.a, u.dv, u.i, u.r
    ), del AS (
        -- only rows of the acking device go: a device cannot ack another's envelopes
        DELETE FROM envelopes e
         USING acked k
         WHERE e.id = k.i AND e.account_id = k.a AND e.device_id = k.dv
        RETURNING e.account_id, e.device_id, k.r
    ), per_dev AS (
        SELECT x.account_id, x.device_id, count(*)::integer AS n
          FROM del x GROUP BY x.account_id, x.device_id
    ), per_req AS (
        SELECT x.r, count(*)::bigint AS n FROM del x GROUP BY x.r
    )
    SELECT (SELECT array_agg(p.account_id ORDER BY p.account_id, p.device_id) FROM per_dev p),
           (SELECT array_agg(p.device_id ORDER BY p.account_id, p.device_id) FROM per_dev p),
           (SELECT array_agg(p.n ORDER BY p.account_id, p.device_id) FROM per_dev p),
           (SELECT array_agg(q.r ORDER BY q.r) FROM per_req q),
           (SELECT array_agg(q.n ORDER BY q.r) FROM per_req q)
      INTO v_shrink_a, v_shrink_d, v_shrink_n, v_req, v_req_n;

    IF v_shrink_a IS NOT NULL THEN
        -- one row after the other in the arrays' (account_id, device_id) order
        PERFORM 1
           FROM unnest(v_shrink_a, v_shrink_d) u(a, dv)
          CROSS JOIN LATERAL (SELECT 1 FROM devices d
                               WHERE d.account_id = u.a AND d.device_id = u.dv
                                 FOR NO KEY UPDATE OF d) l;
        UPDATE devices d SET queue_len = greatest(d.queue_len - u.n, 0)
          FROM unnest(v_shrink_a, v_shrink_d, v_shrink_n) u(a, dv, n)
         WHERE d.account_id = u.a AND d.device_id = u.dv;
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_req, v_req_n);
END
$fn$;

-- parley_gw_drain: one pass over the page in index order; version 3 read the page's rows a
-- second time by primary key to fetch their contents.
CREATE OR REPLACE FUNCTION parley_gw_drain(
    p_account   bigint,
    p_device    integer,
    p_after     bigint,
    p_max_rows  integer,
    p_max_bytes bigint)
RETURNS TABLE (id bigint, sender text, sender_device integer, created_ms bigint,
               urgent boolean, content bytea)
LANGUAGE sql STABLE
AS $fn$
    SELECT w.id, w.sender, w.sender_device, w.created_ms, w.urgent, w.content
      FROM (SELECT q.*,
                   sum(octet_length(q.content)::bigint) OVER (ORDER BY q.id)
                       - octet_length(q.content) AS before
              FROM (SELECT e.id, e.sender, e.sender_device, e.created_ms, e.urgent, e.content
                      FROM envelopes e
                     WHERE e.account_id = p_account AND e.device_id = p_device
                       AND e.id > p_after
                     ORDER BY e.id
                     LIMIT p_max_rows) q) w
     WHERE w.before < p_max_bytes OR w.before = 0
     ORDER BY w.id
$fn$;
