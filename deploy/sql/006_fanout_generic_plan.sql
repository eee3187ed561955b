-- Parley schema, version 6: parley_accept_batch plans its statements once per connection.
--
-- PL/pgSQL caches a statement's plan but, by default, re-plans it with the actual parameters
-- (a custom plan) while that looks cheaper, and for the batch statement of version 4 with its
-- array parameters it always did: planning was most of the cost of a small batch. Measured on
-- the benchmark cluster (2 vCPUs): the mean call for batches of ~12 sends went from 5.1 ms to
-- 2.2 ms and live delivery p50/p99 at 1,000 messages/s from 9.8/22.4 ms to 4.8/12.5 ms, while
-- throughput at saturation stayed the same (10,100-10,700 messages/s either way, so large
-- batches lose nothing by the generic plan).
ALTER FUNCTION parley_accept_batch SET plan_cache_mode = force_generic_plan;
