-- depends: 0002_config, 0005_health_history
-- Error counts per minute (written by buttress.monitoring.errors.ErrorStats)
-- and check_system_health(): the database's own health verdict, callable from
-- psql or a scheduler without the application. It returns JSONB and records a
-- row in buttress_health_history. A change to the function is a new migration
-- (CREATE OR REPLACE), never an edit here.
CREATE TABLE IF NOT EXISTS buttress_error_events (
    bucket timestamptz NOT NULL,
    category text NOT NULL,
    severity text NOT NULL,
    component text NOT NULL,
    count bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (bucket, category, severity, component)
);

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

-- down
DROP FUNCTION check_system_health(integer, integer, double precision, double precision);
DROP TABLE buttress_error_events;
