-- depends: 0008_system_health
-- check_system_health() for a monitoring role and for replicas: it records the
-- run only where it can (not in a read-only transaction, not without INSERT on
-- buttress_health_history) and returns the verdict either way, with
-- "recorded"; when the version cannot be read it says why in "version_note".
-- The documented grants for a monitoring role: SELECT on buttress_error_events
-- (and buttress_config for the version); pg_monitor to count every
-- connection. A change to the function is a new migration, never an edit here.
-- Thresholds are parameters with defaults, so `SELECT check_system_health()`
-- uses the documented ones and a scheduler may pass its own. 'warning' is the
-- first step, 'degraded' the second; both are recorded as 'degraded' in the
-- history, whose statuses are the health registry's.
CREATE OR REPLACE FUNCTION check_system_health(
    errors_warning integer DEFAULT 10,
    errors_degraded integer DEFAULT 100,
    connections_warning double precision DEFAULT 0.75,
    connections_degraded double precision DEFAULT 0.9
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
    size_mb double precision;
    connections integer;
    max_connections integer := current_setting('max_connections')::integer;
    usage double precision;
    errors bigint;
    app_version text;
    verdict text := 'healthy';
    reasons text[] := ARRAY[]::text[];
    latency_ms double precision;
    version_note text;
    recorded boolean := false;
BEGIN
    size_mb := round(pg_database_size(current_database()) / 1048576.0, 2)::double precision;
    SELECT count(*) INTO connections FROM pg_stat_activity WHERE datname = current_database();
    usage := connections::double precision / GREATEST(max_connections, 1);
    SELECT COALESCE(sum(e.count), 0) INTO errors
        FROM buttress_error_events AS e WHERE e.bucket >= now() - interval '1 hour';

    -- The application's version as DeploymentLog records it (a JSON string).
    -- When it cannot be read, say why instead of a bare null.
    BEGIN
        SELECT c.value::jsonb #>> '{}' INTO app_version FROM buttress_config AS c
            WHERE c.key = 'app_version' ORDER BY c.updated_at DESC LIMIT 1;
        IF app_version IS NULL THEN
            version_note := 'no app_version recorded (DeploymentLog.record sets it)';
        END IF;
    EXCEPTION
        WHEN insufficient_privilege THEN
            version_note := 'cannot read buttress_config: grant SELECT on it to this role';
        WHEN others THEN
            version_note := format('cannot read the version (%s)', SQLERRM);
    END;

    IF errors > errors_degraded THEN
        reasons := reasons || format('%s errors in the last hour (> %s)', errors, errors_degraded);
    ELSIF errors > errors_warning THEN
        reasons := reasons || format('%s errors in the last hour (> %s)', errors, errors_warning);
    END IF;
    IF usage > connections_degraded THEN
        reasons := reasons || format('%s of %s connections in use (> %s%%)',
            connections, max_connections, round((connections_degraded * 100)::numeric, 1));
    ELSIF usage > connections_warning THEN
        reasons := reasons || format('%s of %s connections in use (> %s%%)',
            connections, max_connections, round((connections_warning * 100)::numeric, 1));
    END IF;
    IF errors > errors_degraded OR usage > connections_degraded THEN
        verdict := 'degraded';
    ELSIF errors > errors_warning OR usage > connections_warning THEN
        verdict := 'warning';
    END IF;

    latency_ms := extract(epoch FROM clock_timestamp() - started) * 1000;
    -- Recorded only where it can be: not in a read-only transaction (a replica,
    -- a read-only monitoring session), and not for a role without INSERT on the
    -- history. The verdict is returned either way.
    IF current_setting('transaction_read_only') = 'off'
       AND has_table_privilege('buttress_health_history', 'INSERT') THEN
    INSERT INTO buttress_health_history (recorded_at, status, version, components, metrics)
    VALUES (
        now(),
        CASE WHEN verdict = 'healthy' THEN 'healthy' ELSE 'degraded' END,
        app_version,
        jsonb_build_object('database', jsonb_build_object(
            'status', CASE WHEN verdict = 'healthy' THEN 'healthy' ELSE 'degraded' END,
            'latency_ms', latency_ms)),
        jsonb_build_object(
            'db_size_mb', size_mb,
            'db_connections_total', connections,
            'db_connections_max', max_connections,
            'errors_last_hour', errors)
    );
    recorded := true;
    END IF;

    RETURN jsonb_build_object(
        'status', verdict,
        'database', jsonb_build_object(
            'size_mb', size_mb,
            'connections', connections,
            'max_connections', max_connections),
        'errors_last_hour', errors,
        'version', app_version,
        'version_note', version_note,
        'recorded', recorded,
        'postgres_version', current_setting('server_version'),
        'reasons', to_jsonb(reasons),
        'checked_at', now()
    );
END
$$;

-- down
-- Thresholds are parameters with defaults, so `SELECT check_system_health()`
-- uses the documented ones and a scheduler may pass its own. 'warning' is the
-- first step, 'degraded' the second; both are recorded as 'degraded' in the
-- history, whose statuses are the health registry's.
CREATE OR REPLACE FUNCTION check_system_health(
    errors_warning integer DEFAULT 10,
    errors_degraded integer DEFAULT 100,
    connections_warning double precision DEFAULT 0.75,
    connections_degraded double precision DEFAULT 0.9
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
    size_mb double precision;
    connections integer;
    max_connections integer := current_setting('max_connections')::integer;
    usage double precision;
    errors bigint;
    app_version text;
    verdict text := 'healthy';
    reasons text[] := ARRAY[]::text[];
    latency_ms double precision;
BEGIN
    size_mb := round(pg_database_size(current_database()) / 1048576.0, 2)::double precision;
    SELECT count(*) INTO connections FROM pg_stat_activity WHERE datname = current_database();
    usage := connections::double precision / GREATEST(max_connections, 1);
    SELECT COALESCE(sum(e.count), 0) INTO errors
        FROM buttress_error_events AS e WHERE e.bucket >= now() - interval '1 hour';

    -- The application's version as DeploymentLog records it (a JSON string).
    BEGIN
        SELECT c.value::jsonb #>> '{}' INTO app_version FROM buttress_config AS c
            WHERE c.key = 'app_version' ORDER BY c.updated_at DESC LIMIT 1;
    EXCEPTION WHEN others THEN
        app_version := NULL;
    END;

    IF errors > errors_degraded THEN
        reasons := reasons || format('%s errors in the last hour (> %s)', errors, errors_degraded);
    ELSIF errors > errors_warning THEN
        reasons := reasons || format('%s errors in the last hour (> %s)', errors, errors_warning);
    END IF;
    IF usage > connections_degraded THEN
        reasons := reasons || format('%s of %s connections in use (> %s%%)',
            connections, max_connections, round((connections_degraded * 100)::numeric, 1));
    ELSIF usage > connections_warning THEN
        reasons := reasons || format('%s of %s connections in use (> %s%%)',
            connections, max_connections, round((connections_warning * 100)::numeric, 1));
    END IF;
    IF errors > errors_degraded OR usage > connections_degraded THEN
        verdict := 'degraded';
    ELSIF errors > errors_warning OR usage > connections_warning THEN
        verdict := 'warning';
    END IF;

    latency_ms := extract(epoch FROM clock_timestamp() - started) * 1000;
    INSERT INTO buttress_health_history (recorded_at, status, version, components, metrics)
    VALUES (
        now(),
        CASE WHEN verdict = 'healthy' THEN 'healthy' ELSE 'degraded' END,
        app_version,
        jsonb_build_object('database', jsonb_build_object(
            'status', CASE WHEN verdict = 'healthy' THEN 'healthy' ELSE 'degraded' END,
            'latency_ms', latency_ms)),
        jsonb_build_object(
            'db_size_mb', size_mb,
            'db_connections_total', connections,
            'db_connections_max', max_connections,
            'errors_last_hour', errors)
    );

    RETURN jsonb_build_object(
        'status', verdict,
        'database', jsonb_build_object(
            'size_mb', size_mb,
            'connections', connections,
            'max_connections', max_connections),
        'errors_last_hour', errors,
        'version', app_version,
        'postgres_version', current_setting('server_version'),
        'reasons', to_jsonb(reasons),
        'checked_at', now()
    );
END
$$;
