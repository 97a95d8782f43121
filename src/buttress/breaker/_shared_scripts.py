"""The shared breaker's state machine, as run inside Redis (Lua) and PostgreSQL (PL/pgSQL).

Both programs implement the same step, atomically and on the store's clock:
load the circuit, apply one operation (``read``, ``admit``, ``success``,
``failure``, ``ignored``, ``reset``, ``force_open``), save, and answer with the
resulting state and decision. They mirror ``_state.py`` (consecutive-failure
trigger, epochs, expiring half-open probe permits) and must change with it.
"""

from __future__ import annotations

__all__ = ["POSTGRES_FUNCTION", "POSTGRES_TABLE", "REDIS_SCRIPT"]

# KEYS[1]: the circuit's hash; KEYS[2]: its live probes (member = probe id,
# score = expiry). ARGV: op, epoch, probe, threshold, recovery_timeout,
# half_open_max_calls, probe_timeout, ttl seconds. Floats go back as strings
# because Redis truncates Lua numbers to integers in replies.
REDIS_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op = ARGV[1]
local arg_epoch = tonumber(ARGV[2])
local probe = ARGV[3]
local threshold = tonumber(ARGV[4])
local recovery = tonumber(ARGV[5])
local max_probes = tonumber(ARGV[6])
local probe_timeout = tonumber(ARGV[7])
local ttl = tonumber(ARGV[8])

local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'opened_at', 'epoch', 'forced',
                     'next_probe')
local state = h[1] or 'closed'
local failures = tonumber(h[2]) or 0
local opened_at = tonumber(h[3]) or 0
local epoch = tonumber(h[4]) or 0
local forced = h[5] == '1'
local next_probe = tonumber(h[6]) or 0
local dirty = false
local decision = ''
local granted = ''
local retry_after = 0

local function move(new, force)
  epoch = epoch + 1
  redis.call('DEL', KEYS[2])
  if new == 'open' then
    opened_at = now
    forced = force
  elseif new == 'closed' then
    failures = 0
    forced = false
  end
  state = new
  dirty = true
end

if op == 'admit' then
  if state == 'open' then
    if forced then
      decision = 'rejected'
      retry_after = recovery
    elseif now < opened_at + recovery then
      decision = 'rejected'
      retry_after = opened_at + recovery - now
    else
      move('half_open', false)
    end
  end
  if state == 'closed' then
    decision = 'allowed'
  elseif state == 'half_open' then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
    if redis.call('ZCARD', KEYS[2]) < max_probes then
      next_probe = next_probe + 1
      dirty = true
      granted = tostring(next_probe)
      redis.call('ZADD', KEYS[2], string.format('%.6f', now + probe_timeout), granted)
      decision = 'probe'
    else
      decision = 'rejected'
      local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
      retry_after = math.max(0, math.min(tonumber(first[2]) - now, recovery))
    end
  end
elseif op == 'success' or op == 'failure' or op == 'ignored' then
  if arg_epoch == epoch then
    if probe ~= '' then
      if redis.call('ZREM', KEYS[2], probe) == 1 then
        if op == 'success' then
          move('closed', false)
        elseif op == 'failure' then
          move('open', false)
        end
      end
    elseif state == 'closed' and op ~= 'ignored' then
      if op == 'failure' then
        failures = failures + 1
        dirty = true
        if failures >= threshold then
          move('open', false)
        end
      elseif failures ~= 0 then
        failures = 0
        dirty = true
      end
    end
  end
elseif op == 'reset' then
  move('closed', false)
elseif op == 'force_open' then
  move('open', true)
end

if dirty then
  redis.call('HSET', KEYS[1], 'state', state, 'failures', failures,
             'opened_at', string.format('%.6f', opened_at), 'epoch', epoch,
             'forced', forced and '1' or '0', 'next_probe', next_probe)
end
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)

local seen = state
local open_remaining = 0
if state == 'open' and not forced then
  open_remaining = opened_at + recovery - now
  if open_remaining <= 0 then
    seen = 'half_open'
    open_remaining = 0
  end
end
local opened_ago = 0
if state ~= 'closed' then
  opened_ago = now - opened_at
end
return {seen, tostring(epoch), tostring(failures), string.format('%.6f', open_remaining),
        forced and '1' or '0', decision, granted, string.format('%.6f', retry_after),
        string.format('%.6f', opened_ago)}
"""

POSTGRES_TABLE = """
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
)
"""

# probes: {"probe id": expiry in server epoch seconds}.
POSTGRES_FUNCTION = """
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
$$
"""
