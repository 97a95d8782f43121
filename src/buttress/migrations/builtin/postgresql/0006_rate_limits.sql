-- depends: 0001_init
-- Rate-limit state (one row per limiter key) and the PL/pgSQL function that
-- decides a whole batch of checks in one statement, on the server's clock. It
-- mirrors buttress/ratelimit/_algorithms.py in integer microseconds; a change
-- to it is a new migration (CREATE OR REPLACE), never an edit here.
-- UNLOGGED: no WAL, so decisions are cheap; the rows are emptied after a
-- server crash and not replicated, which only forgives recent usage.
-- IF NOT EXISTS / OR REPLACE adopt what buttress versions before packaged
-- migrations created on first use.
CREATE UNLOGGED TABLE IF NOT EXISTS buttress_rate_limits (
    key text PRIMARY KEY,
    state bigint[] NOT NULL,
    expires_at bigint NOT NULL
);

CREATE OR REPLACE FUNCTION buttress_rate_limit(
    p_keys text[], p_algos text[], p_limits bigint[], p_periods bigint[],
    p_costs bigint[], p_consume boolean, p_now bigint DEFAULT NULL
) RETURNS TABLE (allowed boolean, remaining bigint, reset_us bigint, retry_us bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    wanted int := (SELECT count(DISTINCT k) FROM unnest(p_keys) k);
    locked int;
    now_us bigint;
    states jsonb;
    expiry jsonb := '{}';
    changed text[] := '{}';
    all_ok boolean := true;
    st bigint[]; new_st bigint[]; live bigint[];
    lim bigint; period bigint; cost bigint;
    interval_us bigint; tolerance bigint; tat bigint; ahead bigint;
    win bigint; used bigint; nl int; stamp bigint;
    ok boolean; rem bigint; rst bigint; rty bigint; exp bigint;
BEGIN
    IF p_consume THEN
        -- Make every row exist, then lock them all in key order. A row swept
        -- away in between is recreated on the next turn of the loop.
        LOOP
            INSERT INTO buttress_rate_limits (key, state, expires_at)
            SELECT k, '{}', 0 FROM (SELECT DISTINCT unnest(p_keys) AS k) s ORDER BY k
            ON CONFLICT (key) DO NOTHING;
            SELECT count(*) INTO locked FROM (
                SELECT 1 FROM buttress_rate_limits WHERE key = ANY (p_keys)
                ORDER BY key FOR UPDATE
            ) l;
            EXIT WHEN locked = wanted;
        END LOOP;
    END IF;
    now_us := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    SELECT coalesce(jsonb_object_agg(r.key, to_jsonb(r.state)), '{}') INTO states
    FROM buttress_rate_limits r WHERE r.key = ANY (p_keys);

    FOR i IN 1 .. cardinality(p_keys) LOOP
        lim := p_limits[i]; period := p_periods[i]; cost := p_costs[i];
        st := coalesce(
            ARRAY(SELECT e::bigint FROM jsonb_array_elements_text(states -> p_keys[i]) e),
            '{}');
        ok := false; rem := 0; rst := 0; rty := 0; exp := 0; new_st := st;
        IF p_algos[i] = 'g' THEN
            interval_us := (period + lim - 1) / lim;
            tolerance := interval_us * lim;
            tat := CASE WHEN cardinality(st) > 0 AND st[1] > now_us THEN st[1] ELSE now_us END;
            ahead := tat + cost * interval_us - now_us;
            IF ahead <= tolerance THEN
                ok := true; rem := (tolerance - ahead) / interval_us; rst := ahead;
                new_st := ARRAY[now_us + ahead]; exp := now_us + ahead;
            ELSE
                rem := greatest(0, (tolerance - (tat - now_us)) / interval_us);
                rst := tat - now_us; rty := ahead - tolerance;
            END IF;
        ELSIF p_algos[i] = 'f' THEN
            win := now_us - now_us % period; used := 0;
            IF cardinality(st) = 2 AND st[1] >= win THEN win := st[1]; used := st[2]; END IF;
            IF used + cost <= lim THEN
                used := used + cost;
                ok := true; rem := lim - used;
                rst := CASE WHEN used > 0 THEN win + period - now_us ELSE 0 END;
                new_st := ARRAY[win, used]; exp := win + period;
            ELSE
                rem := lim - used; rst := win + period - now_us; rty := rst;
            END IF;
        ELSE
            live := ARRAY(SELECT e FROM unnest(st) WITH ORDINALITY AS u(e, o)
                          WHERE e > now_us - period ORDER BY o);
            nl := cardinality(live);
            IF nl + cost <= lim THEN
                ok := true; rem := lim - nl - cost;
                IF cost > 0 THEN
                    stamp := CASE WHEN nl > 0 AND live[nl] > now_us THEN live[nl] ELSE now_us END;
                    new_st := live || array_fill(stamp, ARRAY[cost::int]);
                    rst := stamp + period - now_us; exp := stamp + period;
                ELSIF nl > 0 THEN
                    rst := live[nl] + period - now_us;
                END IF;
            ELSE
                rem := lim - nl;
                rst := live[nl] + period - now_us;
                rty := live[nl + cost - lim] + period - now_us;
            END IF;
        END IF;
        IF ok THEN
            states := jsonb_set(states, ARRAY[p_keys[i]], to_jsonb(new_st));
            expiry := jsonb_set(expiry, ARRAY[p_keys[i]], to_jsonb(exp));
            changed := array_append(changed, p_keys[i]);
        ELSE
            all_ok := false;
        END IF;
        allowed := ok; remaining := rem; reset_us := rst; retry_us := rty;
        RETURN NEXT;
    END LOOP;

    IF p_consume AND all_ok THEN
        UPDATE buttress_rate_limits r
        SET state = ARRAY(SELECT e::bigint FROM jsonb_array_elements_text(states -> r.key) e),
            expires_at = (expiry ->> r.key)::bigint
        WHERE r.key = ANY (changed);
    END IF;
    -- Amortised eviction: about one decision in a thousand sweeps some expired rows.
    IF p_consume AND random() < 0.001 THEN
        DELETE FROM buttress_rate_limits WHERE key IN (
            SELECT key FROM buttress_rate_limits WHERE expires_at <= now_us
            LIMIT 1000 FOR UPDATE SKIP LOCKED);
    END IF;
END
$fn$;

-- down
DROP FUNCTION buttress_rate_limit(text[], text[], bigint[], bigint[], bigint[], boolean, bigint);
DROP TABLE buttress_rate_limits;
