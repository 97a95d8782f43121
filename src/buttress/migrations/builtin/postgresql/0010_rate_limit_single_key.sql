-- depends: 0006_rate_limits
-- The single-key fast path of RateLimiter: buttress_rate_limit_one() decides
-- one consuming check (hit) in ONE SQL statement, an INSERT ... ON CONFLICT
-- (key) DO UPDATE ... RETURNING, with no loop, no jsonb and no second query.
-- buttress_rate_limit() (0006) stays for peeks and hit_all batches.
--
-- Same rows, same state: both functions read and write buttress_rate_limits.state
-- in the format 0006 defined (GCRA {tat}, fixed window {window start, used},
-- sliding window {admission times, oldest first}; microseconds), so a key may
-- be decided by either, by old and new buttress versions alike, and nothing
-- needs converting.
--
-- The caller (PostgresStore) guarantees 1 <= p_cost <= p_limit, as for 0006.
--
-- Exactness: the INSERT takes a key that has no row (the fresh-state decision,
-- always an admission since cost <= limit). A key that has one goes to DO
-- UPDATE, which PostgreSQL runs only after locking that row and on its latest
-- committed version (READ COMMITTED re-reads it; a row deleted meanwhile sends
-- the statement back to the INSERT), so concurrent decisions on one key are
-- serialised exactly as the row lock of 0006 serialises them. The time is read
-- with clock_timestamp() after that lock (once, in the sub-select), as 0006
-- does. A refusal writes the row back unchanged (state, expires_at).
--
-- RETURNING sees only the new row, so the decision itself is written into four
-- columns of the row (last_*) and read back from there: they mean nothing to
-- any other reader. The arithmetic mirrors buttress/ratelimit/_core.py in
-- integer microseconds, like 0006; a change to it is a new migration.
ALTER TABLE buttress_rate_limits
    ADD COLUMN IF NOT EXISTS last_allowed boolean,
    ADD COLUMN IF NOT EXISTS last_remaining bigint,
    ADD COLUMN IF NOT EXISTS last_reset_us bigint,
    ADD COLUMN IF NOT EXISTS last_retry_us bigint;

CREATE OR REPLACE FUNCTION buttress_rate_limit_one(
    p_key text, p_algo text, p_limit bigint, p_period bigint, p_cost bigint,
    p_now bigint DEFAULT NULL,
    OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint
) LANGUAGE plpgsql AS $fn$
DECLARE
    -- GCRA: emission interval rounded up, burst tolerance.
    iv bigint := (p_period + p_limit - 1) / p_limit;
    tol bigint := (p_period + p_limit - 1) / p_limit * p_limit;
BEGIN
    IF p_algo = 'g' THEN
        INSERT INTO buttress_rate_limits AS r
            (key, state, expires_at, last_allowed, last_remaining, last_reset_us, last_retry_us)
        SELECT p_key, ARRAY[f.t + p_cost * iv], f.t + p_cost * iv,
               true, p_limit - p_cost, p_cost * iv, 0
        FROM (SELECT coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS t) f
        ON CONFLICT (key) DO UPDATE SET
            (state, expires_at, last_allowed, last_remaining, last_reset_us, last_retry_us) = (
            SELECT CASE WHEN d.ok THEN ARRAY[d.t + d.ahead] ELSE r.state END,
                   CASE WHEN d.ok THEN d.t + d.ahead ELSE r.expires_at END,
                   d.ok,
                   CASE WHEN d.ok THEN (tol - d.ahead) / iv
                        ELSE greatest(0, (tol - (d.tat - d.t)) / iv) END,
                   CASE WHEN d.ok THEN d.ahead ELSE d.tat - d.t END,
                   CASE WHEN d.ok THEN 0 ELSE d.ahead - tol END
            FROM (SELECT c.t, c.tat, c.ahead, c.ahead <= tol AS ok
                  FROM (SELECT b.t, b.tat, b.tat + p_cost * iv - b.t AS ahead
                        FROM (SELECT a.t, greatest(r.state[1], a.t) AS tat
                              FROM (SELECT coalesce(p_now, (extract(epoch FROM clock_timestamp())
                                                            * 1000000)::bigint) AS t) a) b) c) d)
        RETURNING r.last_allowed, r.last_remaining, r.last_reset_us, r.last_retry_us
        INTO allowed, remaining, reset_us, retry_us;
    ELSIF p_algo = 'f' THEN
        INSERT INTO buttress_rate_limits AS r
            (key, state, expires_at, last_allowed, last_remaining, last_reset_us, last_retry_us)
        SELECT p_key, ARRAY[f.w, p_cost], f.w + p_period,
               true, p_limit - p_cost, f.w + p_period - f.t, 0
        FROM (SELECT e.t, e.t - e.t % p_period AS w
              FROM (SELECT coalesce(p_now, (extract(epoch FROM clock_timestamp())
                                            * 1000000)::bigint) AS t) e) f
        ON CONFLICT (key) DO UPDATE SET
            (state, expires_at, last_allowed, last_remaining, last_reset_us, last_retry_us) = (
            SELECT CASE WHEN d.ok THEN ARRAY[d.w, d.used + p_cost] ELSE r.state END,
                   CASE WHEN d.ok THEN d.w + p_period ELSE r.expires_at END,
                   d.ok,
                   CASE WHEN d.ok THEN p_limit - d.used - p_cost ELSE p_limit - d.used END,
                   d.w + p_period - d.t,
                   CASE WHEN d.ok THEN 0 ELSE d.w + p_period - d.t END
            FROM (SELECT c.t, c.w, c.used, c.used + p_cost <= p_limit AS ok
                  FROM (SELECT b.t,
                               CASE WHEN b.kept THEN r.state[1] ELSE b.t - b.t % p_period END AS w,
                               CASE WHEN b.kept THEN r.state[2] ELSE 0 END AS used
                        FROM (SELECT a.t, cardinality(r.state) = 2
                                          AND r.state[1] >= a.t - a.t % p_period AS kept
                              FROM (SELECT coalesce(p_now, (extract(epoch FROM clock_timestamp())
                                                            * 1000000)::bigint) AS t) a) b) c) d)
        RETURNING r.last_allowed, r.last_remaining, r.last_reset_us, r.last_retry_us
        INTO allowed, remaining, reset_us, retry_us;
    ELSE
        INSERT INTO buttress_rate_limits AS r
            (key, state, expires_at, last_allowed, last_remaining, last_reset_us, last_retry_us)
        SELECT p_key, array_fill(f.t, ARRAY[p_cost::int]), f.t + p_period,
               true, p_limit - p_cost, p_period, 0
        FROM (SELECT coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS t) f
        ON CONFLICT (key) DO UPDATE SET
            (state, expires_at, last_allowed, last_remaining, last_reset_us, last_retry_us) = (
            SELECT CASE WHEN d.ok THEN d.live || array_fill(d.stamp, ARRAY[p_cost::int])
                        ELSE r.state END,
                   CASE WHEN d.ok THEN d.stamp + p_period ELSE r.expires_at END,
                   d.ok,
                   CASE WHEN d.ok THEN p_limit - d.n - p_cost ELSE p_limit - d.n END,
                   CASE WHEN d.ok THEN d.stamp + p_period - d.t
                        ELSE d.live[d.n] + p_period - d.t END,
                   CASE WHEN d.ok THEN 0
                        ELSE d.live[d.n + p_cost - p_limit] + p_period - d.t END
            FROM (SELECT c.t, c.live, c.n, c.n + p_cost <= p_limit AS ok,
                         CASE WHEN c.n > 0 AND c.live[c.n] > c.t THEN c.live[c.n] ELSE c.t END
                             AS stamp
                  FROM (SELECT b.t, b.live, cardinality(b.live) AS n
                        FROM (SELECT a.t, ARRAY(SELECT u.e FROM unnest(r.state)
                                                    WITH ORDINALITY AS u(e, o)
                                                WHERE u.e > a.t - p_period ORDER BY u.o) AS live
                              FROM (SELECT coalesce(p_now, (extract(epoch FROM clock_timestamp())
                                                            * 1000000)::bigint) AS t) a) b) c) d)
        RETURNING r.last_allowed, r.last_remaining, r.last_reset_us, r.last_retry_us
        INTO allowed, remaining, reset_us, retry_us;
    END IF;
    -- Amortised eviction, as in 0006: about one decision in a thousand sweeps
    -- some expired rows (an expired state decides exactly like no row).
    IF random() < 0.001 THEN
        DELETE FROM buttress_rate_limits WHERE key IN (
            SELECT key FROM buttress_rate_limits
            WHERE expires_at <= coalesce(p_now,
                                         (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
            LIMIT 1000 FOR UPDATE SKIP LOCKED);
    END IF;
END
$fn$;

-- down
DROP FUNCTION buttress_rate_limit_one(text, text, bigint, bigint, bigint, bigint);
ALTER TABLE buttress_rate_limits
    DROP COLUMN last_allowed,
    DROP COLUMN last_remaining,
    DROP COLUMN last_reset_us,
    DROP COLUMN last_retry_us;
