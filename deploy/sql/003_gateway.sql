-- Parley schema, version 3: the gateway's queue drain and batched ack.

-- One page of a device's queue after p_after, in id order: at most p_max_rows rows, and rows
-- only while the content before them stays under p_max_bytes (the first row always comes), so
-- a page fits the connection's free outbound space whatever the envelope sizes.
CREATE FUNCTION parley_gw_drain(
    p_account   bigint,
    p_device    integer,
    p_after     bigint,
    p_max_rows  integer,
    p_max_bytes bigint)
RETURNS TABLE (id bigint, sender text, sender_device integer, created_ms bigint,
               urgent boolean, content bytea)
LANGUAGE sql STABLE
AS $fn$
    SELECT e.id, e.sender, e.sender_device, e.created_ms, e.urgent, e.content
      FROM (SELECT p.pid, sum(p.len) OVER (ORDER BY p.pid) - p.len AS before
              FROM (SELECT q.id AS pid, octet_length(q.content)::bigint AS len
                      FROM envelopes q
                     WHERE q.account_id = p_account AND q.device_id = p_device
                       AND q.id > p_after
                     ORDER BY q.id
                     LIMIT p_max_rows) p) w
      JOIN envelopes e ON e.id = w.pid
     WHERE w.before < p_max_bytes OR w.before = 0
     ORDER BY e.id
$fn$;

-- Deletes acknowledged envelopes of many acks at once: entry i is envelope p_ids[i] of device
-- (p_accounts[i], p_devices[i]) acked by request p_reqs[i]. Only rows of that device go (a
-- device cannot ack another's envelopes); queue_len drops by the rows deleted. Returns per
-- request the number of rows it deleted (requests that deleted nothing are absent).
-- Device rows are locked in (account_id, device_id) order first, like parley_accept_batch, so
-- the two never deadlock.
CREATE FUNCTION parley_gw_ack(
    p_accounts bigint[],
    p_devices  integer[],
    p_ids      bigint[],
    p_reqs     integer[])
RETURNS TABLE (req integer, deleted bigint)
LANGUAGE plpgsql
AS $fn$
BEGIN
    IF coalesce(array_length(p_accounts, 1), 0) <> coalesce(array_length(p_devices, 1), 0)
       OR coalesce(array_length(p_accounts, 1), 0) <> coalesce(array_length(p_ids, 1), 0)
       OR coalesce(array_length(p_accounts, 1), 0) <> coalesce(array_length(p_reqs, 1), 0) THEN
        RAISE EXCEPTION 'parley_gw_ack: arrays of different lengths'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM 1
       FROM devices d
      WHERE (d.account_id, d.device_id) IN
            (SELECT DISTINCT u.a, u.dv FROM unnest(p_accounts, p_devices) AS u(a, dv))
      ORDER BY d.account_id, d.device_id
        FOR NO KEY UPDATE OF d;

    RETURN QUERY
    WITH acked AS (
        SELECT DISTINCT ON (u.a, u.dv, u.i) u.a, u.dv, u.i, u.r
          FROM unnest(p_accounts, p_devices, p_ids, p_reqs) AS u(a, dv, i, r)
         ORDER BY u.a, u.dv, u.i, u.r
    ), del AS (
        DELETE FROM envelopes e
         USING acked k
         WHERE e.id = k.i AND e.account_id = k.a AND e.device_id = k.dv
        RETURNING e.account_id, e.device_id, k.r
    ), lens AS (
        UPDATE devices d
           SET queue_len = greatest(d.queue_len - c.n, 0)
          FROM (SELECT x.account_id, x.device_id, count(*)::integer AS n
                  FROM del x GROUP BY x.account_id, x.device_id) c
         WHERE d.account_id = c.account_id AND d.device_id = c.device_id
    )
    SELECT x.r, count(*)::bigint FROM del x GROUP BY x.r;
END
$fn$;
