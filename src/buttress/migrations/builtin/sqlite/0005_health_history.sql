-- depends: 0001_init
-- One row per recorded health run (the seeds' system_health): the overall
-- status, each component's status and latency, and free-form numeric metrics.
CREATE TABLE IF NOT EXISTS buttress_health_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recorded_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('healthy', 'degraded', 'unhealthy')),
    version TEXT,
    components TEXT NOT NULL DEFAULT '{}',
    metrics TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS buttress_health_history_recorded_at
    ON buttress_health_history (recorded_at, id);

-- down
DROP TABLE buttress_health_history;
