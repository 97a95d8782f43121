-- depends: 0001_init
-- The shared circuit breaker's state (one row per breaker name) and the
-- PL/pgSQL function that moves it: one atomic step per call, on the server's
-- clock. It mirrors buttress/breaker/_state.py and the Redis script in
-- _shared_scripts.py; a change to it is a new migration (CREATE OR REPLACE),
-- never an edit here. IF NOT EXISTS / OR REPLACE adopt what buttress versions
-- before packaged migrations created on first use.
CREATE TABLE IF NOT EXISTS buttress_breaker_state (
    name text PRIMARY KEY,
    state text NOT NULL DEFAULT 'closed',
    failures integer NOT NULL DEFAULT 0,
    opened_at double precision NOT NULL DEFAULT 0,
    epoch bigint NOT NULL DEFAULT 0,
    forced boolean NOT NULL DEFAULT false,
    next_probe bigint NOT NULL DEFAULT 0,
    probes jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- probes: {"probe id": expiry in server epoch seconds}.
CREATE OR REPLACE FUNCTION buttress_breaker_step(
    p_name text, p_op text, p_epoch bigint, p_probe text, p_threshold integer,
    p_recovery double precision, p_max_probes integer, p_probe_timeout double precision
) RETURNS TABLE (
    out_state text, out_epoch bigint, out_failures integer, out_open_remaining double precision,
    out_forced boolean, out_decision text, out_granted text, out_retry_after double precision,
    out_opened_ago double precision
) LANGUAGE plpgsql AS $$
DECLARE
    r buttress_breaker_state%ROWTYPE;
    now_s double precision := extract(epoch FROM clock_timestamp());
    dirty boolean := false;
    decision text := '';
    granted text := '';
    retry_after double precision := 0;
    live integer;
    seen text;
    open_remaining double precision := 0;
BEGIN
    IF p_op = 'read' THEN
        SELECT * INTO r FROM buttress_breaker_state WHERE name = p_name;
        IF NOT FOUND THEN
            r.state := 'closed'; r.failures := 0; r.opened_at := 0; r.epoch := 0;
            r.forced := false;
        END IF;
    ELSE
        INSERT INTO buttress_breaker_state (name) VALUES (p_name) ON CONFLICT (name) DO NOTHING;
        SELECT * INTO r FROM buttress_breaker_state WHERE name = p_name FOR UPDATE;
    END IF;

    IF p_op = 'admit' THEN
        IF r.state = 'open' THEN
            IF r.forced THEN
                decision := 'rejected'; retry_after := p_recovery;
            ELSIF now_s < r.opened_at + p_recovery THEN
                decision := 'rejected'; retry_after := r.opened_at + p_recovery - now_s;
            ELSE
                r.epoch := r.epoch + 1; r.probes := '{}'::jsonb; r.state := 'half_open';
                dirty := true;
            END IF;
        END IF;
        IF r.state = 'closed' THEN
            decision := 'allowed';
        ELSIF r.state = 'half_open' THEN
            r.probes := COALESCE(
                (SELECT jsonb_object_agg(k, v) FROM jsonb_each(r.probes) AS e(k, v)
                 WHERE (v #>> '{}')::double precision > now_s),
                '{}'::jsonb);
            SELECT count(*) INTO live FROM jsonb_object_keys(r.probes);
            IF live < p_max_probes THEN
                r.next_probe := r.next_probe + 1;
                granted := r.next_probe::text;
                r.probes := r.probes || jsonb_build_object(granted, now_s + p_probe_timeout);
                decision := 'probe';
            ELSE
                decision := 'rejected';
                SELECT GREATEST(0, LEAST(min((v #>> '{}')::double precision) - now_s, p_recovery))
                  INTO retry_after FROM jsonb_each(r.probes) AS e(k, v);
            END IF;
            dirty := true;
        END IF;
    ELSIF p_op IN ('success', 'failure', 'ignored') THEN
        IF p_epoch = r.epoch THEN
            IF p_probe <> '' THEN
                IF r.probes ? p_probe THEN
                    r.probes := r.probes - p_probe;
                    dirty := true;
                    IF p_op = 'success' THEN
                        r.epoch := r.epoch + 1; r.probes := '{}'::jsonb; r.state := 'closed';
                        r.failures := 0; r.forced := false;
                    ELSIF p_op = 'failure' THEN
                        r.epoch := r.epoch + 1; r.probes := '{}'::jsonb; r.state := 'open';
                        r.opened_at := now_s; r.forced := false;
                    END IF;
                END IF;
            ELSIF r.state = 'closed' AND p_op <> 'ignored' THEN
                IF p_op = 'failure' THEN
                    r.failures := r.failures + 1;
                    dirty := true;
                    IF r.failures >= p_threshold THEN
                        r.epoch := r.epoch + 1; r.probes := '{}'::jsonb; r.state := 'open';
                        r.opened_at := now_s; r.forced := false;
                    END IF;
                ELSIF r.failures <> 0 THEN
                    r.failures := 0;
                    dirty := true;
                END IF;
            END IF;
        END IF;
    ELSIF p_op = 'reset' THEN
        r.epoch := r.epoch + 1; r.probes := '{}'::jsonb; r.state := 'closed';
        r.failures := 0; r.forced := false; dirty := true;
    ELSIF p_op = 'force_open' THEN
        r.epoch := r.epoch + 1; r.probes := '{}'::jsonb; r.state := 'open';
        r.opened_at := now_s; r.forced := true; dirty := true;
    END IF;

    IF dirty THEN
        UPDATE buttress_breaker_state SET
            state = r.state, failures = r.failures, opened_at = r.opened_at, epoch = r.epoch,
            forced = r.forced, next_probe = r.next_probe, probes = r.probes, updated_at = now()
        WHERE name = p_name;
    END IF;

    seen := r.state;
    IF r.state = 'open' AND NOT r.forced THEN
        open_remaining := r.opened_at + p_recovery - now_s;
        IF open_remaining <= 0 THEN
            seen := 'half_open';
            open_remaining := 0;
        END IF;
    END IF;
    RETURN QUERY SELECT seen, r.epoch, r.failures, open_remaining, r.forced, decision, granted,
        retry_after,
        CASE WHEN r.state = 'closed' THEN 0::double precision ELSE now_s - r.opened_at END;
END
$$;

-- down
DROP FUNCTION buttress_breaker_step(
    text, text, bigint, text, integer, double precision, integer, double precision
);
DROP TABLE buttress_breaker_state;
