-- depends: 0006_rate_limits
-- The single-key fast path of RateLimiter: buttress_rate_limit_one() decides
-- one hit (a consuming check of cost 1..limit) with ONE SQL statement on the
-- key's row, an INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE ... RETURNING:
-- no loop, no jsonb, no insert-then-lock. buttress_rate_limit() of 0006 stays
-- for peeks and hit_all batches (all or nothing over several rows).
--
-- Same rows, same state: both functions read and write buttress_rate_limits
-- (key, state, expires_at) in the format 0006 defined (GCRA {tat}, fixed window
-- {window start, used}, sliding window {admission times, oldest first}; integer
-- microseconds), so a key may be decided by either, by old and new buttress
-- versions side by side, and nothing is converted. This file adds no column.
--
-- Exactness. A key without a row takes the INSERT: the decision on no state,
-- always an admission (cost <= limit; the caller checks 1 <= cost <= limit).
-- A key with a row goes to DO UPDATE, which PostgreSQL evaluates only after
-- locking that row, on its latest committed version (READ COMMITTED follows the
-- update chain; a row deleted meanwhile sends the statement back to the INSERT),
-- so decisions on one key are serialised by the row lock, as in 0006. The WHERE
-- is the algorithm's admission test: when it holds, SET writes the new state
-- and RETURNING hands it back (FOUND); when it fails nothing is written but the
-- row stays locked by this transaction, so the SELECT that follows reads
-- exactly the state the refusal was decided on.
--
-- Time: read once, when the call starts (before the row lock), from the
-- server's clock_timestamp() (p_now: tests). A call that waited for the lock
-- thus decides at a time slightly earlier than 0006 would, which is never
-- looser: every algorithm treats an earlier "now" like a clock that stepped
-- back (GCRA keeps the later theoretical arrival time, the fixed window keeps
-- the newer window, the sliding log keeps its order) and never re-grants.
--
-- The arithmetic mirrors buttress/ratelimit/_core.py in integer microseconds,
-- like 0006; a change to it is a new migration (CREATE OR REPLACE).
CREATE OR REPLACE FUNCTION buttress_rate_limit_one(
    p_key text, p_algo text, p_limit bigint, p_period bigint, p_cost bigint,
    p_now bigint DEFAULT NULL,
    OUT allowed boolean, OUT remaining bigint, OUT reset_us bigint, OUT retry_us bigint
) LANGUAGE plpgsql AS $fn$
DECLARE
    t bigint := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    st bigint[];
    iv bigint; tolerance bigint; step bigint; tat bigint;
    win bigint;
    live bigint[]; n int;
BEGIN
    IF p_algo = 'g' THEN
        -- GCRA: interval rounded up, a burst of limit intervals; state {tat}.
        iv := (p_period + p_limit - 1) / p_limit;
        tolerance := iv * p_limit;
        step := p_cost * iv;
        INSERT INTO buttress_rate_limits AS r (key, state, expires_at)
        VALUES (p_key, ARRAY[t + step], t + step)
        ON CONFLICT (key) DO UPDATE
            SET state = ARRAY[greatest(r.state[1], t) + step],
                expires_at = greatest(r.state[1], t) + step
            WHERE greatest(r.state[1], t) + step - t <= tolerance
        RETURNING r.state INTO st;
        allowed := FOUND;
        IF allowed THEN
            remaining := (tolerance - (st[1] - t)) / iv;
            reset_us := st[1] - t;
            retry_us := 0;
        ELSE
            SELECT r.state INTO st FROM buttress_rate_limits r WHERE r.key = p_key;
            tat := greatest(st[1], t);
            remaining := greatest(0, (tolerance - (tat - t)) / iv);
            reset_us := tat - t;
            retry_us := tat + step - t - tolerance;
        END IF;
    ELSIF p_algo = 'f' THEN
        -- Fixed window: state {window start, used}; a newer stored window is kept.
        win := t - t % p_period;
        INSERT INTO buttress_rate_limits AS r (key, state, expires_at)
        VALUES (p_key, ARRAY[win, p_cost], win + p_period)
        ON CONFLICT (key) DO UPDATE
            SET state = CASE WHEN cardinality(r.state) = 2 AND r.state[1] >= win
                             THEN ARRAY[r.state[1], r.state[2] + p_cost]
                             ELSE ARRAY[win, p_cost] END,
                expires_at = CASE WHEN cardinality(r.state) = 2 AND r.state[1] >= win
                                  THEN r.state[1] + p_period
                                  ELSE win + p_period END
            WHERE NOT (cardinality(r.state) = 2 AND r.state[1] >= win)
                  OR r.state[2] + p_cost <= p_limit
        RETURNING r.state INTO st;
        allowed := FOUND;
        IF NOT allowed THEN
            -- Refused only in the stored window (fresh, it holds a whole limit).
            SELECT r.state INTO st FROM buttress_rate_limits r WHERE r.key = p_key;
        END IF;
        remaining := p_limit - st[2];
        reset_us := st[1] + p_period - t;
        retry_us := CASE WHEN allowed THEN 0 ELSE st[1] + p_period - t END;
    ELSE
        -- Sliding window: state {admission times, oldest first}, one per unit.
        INSERT INTO buttress_rate_limits AS r (key, state, expires_at)
        VALUES (p_key, array_fill(t, ARRAY[p_cost::int]), t + p_period)
        ON CONFLICT (key) DO UPDATE
            SET state = ARRAY(SELECT u.e FROM unnest(r.state) WITH ORDINALITY AS u(e, o)
                              WHERE u.e > t - p_period ORDER BY u.o)
                        || array_fill(greatest(r.state[cardinality(r.state)], t),
                                      ARRAY[p_cost::int]),
                expires_at = greatest(r.state[cardinality(r.state)], t) + p_period
            WHERE (SELECT count(*) FROM unnest(r.state) AS u(e) WHERE u.e > t - p_period)
                  + p_cost <= p_limit
        RETURNING r.state INTO st;
        allowed := FOUND;
        IF allowed THEN
            n := cardinality(st);
            remaining := p_limit - n;
            reset_us := st[n] + p_period - t;
            retry_us := 0;
        ELSE
            SELECT r.state INTO st FROM buttress_rate_limits r WHERE r.key = p_key;
            live := ARRAY(SELECT u.e FROM unnest(st) WITH ORDINALITY AS u(e, o)
                          WHERE u.e > t - p_period ORDER BY u.o);
            n := cardinality(live);
            remaining := p_limit - n;
            reset_us := live[n] + p_period - t;
            retry_us := live[n + p_cost - p_limit] + p_period - t;
        END IF;
    END IF;
    -- Amortised eviction, as in 0006: about one decision in a thousand deletes
    -- some expired rows (an expired state decides exactly like no row).
    IF random() < 0.001 THEN
        DELETE FROM buttress_rate_limits WHERE key IN (
            SELECT key FROM buttress_rate_limits WHERE expires_at <= t
            LIMIT 1000 FOR UPDATE SKIP LOCKED);
    END IF;
END
$fn$;

-- down
DROP FUNCTION buttress_rate_limit_one(text, text, bigint, bigint, bigint, bigint);
